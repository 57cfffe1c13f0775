"""Masks and environment share one rule set: every action the masks offer passes every structural check the
environment and the seed gates apply. Whatever a policy picks among masked-valid actions, the environment either
applies it or a seed gate refuses it on a measurement (a gate outcome), never as an invalid action."""

from __future__ import annotations

import dataclasses

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esper.kasmina import GateThresholds, QualityGates
from esper.leyline import (
    ActionHead,
    AlphaCurveAction,
    AlphaSpeedAction,
    AlphaTargetAction,
    BlueprintAction,
    FactoredAction,
    GerminationStyle,
    LifecycleOp,
    TelemetryHub,
    TempoAction,
    Topology,
    blueprints_for,
)
from esper.tamiyo import ActionMasks, EnvView, MaskConfig, compute_masks
from esper.tolaria import Environment, get_task

DIGITS = get_task("digits")
TASK = dataclasses.replace(DIGITS, config=dataclasses.replace(DIGITS.config, batches_per_epoch=2))
DATA = TASK.load(None)
SLOTS = ("r0c0", "r1c0", "r0c1")  # the host's action (forward) order
# Short gates so that a 40-epoch episode reaches BLENDING, HOLDING and FOSSILIZED.
GATES = QualityGates(thresholds=GateThresholds(min_training_epochs=2))


def _choose(data: st.DataObject, masks: ActionMasks, head: ActionHead, enum: type) -> object:
    allowed = [v for v in enum if bool(masks.head(head)[0, int(v)])]
    return data.draw(st.sampled_from(allowed))


def draw_action(data: st.DataObject, masks: ActionMasks) -> FactoredAction:
    """Any masked-valid action; WAIT only when nothing else is valid (an episode of WAITs would test nothing)."""
    valid = [op for op in LifecycleOp if bool(masks.op[0, op])]
    op = data.draw(st.sampled_from([op for op in valid if op is not LifecycleOp.WAIT] or valid))
    slots = [i for i in range(len(SLOTS)) if bool(masks.slot_by_op[0, op, i])]
    return FactoredAction(
        op=op,
        slot=data.draw(st.sampled_from(slots)),
        blueprint=_choose(data, masks, ActionHead.BLUEPRINT, BlueprintAction),  # type: ignore[arg-type]
        style=_choose(data, masks, ActionHead.STYLE, GerminationStyle),  # type: ignore[arg-type]
        tempo=_choose(data, masks, ActionHead.TEMPO, TempoAction),  # type: ignore[arg-type]
        alpha_target=_choose(data, masks, ActionHead.ALPHA_TARGET, AlphaTargetAction),  # type: ignore[arg-type]
        alpha_speed=_choose(data, masks, ActionHead.ALPHA_SPEED, AlphaSpeedAction),  # type: ignore[arg-type]
        alpha_curve=_choose(data, masks, ActionHead.ALPHA_CURVE, AlphaCurveAction),  # type: ignore[arg-type]
    )


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), st.one_of(st.none(), st.integers(1, 2)))
def test_every_masked_valid_action_passes_every_structural_check(data: st.DataObject, max_seeds: int | None) -> None:
    env = Environment(
        TASK, DATA, SLOTS, TelemetryHub("t").emitter(0), 0, torch.device("cpu"), gates=GATES, max_seeds=max_seeds
    )
    config = MaskConfig(SLOTS, Topology.CNN, blueprints_for(Topology.CNN), env.limits)
    signals, reports = env.reset(0)
    for _ in range(40):
        masks = compute_masks([EnvView(signals, {r.slot_id: r for r in reports})], config)
        action = draw_action(data, masks)
        result = env.step(action)
        # Applied, or refused by a gate on a measurement: the rule set and the gates never disagree (a structural
        # gate check failing would raise in the environment).
        assert result.action.success or result.action.gate_refused, (action, result.action.reason)
        signals, reports = result.signals, result.reports
    assert env.tally()["invalid_actions"] == 0 and env.tally()["germinated"] >= 1


def test_limits_follow_the_gates() -> None:
    strict = QualityGates(thresholds=GateThresholds(min_training_epochs=3, min_blending_epochs=4))
    assert strict.limits(2).min_training_epochs == 3 and strict.limits(2).max_seeds == 2
    assert strict.limits().min_blending_epochs == 0  # permissive gates do not count BLENDING epochs
