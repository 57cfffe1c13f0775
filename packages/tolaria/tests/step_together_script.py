"""A scripted episode for comparing environments stepped in different ways (alone, together, compiled): importable by
name (pytest's pythonpath lists this folder).

Tolerance: 1e-4 on losses (nats), accuracies (points: one validation sample is 0.28) and every parameter after the
episode: grouped and plain convolutions (and compiled graphs) sum in different orders, and SGD carries that rounding
from batch to batch."""

from __future__ import annotations

import torch

from esper.kasmina import GateThresholds, QualityGates
from esper.leyline import BlueprintAction, FactoredAction, LifecycleOp, TelemetryHub, canonical_action
from esper.tolaria import Environment, StepResult, get_task

TASK = get_task("digits")
DATA = TASK.load(None)
SLOTS = tuple(TASK.config.default_slots)
TOLERANCE = 1e-4
GATES = QualityGates(thresholds=GateThresholds(min_training_epochs=1, min_blending_epochs=1))
EPOCHS = 8
BLUEPRINTS = (
    BlueprintAction.CONV_LIGHT,
    BlueprintAction.CONV_LADDER,
    BlueprintAction.DEPTHWISE,
    BlueprintAction.CHANNEL_LADDER,
)


def script(env_index: int, epoch: int) -> FactoredAction:
    """Environment i germinates a seed of its own kind in its own slot, then keeps advancing it (through TRAINING,
    where it incubates, into BLENDING) and grows a ladder once blending; environment 0 never grows (dormant)."""
    slot, blueprint = env_index % len(SLOTS), BLUEPRINTS[env_index % len(BLUEPRINTS)]
    if env_index == 0:
        return canonical_action(LifecycleOp.WAIT)
    if epoch == 1:
        return canonical_action(LifecycleOp.GERMINATE, slot, blueprint)
    if epoch == 6 and blueprint in (BlueprintAction.CONV_LADDER, BlueprintAction.CHANNEL_LADDER):
        return canonical_action(LifecycleOp.GROW_INTERNAL, slot)
    return canonical_action(LifecycleOp.ADVANCE, slot)


def environment(index: int, compile_backend: str | None = None) -> Environment:
    emitter = TelemetryHub("t").emitter(index)
    cpu = torch.device("cpu")
    return Environment(TASK, DATA, SLOTS, emitter, index, cpu, gates=GATES, compile_backend=compile_backend)


def assert_same_step(together: StepResult, alone: StepResult) -> None:
    assert together.action == alone.action
    assert [(r.slot_id, r.stage, r.internal_level) for r in together.reports] == [
        (r.slot_id, r.stage, r.internal_level) for r in alone.reports
    ]
    metrics, own = together.signals.metrics, alone.signals.metrics
    assert abs(metrics.train_loss - own.train_loss) < TOLERANCE
    assert abs(together.validation.loss - alone.validation.loss) < TOLERANCE
    assert abs(together.validation.accuracy - alone.validation.accuracy) < TOLERANCE
    assert together.validation.contributions.keys() == alone.validation.contributions.keys()
