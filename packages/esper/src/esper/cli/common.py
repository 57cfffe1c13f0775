"""What every `esper` command shares, without torch: the usage error (exit 2), reading a JSON file named by a flag,
and the stop request that SIGINT/SIGTERM raise for a run to end at its next epoch boundary."""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C


class UsageError(Exception):
    """A flag, file or config the command cannot use; reported in one line with exit code 2 before anything is
    written."""


Command = Callable[[argparse.Namespace], int]


def read_json_file(flag: str, path: Path) -> Any:
    """The JSON document in `path`, given by `flag`; a missing or malformed file is a UsageError naming both (and
    the line and column of a syntax error)."""
    if not path.is_file():
        raise UsageError(f"{flag}: {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # unreadable: name the flag and the file
        raise UsageError(f"{flag}: cannot read {path}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:  # name the flag, the file, the line and the column
        raise UsageError(f"{flag}: {path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc


class StopRequest:
    """SIGINT (Ctrl-C) or SIGTERM asks a run to stop at its next epoch boundary: the handler only records the
    request, and the run loop checks `requested` between epochs, so no exception is ever raised from deep inside a
    training step. A second SIGINT while a stop is pending raises KeyboardInterrupt (stop at once)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._depth = 0
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def describe(self) -> str:
        return f"interrupted ({self.signal_name})"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signal_name = signal.Signals(signum).name

    @contextmanager
    def armed(self) -> Iterator[StopRequest]:
        """Handle SIGINT/SIGTERM as stop requests inside the block (nested blocks share one request)."""
        if self._depth == 0:
            self.signal_name = None
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                for s, handler in self._previous.items():
                    signal.signal(s, handler)


STOP = StopRequest()


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What a run returns instead of its summary when a stop request ended it early."""

    reason: str  # "interrupted (SIGINT)"
    where: str  # "episode 2/3", "round 4/10"
