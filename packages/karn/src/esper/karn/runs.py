"""A cheap listing of a run directory: its first event (TRAINING_STARTED), line count and summary.json, without
loading the whole log into DuckDB."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

from esper.karn.contracts import RunSummary
from esper.karn.eventlog import parse_line
from esper.karn.store import EVENTS_FILE, SUMMARY_FILE
from esper.leyline import TelemetryEventType, loads


@dataclass(frozen=True)
class RunListing:
    run_id: str
    path: str
    task: str | None
    policy: str | None
    status: str  # "finished", "interrupted" (TRAINING_COMPLETED says so) or "running / stopped" (no end written yet)
    episodes: int | None
    final_accuracy: float | None
    events: int
    started: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _status(events_path: Path, lines: int) -> str:
    """From the log's last complete line (line number `lines`), reading only the end of the file."""
    with events_path.open("rb") as f:
        end = f.seek(0, 2)
        f.seek(max(0, end - (1 << 16)))
        tail = f.read()
    complete = tail[: tail.rfind(b"\n")]
    if lines and complete:
        event = parse_line(events_path, lines, complete[complete.rfind(b"\n") + 1 :].decode("utf-8"))
        if event["event_type"] == TelemetryEventType.TRAINING_COMPLETED.name:
            return "interrupted" if event["payload"]["interrupted"] else "finished"
    return "running / stopped"


def describe_run(run_dir: Path) -> RunListing:
    events_path = run_dir / EVENTS_FILE
    with events_path.open("rb") as f:
        first = f.readline()
        rest = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    lines = rest + (1 if first.endswith(b"\n") else 0)
    task = policy = started = None
    if first.endswith(b"\n"):
        event = parse_line(events_path, 1, first.decode("utf-8"))
        if event["event_type"] == TelemetryEventType.TRAINING_STARTED.name:
            payload = event["payload"]
            task, policy = str(payload["task"]), str(payload["policy"])
            started = dt.datetime.fromisoformat(event["timestamp"]).strftime("%Y-%m-%d %H:%M:%S")
    summary_path = run_dir / SUMMARY_FILE
    summary = loads(RunSummary, summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
    return RunListing(
        run_id=run_dir.name,
        path=str(run_dir),
        task=task,
        policy=policy,
        status=_status(events_path, lines),
        episodes=None if summary is None else summary.episodes,
        final_accuracy=None if summary is None else summary.final_accuracy,
        events=lines,
        started=started,
    )
