"""Checkpoint files you can trust: written atomically, the last two kept, verified before use.

A file is one header line, `esper-checkpoint 1 sha256=<hex> bytes=<n>`, followed by the `torch.save` payload. A
truncated or altered file fails the length or checksum test with a one-line CheckpointError that names the file;
`load_latest` then falls back to the previous checkpoint, `<name>.prev<suffix>`, and says which file it skipped.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MAGIC = "esper-checkpoint 1"
_HEADER = re.compile(rb"esper-checkpoint 1 sha256=([0-9a-f]{64}) bytes=(\d+)")


class CheckpointError(Exception):
    """A checkpoint file that cannot be used, with the file and what is wrong with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def previous_path(path: Path) -> Path:
    """Where the checkpoint before `path` is kept: checkpoint.pt -> checkpoint.prev.pt."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` durably, keeping the file it replaces as the previous checkpoint. A kill at any
    moment leaves at least one complete checkpoint: the new one is fsynced under a temporary name before the old
    one moves aside, and each move is an atomic rename."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    header = f"{MAGIC} sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)}\n".encode()
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as f:
        f.write(header + body)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        path.replace(previous_path(path))
    temporary.replace(path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The verified payload of one checkpoint file, or a CheckpointError saying what is wrong with it."""
    try:
        data = path.read_bytes()
    except OSError as exc:  # missing or unreadable: name the file
        raise CheckpointError(path, f"cannot be read ({exc.strerror})") from exc
    header, newline, body = data.partition(b"\n")
    match = _HEADER.fullmatch(header)
    if not newline and data.startswith(MAGIC.encode()):
        raise CheckpointError(path, f"damaged: truncated to {len(data)} bytes, inside its header")
    if match is None:
        raise CheckpointError(path, f"not an esper checkpoint (its first line is not '{MAGIC} sha256=... bytes=...')")
    expected = int(match.group(2))
    if len(body) != expected:
        raise CheckpointError(path, f"damaged: truncated to {len(body)} of {expected} bytes")
    if hashlib.sha256(body).hexdigest() != match.group(1).decode():
        raise CheckpointError(path, "damaged: its checksum does not match its contents")
    try:
        payload = torch.load(io.BytesIO(body), weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:  # intact bytes torch cannot read
        raise CheckpointError(path, f"unreadable by this torch ({exc})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(path, f"holds a {type(payload).__name__}, not a checkpoint dictionary")
    return payload


@dataclass(frozen=True, slots=True)
class LoadedCheckpoint:
    path: Path  # the file the payload came from
    payload: dict[str, Any]
    skipped: CheckpointError | None  # the damaged latest checkpoint, when the previous one was used instead


def load_latest(path: Path) -> LoadedCheckpoint:
    """The checkpoint at `path`, or the previous one when `path` is damaged; a CheckpointError naming both files
    when neither can be used."""
    try:
        return LoadedCheckpoint(path, read_checkpoint(path), None)
    except CheckpointError as latest:  # the fallback this module exists for: kept and reported, never dropped
        previous = previous_path(path)
        if not previous.exists():
            raise CheckpointError(path, f"{latest.problem}, and there is no previous checkpoint") from latest
        try:
            return LoadedCheckpoint(previous, read_checkpoint(previous), latest)
        except CheckpointError as older:
            raise CheckpointError(path, f"{latest.problem}; the previous one, {older}") from older
