"""The progress of a command on stderr: live bars on a terminal, a plain line now and then in a log.

On a terminal (rich): one bar per level of work, outermost first (a pack's runs, a run's episodes or rounds, an
episode's epochs, then its host-only baseline's epochs), each with its description, done/total, elapsed time, ETA and
the current numbers. Lines that stay (an episode's end, a round's end) print above the bars, which vanish at the end.

Anywhere else (a pipe, a log file, the log of `--tui`): no escape codes; a line of the open bars at most every
PLAIN_EVERY seconds, and every line that stays. Both carry the elapsed time and ETA of the outermost bar, the figure
a reader of a log wants: how long the whole command has run and how long it still needs.

An inner bar moves the bar around it: it counts for `share` of one unit of it, from `offset` (an episode's epochs
fill most of one episode of a run, its baseline's epochs the rest: train.BASELINE_SHARE), so the ETA of a run or a
pack moves with every epoch, not only when a whole episode or run ends. The ETA is the pace since the bar opened
(elapsed / done) applied to what is left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

PLAIN_EVERY = 10.0  # seconds between progress lines in a log: a long epoch shows the run moves, the log stays short
REFRESH_PER_SECOND = 4  # terminal redraws, so the elapsed time ticks during an epoch that takes long

Clock = Callable[[], float]


def clock_time(seconds: float | None) -> str:
    """H:MM:SS, as rich writes a duration; -:--:-- while unknown."""
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Bar:
    """One level of work: `completed` of `total` units, fractional while an inner bar moves it. Closing it (or
    leaving its `with` block) closes the bars inside it too."""

    def __init__(self, owner: Progress, description: str, total: int, completed: int, parent: Bar | None) -> None:
        self.owner = owner
        self.description = description
        self.total = total
        self.completed: float = completed
        self.base: float = completed  # the whole units the caller reported; inner bars add their fraction to it
        self.initial: float = completed  # a resumed run's earlier rounds took no time here: the pace excludes them
        self.parent = parent
        self.share = 1.0
        self.offset = 0.0
        self.numbers = ""
        self.started = owner.clock()
        self.task_id: TaskID | None = None

    def update(self, completed: float, numbers: str | None = None, line: str | None = None) -> None:
        """`completed` units are done; `numbers` (when given) replaces the bar's current numbers; `line` (an
        episode's end) is written as a line that stays, in place of a progress line that would repeat it."""
        self.owner.update(self, completed, numbers, line)

    def close(self) -> None:
        self.owner.close(self)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def fraction(self) -> float:
        return min(self.completed / self.total, 1.0) if self.total > 0 else 1.0

    def eta(self, elapsed: float) -> float | None:
        """Seconds left at the pace since the bar opened; None before any progress."""
        done = self.completed - self.initial
        if done <= 0:
            return None
        return max(self.total - self.completed, 0.0) * elapsed / done

    def timing(self, now: float) -> str:
        elapsed = now - self.started
        return f"elapsed {clock_time(elapsed)}, ETA {clock_time(self.eta(elapsed))}"

    def plain(self) -> str:
        text = f"{self.description} {int(self.completed)}/{self.total}"
        return f"{text} {self.numbers}" if self.numbers else text


class _EtaColumn(ProgressColumn):
    """The ETA of a plain line (the pace since the bar opened), not rich's estimate from the last 30 s, which is
    unknown while one epoch takes longer than that."""

    def render(self, task: Task) -> Text:
        bar: Bar = task.fields["bar"]
        elapsed = 0.0 if task.elapsed is None else task.elapsed
        return Text(f"ETA {clock_time(bar.eta(elapsed))}", style="progress.remaining")


class Progress:
    """The bars of one command, drawn by rich on `console` (a terminal), else as plain lines on `stream`; nothing at
    all when `stream` is None (the ranks of a torchrun job other than rank 0). `clock` is injectable so tests need no
    sleep. Use it as a context manager: leaving it takes the bars down even when an exception ends the command."""

    def __init__(
        self,
        stream: TextIO | None,
        clock: Clock = time.monotonic,
        console: Console | None = None,
        every: float = PLAIN_EVERY,
        auto_refresh: bool = True,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.every = every
        self.bars: list[Bar] = []
        self._last_line = clock()
        self._auto_refresh = auto_refresh
        self._rich = None if console is None else _rich_progress(console, clock, auto_refresh)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.bars:
            self.close(self.bars[0])

    def bar(self, description: str, total: int, completed: int = 0, *, share: float = 1.0, offset: float = 0.0) -> Bar:
        """A new bar inside the innermost open one, counting for `share` of one of its units from `offset`."""
        bar = Bar(self, description, total, completed, self.bars[-1] if self.bars else None)
        bar.share, bar.offset = share, offset
        self.bars.append(bar)
        if self._rich is not None:
            self._rich.start()  # a no-op while the bars are already drawn
            bar.task_id = self._rich.add_task(description, total=total, completed=completed, bar=bar, numbers="")
        return bar

    def update(self, bar: Bar, completed: float, numbers: str | None = None, line: str | None = None) -> None:
        bar.base = bar.completed = completed
        if numbers is not None:
            bar.numbers = numbers
        inner = bar
        while inner.parent is not None:
            outer = inner.parent
            outer.completed = outer.base + inner.offset + inner.share * inner.fraction
            inner = outer
        if self._rich is not None:
            self._draw(self._rich)
        if line is not None:
            self.done(line)
        elif self._rich is None and self.clock() - self._last_line >= self.every:
            self._write(" | ".join(b.plain() for b in self.bars))

    def close(self, bar: Bar) -> None:
        """Close `bar` and every bar inside it; the terminal's bars vanish when the last one closes."""
        if bar not in self.bars:
            return  # closed already, with a bar around it
        closing = self.bars[self.bars.index(bar) :]
        del self.bars[len(self.bars) - len(closing) :]
        if self._rich is None:
            return
        for b in closing:
            if b.task_id is not None:
                self._rich.remove_task(b.task_id)
        if self.bars:
            self._rich.refresh()  # at once: a closed bar must not linger above the next line that stays
        else:
            self._rich.stop()

    def done(self, text: str) -> None:
        """A line that stays (an episode's or a round's end), with the outermost bar's elapsed time and ETA."""
        if self._rich is not None:
            self._rich.refresh()  # the bars drawn again below the line show the update just made
            # soft_wrap: a long line is wrapped by the terminal, not broken by rich, so it copies as one line
            self._rich.console.print(self._timed(text), markup=False, highlight=False, soft_wrap=True)
        else:
            self._write(text)

    def _timed(self, text: str) -> str:
        return f"{text} | {self.bars[0].timing(self.clock())}" if self.bars else text

    def _write(self, text: str) -> None:
        self._last_line = self.clock()
        if self.stream is not None:
            self.stream.write(self._timed(text) + "\n")
            self.stream.flush()

    def _draw(self, rich: RichProgress) -> None:
        for b in self.bars:
            if b.task_id is not None:
                rich.update(b.task_id, completed=b.completed, numbers=b.numbers)
        if not self._auto_refresh:
            rich.refresh()


def _rich_progress(console: Console, clock: Clock, auto_refresh: bool) -> RichProgress:
    return RichProgress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        _EtaColumn(),
        TextColumn("{task.fields[numbers]}", markup=False),
        console=console,
        auto_refresh=auto_refresh,
        refresh_per_second=REFRESH_PER_SECOND,
        transient=True,  # the bars vanish at the end; the lines that stay and the summary remain
        redirect_stdout=False,  # stdout may be a file of its own (the summary table): never drawn into
        # Other writes to stderr (warnings, a message) go above the bars instead of through them.
        redirect_stderr=console.file is sys.stderr,
        get_time=clock,
    )


def progress_for(stream: TextIO | None) -> Progress:
    """Bars on `stream` when it is an interactive terminal; plain lines otherwise (a pipe, a file, TERM=dumb);
    nothing when None."""
    if stream is not None and stream.isatty():
        console = Console(file=stream)
        if console.is_interactive:
            return Progress(stream, console=console)
    return Progress(stream, every=PLAIN_EVERY)  # read here, so a test can shorten it
