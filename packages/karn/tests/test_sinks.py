from __future__ import annotations

from pathlib import Path

import pytest

from esper.karn import JsonlSink, read_events, rewind_to_checkpoint
from esper.leyline import (
    CheckpointSavedPayload,
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


def _done(hub: TelemetryHub) -> None:
    hub.emit(TrainingCompletedPayload(episodes_completed=1, wall_seconds=0.5, interrupted=False))


@pytest.mark.parametrize("saved_event_written", [True, False])
def test_rewind_to_checkpoint_keeps_its_saved_event_and_drops_the_rest(
    tmp_path: Path, saved_event_written: bool
) -> None:
    path = tmp_path / "events.jsonl"
    hub = TelemetryHub("run", sinks=(JsonlSink(path),))
    _done(hub)
    size = path.stat().st_size  # what the checkpoint of round 2 records
    if saved_event_written:  # else the run died between writing the checkpoint and logging it
        hub.emit(CheckpointSavedPayload(path="checkpoint.pt", round=2))
    kept = path.stat().st_size
    _done(hub)  # the unfinished round 3
    hub.close()
    with path.open("a") as f:
        f.write('{"event_id": 9, "ti')  # and a torn line from the kill
    dropped = rewind_to_checkpoint(path, size, 2)
    assert path.stat().st_size == kept and dropped > 0
    names = [e.event_type.name for e in read_events(path)]
    assert names == ["TRAINING_COMPLETED", "CHECKPOINT_SAVED"] if saved_event_written else ["TRAINING_COMPLETED"]


def test_rewind_refuses_a_log_shorter_than_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    hub = TelemetryHub("run", sinks=(JsonlSink(path),))
    _done(hub)
    hub.close()
    with pytest.raises(ValueError, match="fewer than the 100000 its checkpoint recorded"):
        rewind_to_checkpoint(path, 100000, 1)
