"""Incubation on the narrow digits host (the case that used to blow up): a conv_heavy seed at r0c0 incubates with a
bounded |delta| / |x|, and blending it in does not wreck training. With the old straight-through incubator the ratio
reached 263-532 after 10 epochs and the first blended epoch trained at 3.7-7.2x the last incubation epoch's loss
(tools/incubation_probe.py, docs/plans/phases/phase0_a0c0/experiments_and_gates.md)."""

from __future__ import annotations

import pytest
import torch

from esper.kasmina import GateThresholds, QualityGates
from esper.leyline import BlueprintAction, LifecycleOp, ListSink, SeedStage, TelemetryEventType, TelemetryHub
from esper.leyline import canonical_action as act
from esper.tolaria import Environment, get_task

INCUBATION_EPOCHS = 6


@pytest.mark.parametrize("seed", [0, 1])
def test_a_seed_incubates_bounded_and_blends_in_smoothly(seed: int) -> None:
    task = get_task("digits_narrow")
    slots = tuple(task.config.default_slots)
    sink = ListSink()
    gates = QualityGates(thresholds=GateThresholds(min_training_epochs=INCUBATION_EPOCHS))
    env = Environment(
        task, task.load(None), slots, TelemetryHub("t", sinks=(sink,)).emitter(0), seed, torch.device("cpu"), gates
    )
    env.reset(0)
    plan = (
        [act(LifecycleOp.WAIT)] * 3
        + [act(LifecycleOp.GERMINATE, 0, BlueprintAction.CONV_HEAVY), act(LifecycleOp.ADVANCE, 0)]
        + [act(LifecycleOp.WAIT)] * (INCUBATION_EPOCHS - 1)
        + [act(LifecycleOp.ADVANCE, 0)]
        + [act(LifecycleOp.WAIT)] * 2
    )
    ratios, last_incubation, first_blended = [], None, None
    for action in plan:
        alpha_trained = env.model.slot("r0c0").alpha  # the amplitude this epoch trains with
        step = env.step(action)
        assert not step.rolled_back
        slot = env.model.slot("r0c0")
        if slot.stage is SeedStage.TRAINING and slot.delta_ratio() is not None:
            ratios.append(slot.delta_ratio())
            last_incubation = step.signals.metrics.train_loss
        if alpha_trained > 0.0 and first_blended is None:
            first_blended = step.signals.metrics.train_loss
    assert len(ratios) >= INCUBATION_EPOCHS - 1
    assert max(ratios) < 1.0, ratios  # bounded: what the seed adds stays below what reaches it
    assert last_incubation is not None and first_blended is not None
    assert first_blended <= 1.5 * last_incubation, (first_blended, last_incubation)
    # The sensor reaches the telemetry: EPOCH_COMPLETED carries the seed's ratio every epoch it was measured.
    carried = [
        s.delta_ratio
        for e in sink.events
        if e.event_type is TelemetryEventType.EPOCH_COMPLETED
        for s in e.payload.seeds
        if s.stage is SeedStage.TRAINING and s.delta_ratio is not None
    ]
    assert carried == ratios
