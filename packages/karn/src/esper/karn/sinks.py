"""The run's source of truth: an append-only `events.jsonl`, one validated TelemetryEvent per line."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from esper.karn.eventlog import parse_line, read_event_log
from esper.leyline import TelemetryEvent, dumps, from_wire


class JsonlSink:
    """Appends each event as one JSON line (validated against the envelope schema) and flushes it, so a
    dashboard tailing the file sees it at once and a killed run leaves at most one torn line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = path.open("a", encoding="utf-8")

    def write(self, event: TelemetryEvent) -> None:
        if self._file is None:
            raise RuntimeError(f"JsonlSink for {self.path} is closed")
        self._file.write(dumps(event) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def rewind_to_checkpoint(path: Path, size: int, round_: int) -> int:
    """Cut the log back to where a checkpoint of round `round_` was taken (`size` bytes: the checkpoint stores it),
    keeping the CHECKPOINT_SAVED line that follows, so that a resumed run appends exactly after its checkpoint:
    the unfinished round's events (and any torn line) go. Returns the bytes removed."""
    data = path.read_bytes()
    if len(data) < size:
        raise ValueError(f"{path} holds {len(data)} bytes, fewer than the {size} its checkpoint recorded")
    line, newline, _ = data[size:].partition(b"\n")
    if newline:
        event = parse_line(path, data[:size].count(b"\n") + 1, line.decode("utf-8"))
        if event["event_type"] == "CHECKPOINT_SAVED" and event["payload"]["round"] == round_:
            size += len(line) + 1
    with path.open("r+b") as f:
        f.truncate(size)
    return len(data) - size


def read_events(path: Path) -> list[TelemetryEvent]:
    """Every event of an events.jsonl file as records. A torn last line (a killed run) is skipped, as in the run
    store; any other malformed line raises WireError naming its line number."""
    log = read_event_log(path)
    return [from_wire(TelemetryEvent, {k: v for k, v in event.items() if k != "seq"}) for event in log.events]
