from __future__ import annotations

from pathlib import Path

import pytest

from esper.karn import JsonlSink, read_events
from esper.leyline import (
    GovernorReason,
    GovernorRollbackPayload,
    Severity,
    TelemetryHub,
    TrainingCompletedPayload,
    WireError,
)


def test_events_round_trip_through_the_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.jsonl"
    hub = TelemetryHub("run-1", sinks=(JsonlSink(path),))
    env = hub.emitter(1)
    env.start_episode(0)
    env.set_epoch(3)
    rollback = GovernorRollbackPayload(
        reason=GovernorReason.NON_FINITE, loss=None, threshold=None, restored_epoch=2, pruned_slots=("r0c1",)
    )
    env.emit(rollback, severity=Severity.CRITICAL)
    hub.emit(TrainingCompletedPayload(episodes_completed=1, wall_seconds=0.25, interrupted=True))
    hub.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and '"event_type":"GOVERNOR_ROLLBACK"' in lines[0]
    first, second = list(read_events(path))
    assert first.payload == rollback and first.env_id == 1 and first.epoch == 3
    assert second.env_id is None and second.payload.interrupted  # type: ignore[union-attr]


def test_a_malformed_line_names_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    hub = TelemetryHub("run-1", sinks=(JsonlSink(path),))
    hub.emit(TrainingCompletedPayload(episodes_completed=1, wall_seconds=0.25, interrupted=False))
    hub.close()
    with path.open("a") as f:
        f.write('{"event_type": "NOPE"}\n')
    with pytest.raises(WireError, match=r"events.jsonl:2: "):
        list(read_events(path))


def test_writing_after_close_fails(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "e.jsonl")
    sink.close()
    hub = TelemetryHub("r", sinks=(sink,))
    with pytest.raises(RuntimeError, match="is closed"):
        hub.emit(TrainingCompletedPayload(episodes_completed=0, wall_seconds=0.0, interrupted=False))
