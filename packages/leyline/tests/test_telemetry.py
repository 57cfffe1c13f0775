"""The hub owns the envelope: context comes from the hub and emitters, payloads stay event-specific."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from esper.leyline import (
    EVENT_PAYLOAD_TYPES,
    ListSink,
    SeedInternalKind,
    SeedInternalLevelChangedPayload,
    Severity,
    SlotIdError,
    TelemetryEvent,
    TelemetryEventType,
    TelemetryHub,
    TrainingCompletedPayload,
    dumps,
    loads,
)

LEVEL_CHANGE = SeedInternalLevelChangedPayload(
    seed_id="s1",
    blueprint_id="conv_ladder",
    internal_kind=SeedInternalKind.CONV_LADDER,
    from_level=1,
    to_level=2,
    max_level=4,
    active_params=2048,
    group_size=0,
)


def hub_with_sink() -> tuple[TelemetryHub, ListSink]:
    sink = ListSink()
    fixed = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    return TelemetryHub("run-7", sinks=(sink,), clock=lambda: fixed), sink


def test_env_emitter_sets_context_and_event_type() -> None:
    hub, sink = hub_with_sink()
    env = hub.emitter(3)
    env.start_episode(2)
    env.set_epoch(14)
    env.emit(LEVEL_CHANGE, slot_id="r0c1")
    (event,) = sink.events
    assert event.event_type is TelemetryEventType.SEED_INTERNAL_LEVEL_CHANGED
    assert (event.run_id, event.env_id, event.episode, event.epoch, event.slot_id) == ("run-7", 3, 2, 14, "r0c1")
    assert event.severity is Severity.INFO and event.timestamp == "2026-11-25T12:00:00+00:00"
    assert loads(TelemetryEvent, dumps(event)) == event


def test_run_level_events_have_no_env_context() -> None:
    hub, sink = hub_with_sink()
    hub.emit(TrainingCompletedPayload(episodes_completed=4, wall_seconds=1.5, interrupted=False))
    (event,) = sink.events
    assert (event.env_id, event.episode, event.epoch, event.slot_id) == (None, None, None, None)


def test_the_hub_stamps_its_rank_on_every_event() -> None:
    sink = ListSink()
    hub = TelemetryHub("run-7", sinks=(sink,), rank=3)
    hub.emit(TrainingCompletedPayload(episodes_completed=4, wall_seconds=1.5, interrupted=False))
    hub.emitter(0).emit(LEVEL_CHANGE, slot_id="r0c0")
    assert [e.rank for e in sink.events] == [3, 3]
    assert hub_with_sink()[0].rank == 0
    with pytest.raises(ValueError, match="rank must be >= 0"):
        TelemetryHub("run-7", rank=-1)


def test_forwarded_events_keep_their_rank_and_must_belong_to_the_run() -> None:
    other_sink = ListSink()
    TelemetryHub("run-7", sinks=(other_sink,), rank=1).emitter(2).emit(LEVEL_CHANGE, slot_id="r0c0")
    hub, sink = hub_with_sink()
    hub.forward(other_sink.events[0])
    assert sink.events == other_sink.events and sink.events[0].rank == 1
    stranger = ListSink()
    TelemetryHub("run-8", sinks=(stranger,)).emit(LEVEL_CHANGE)
    with pytest.raises(ValueError, match="event of run 'run-8' forwarded to the hub of run 'run-7'"):
        hub.forward(stranger.events[0])


def test_each_event_gets_a_unique_id() -> None:
    hub, sink = hub_with_sink()
    env = hub.emitter(0)
    for _ in range(5):
        env.emit(LEVEL_CHANGE, slot_id="r0c0")
    assert len({e.event_id for e in sink.events}) == 5


def test_bad_inputs_fail_fast() -> None:
    hub, _ = hub_with_sink()
    with pytest.raises(TypeError, match="is not a telemetry payload"):
        hub.emit(object())  # type: ignore[arg-type]
    with pytest.raises(SlotIdError):
        hub.emitter(0).emit(LEVEL_CHANGE, slot_id="late")
    with pytest.raises(ValueError, match="env_id must be >= 0"):
        hub.emitter(-1)
    with pytest.raises(TypeError, match="is not a TelemetrySink"):
        hub.add_sink(object())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="set_epoch before start_episode"):
        hub.emitter(1).set_epoch(3)


def test_close_reaches_every_sink() -> None:
    first, second = ListSink(), ListSink()
    hub = TelemetryHub("r", sinks=(first, second))
    hub.close()
    assert first.closed and second.closed


def test_payload_types_are_one_to_one() -> None:
    assert len(set(EVENT_PAYLOAD_TYPES.values())) == len(EVENT_PAYLOAD_TYPES)
