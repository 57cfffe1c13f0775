"""Reading a run's `events.jsonl`: validated wire dicts in file order, a torn last line reported and skipped.

A killed run can leave one half-written last line (the sink writes whole lines and flushes each, so never more
than one, and only at the end). That line is reported and skipped, never fatal; any other line that is not a valid
TelemetryEvent is an error naming the file and line number. `EventTail` reads a growing file incrementally for
the live views: an unterminated last line is simply not read yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.leyline import TelemetryEvent, WireError, validate

WireEvent = dict[str, Any]  # one validated TelemetryEvent in its JSON form, plus "seq" (its 1-based line number)


@dataclass(frozen=True)
class TornTail:
    """The skipped last line of a killed run."""

    line: int
    size: int
    reason: str

    def describe(self, path: Path) -> str:
        return f"{path}:{self.line}: torn last line ({self.size} bytes, {self.reason}) skipped"


def parse_line(path: Path, number: int, text: str) -> WireEvent:
    """One line -> its validated wire dict with "seq" added; WireError naming path:line otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:  # re-raised as the contract's error with the file and line number
        raise WireError("TelemetryEvent", "", f"{path}:{number}: not JSON ({exc.msg})") from exc
    try:
        validate(TelemetryEvent, data)
    except WireError as exc:  # re-raised with the file and line number added, never swallowed
        raise WireError(exc.type_name, exc.field, f"{path}:{number}: {exc.message}") from exc
    assert isinstance(data, dict)
    data["seq"] = number
    return data


@dataclass
class EventTail:
    """Incremental reader of a growing events.jsonl: `poll()` returns the events of newly completed lines."""

    path: Path
    offset: int = 0
    lines_read: int = 0
    _pending: bytes = field(default=b"", repr=False)
    _late: list[WireEvent] = field(default_factory=list, repr=False)

    def poll(self) -> list[WireEvent]:
        if not self.path.is_file():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        events = []
        for raw in data[:cut].splitlines():
            self.lines_read += 1
            events.append(parse_line(self.path, self.lines_read, raw.decode("utf-8")))
        return events

    def finish(self) -> TornTail | None:
        """The file is complete (the run ended or was killed): read the rest and settle an unterminated last line,
        which is an event if it parses and a torn tail otherwise."""
        self.poll()
        if not self._pending:
            return None
        number = self.lines_read + 1
        tail, self._pending = self._pending, b""
        try:
            text = tail.decode("utf-8")
            json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # this is what a torn tail is: reported, skipped
            return TornTail(number, len(tail), f"incomplete: {exc}")
        self.lines_read = number
        self._late.append(parse_line(self.path, number, text))
        return None

    def take_late(self) -> list[WireEvent]:
        """Events settled by `finish()` (a complete last line that only lacked its newline)."""
        late, self._late = self._late, []
        return late


@dataclass(frozen=True)
class EventLog:
    """A whole events.jsonl read at once."""

    path: Path
    events: list[WireEvent]
    torn_tail: TornTail | None


def read_event_log(path: Path) -> EventLog:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such event log")
    tail = EventTail(path)
    events = tail.poll()
    torn = tail.finish()
    events.extend(tail.take_late())
    return EventLog(path, events, torn)
