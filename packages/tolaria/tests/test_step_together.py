"""Environments stepped together (their hosts trained as one stacked computation) give each environment the run it
gets alone: the same actions succeed, the same seeds grow, and losses, accuracies and weights agree to float rounding.

Tolerance: 1e-4 on losses (nats), accuracies (points: one validation sample is 0.28) and every parameter after the
episode: grouped and plain convolutions sum in different orders, and SGD carries that rounding from batch to batch."""

from __future__ import annotations

import torch

from esper.kasmina import GateThresholds, QualityGates, can_stack
from esper.leyline import BlueprintAction, LifecycleOp, TelemetryHub, canonical_action
from esper.tolaria import Environment, StepResult, get_task, step_together

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


def script(env_index: int, epoch: int) -> object:
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


def environment(index: int) -> Environment:
    emitter = TelemetryHub("t").emitter(index)
    return Environment(TASK, DATA, SLOTS, emitter, seed=index, device=torch.device("cpu"), gates=GATES)


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


def test_an_environment_in_a_batch_of_eight_runs_as_it_does_alone() -> None:
    envs = [environment(i) for i in range(8)]
    for env in envs:
        env.reset(0)
    assert can_stack([env.model for env in envs])
    history: list[list[StepResult]] = []
    for epoch in range(1, EPOCHS + 1):
        history.append(step_together(envs, [script(i, epoch) for i in range(8)]))  # type: ignore[misc]
    stages = {r.stage.name for step in history for result in step for r in result.reports}
    assert {"TRAINING", "BLENDING"} <= stages, f"the script must reach incubation and blending, reached {stages}"
    assert any(result.validation.contributions for result in history[-1])
    for index in (0, 3, 5):
        alone = environment(index)
        alone.reset(0)
        for epoch in range(1, EPOCHS + 1):
            assert_same_step(history[epoch - 1][index], alone.step(script(index, epoch)))  # type: ignore[arg-type]
        for p, q in zip(envs[index].model.parameters(), alone.model.parameters(), strict=True):
            assert p.shape == q.shape and torch.allclose(p, q, atol=TOLERANCE)
