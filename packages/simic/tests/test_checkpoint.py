"""Checkpoint files: atomic writes that keep the previous file, and verification that names what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.simic import CheckpointError, load_latest, previous_path, read_checkpoint, write_checkpoint


def payload(round_: int) -> dict[str, object]:
    return {"round": round_, "weights": torch.arange(50, dtype=torch.float32) * round_}


def test_writing_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    for r in (1, 2, 3):
        write_checkpoint(path, payload(r))
    assert previous_path(path) == tmp_path / "checkpoint.prev.pt"
    assert read_checkpoint(path)["round"] == 3
    assert read_checkpoint(previous_path(path))["round"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]  # no temporaries


def test_a_truncated_latest_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    write_checkpoint(path, payload(1))
    write_checkpoint(path, payload(2))
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: damaged: truncated to \d+ of \d+ bytes"):
        read_checkpoint(path)
    loaded = load_latest(path)
    assert loaded.path == previous_path(path) and loaded.payload["round"] == 1
    assert loaded.skipped is not None and "truncated" in str(loaded.skipped)


def test_both_damaged_names_both_files(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    write_checkpoint(path, payload(1))
    write_checkpoint(path, payload(2))
    path.write_bytes(b"not a checkpoint")
    previous_path(path).write_bytes(b"")
    with pytest.raises(CheckpointError) as caught:
        load_latest(path)
    message = str(caught.value)
    assert "checkpoint.pt: not an esper checkpoint" in message and "checkpoint.prev.pt" in message


def test_a_single_damaged_checkpoint_says_there_is_nothing_to_fall_back_to(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    write_checkpoint(path, payload(1))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match="there is no previous checkpoint"):
        load_latest(path)


@settings(max_examples=40, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_changed_byte_is_caught(tmp_path_factory: pytest.TempPathFactory, position: int, flip: int) -> None:
    path = tmp_path_factory.mktemp("flip") / "checkpoint.pt"
    write_checkpoint(path, payload(7))
    data = bytearray(path.read_bytes())
    data[position % len(data)] ^= flip
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
