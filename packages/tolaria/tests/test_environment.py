"""The environment: every op executes, invalid actions are rejected and counted, and the governor rolls back."""

from __future__ import annotations

import math

import pytest
import torch

from esper.leyline import (
    AlphaCurveAction,
    AlphaSpeedAction,
    AlphaTargetAction,
    BlueprintAction,
    FactoredAction,
    GerminationStyle,
    GovernorReason,
    LifecycleOp,
    ListSink,
    SeedStage,
    SurfaceType,
    TelemetryHub,
    TempoAction,
    assert_covers,
)
from esper.tolaria import Environment, Governor, get_task

OP = LifecycleOp
TASK = get_task("digits")
DATA = TASK.load(None)
CPU = torch.device("cpu")


def action(op: LifecycleOp, slot: int = 0, blueprint: BlueprintAction = BlueprintAction.NOOP) -> FactoredAction:
    return FactoredAction(
        op=op,
        slot=slot,
        blueprint=blueprint,
        style=GerminationStyle.LINEAR_ADD,
        tempo=TempoAction.FAST,
        alpha_target=AlphaTargetAction.FULL,
        alpha_speed=AlphaSpeedAction.INSTANT,
        alpha_curve=AlphaCurveAction.LINEAR,
    )


def make_env(sink: ListSink | None = None) -> Environment:
    hub = TelemetryHub("test", sinks=(sink,) if sink is not None else ())
    env = Environment(TASK, DATA, ("r0c0", "r0c1"), hub.emitter(0), seed=3, device=torch.device("cpu"))
    env.reset(0)
    return env


def test_every_op_has_an_execution_path() -> None:
    assert_covers(LifecycleOp, make_env().handlers, consumer="tolaria Environment handlers")


def test_ops_execute_and_invalid_ones_are_rejected_and_counted() -> None:
    env = make_env()
    bad = env.step(action(OP.FOSSILIZE))
    assert not bad.action.success and "FOSSILIZE needs a seed; the slot is empty" in bad.action.reason
    wrong_topology = env.step(action(OP.GERMINATE, blueprint=BlueprintAction.LORA))
    assert not wrong_topology.action.success and "cannot be germinated on cnn" in wrong_topology.action.reason
    out_of_range = env.step(action(OP.ADVANCE, slot=7))
    assert not out_of_range.action.success and "outside 0..1" in out_of_range.action.reason
    assert env.tally()["invalid_actions"] == 3
    assert env.step(action(OP.GERMINATE, blueprint=BlueprintAction.CONV_LADDER)).action.success
    assert env.step(action(OP.ADVANCE)).action.success
    assert env.step(action(OP.GROW_INTERNAL)).action.success
    assert env.step(action(OP.SHRINK_INTERNAL)).action.success
    (report,) = env.model.reports()
    assert report.stage is SeedStage.TRAINING and report.internal_level == 1
    assert env.step(action(OP.PRUNE)).action.success
    assert env.tally()["internal_level_changes"] == 2 and env.tally()["pruned"] == 1
    assert env.step(action(OP.WAIT)).signals.last_action_op is OP.WAIT


def test_structural_refusals_are_invalid_and_measured_ones_are_gate_refusals() -> None:
    env = make_env()
    env.step(action(OP.GERMINATE, blueprint=BlueprintAction.CONV_LIGHT))
    env.step(action(OP.ADVANCE))
    early = env.step(action(OP.ADVANCE))  # a rule known in advance: 10 epochs in TRAINING
    assert not early.action.success and not early.action.gate_refused
    assert early.action.reason == "1 of 10 epochs in TRAINING"
    for _ in range(9):
        env.step(action(OP.WAIT))
    state = env.model.slot("r0c0").state
    assert state is not None
    state.gradients.has_exploding = True  # a measurement the gate refuses on
    refused = env.step(action(OP.ADVANCE))
    assert not refused.action.success and refused.action.gate_refused
    assert "gradients_not_exploding" in str(refused.action.reason)
    assert (env.tally()["invalid_actions"], env.tally()["gate_refusals"]) == (1, 1)
    assert env.step(action(OP.ADVANCE)).action.success  # measured healthy again after an epoch


def test_training_improves_the_host() -> None:
    env = make_env()
    first = env.step(action(OP.WAIT)).validation.accuracy
    for _ in range(8):
        last = env.step(action(OP.WAIT))
    assert last.validation.accuracy > first + 20
    assert last.signals.metrics.epoch == 9 and len(last.signals.loss_history) == 5


def test_nan_triggers_a_rollback_to_the_snapshot() -> None:
    sink = ListSink()
    env = make_env(sink)
    env.step(action(OP.GERMINATE, blueprint=BlueprintAction.CONV_LIGHT))
    env.step(action(OP.ADVANCE))
    for _ in range(3):
        env.step(action(OP.WAIT))  # epoch 5: a snapshot is taken
    snapshot = {k: v.clone() for k, v in env.model.host.state_dict().items()}
    with torch.no_grad():
        next(env.model.host.parameters()).fill_(float("nan"))  # inject
    result = env.step(action(OP.WAIT))
    assert result.rolled_back and math.isfinite(result.validation.loss)
    for key, value in env.model.host.state_dict().items():
        assert torch.equal(value, snapshot[key]), key
    assert env.model.slot("r0c0").stage is SeedStage.EMBARGOED  # the live seed was pruned (then ticked)
    (rollback,) = [e for e in sink.events if e.event_type.name == "GOVERNOR_ROLLBACK"]
    assert rollback.payload.reason is GovernorReason.NON_FINITE and rollback.payload.pruned_slots == ("r0c0",)
    assert rollback.payload.restored_epoch == 5
    assert env.tally()["governor_rollbacks"] == 1
    assert all(not state for state in env.host_optimizer.state.values())  # optimizer state cleared
    epoch_events = [e for e in sink.events if e.event_type.name == "EPOCH_COMPLETED"]
    assert epoch_events[-1].payload.governor_rollback and epoch_events[-1].payload.train_loss is None


def test_governor_verdicts() -> None:
    governor = Governor(random_guess_loss=math.log(10))
    assert governor.check(float("inf")).reason is GovernorReason.NON_FINITE
    for loss in [0.5, 0.45, 0.5, 0.48, 0.52, 0.5]:
        assert governor.check(loss) is None
    assert governor.check(2.3).reason is GovernorReason.COLLAPSE  # back to random guessing after learning
    governor = Governor(random_guess_loss=100.0)
    for loss in [1.0, 1.1, 0.9, 1.0, 1.05]:
        assert governor.check(loss) is None
    assert governor.check(9.0) is None and governor.check(9.0) is None  # two anomalies: patience
    assert governor.check(9.0).reason is GovernorReason.DIVERGENCE
    with pytest.raises(RuntimeError, match="no snapshot"):
        Governor(1.0).restore(make_env().model)


def grow_two_ladders(env: Environment, ladder: BlueprintAction) -> None:
    """Germinate `ladder` in slots 0 and 1, grow each once, then shrink slot 0's: every step must apply."""
    for step in (
        action(OP.GERMINATE, 0, ladder),
        action(OP.ADVANCE, 0),
        action(OP.GROW_INTERNAL, 0),
        action(OP.GERMINATE, 1, ladder),
        action(OP.ADVANCE, 1),
        action(OP.GROW_INTERNAL, 1),
        action(OP.SHRINK_INTERNAL, 0),
    ):
        assert env.step(step).action.success


def test_a_lora_ladder_grows_on_both_surfaces_of_the_transformer_lattice() -> None:
    """charlm_layerwise: a lora_ladder germinated after an MLP residual and another after an attention residual;
    SEED_GERMINATED names each slot's surface and the level changes come from the LoRA ladders."""
    task = get_task("charlm_layerwise")
    sink = ListSink()
    slots = ("r1c0", "r0c1")  # layer 0's POST_MLP, layer 1's POST_ATTN: action order
    env = Environment(task, task.load(None), slots, TelemetryHub("lattice", sinks=(sink,)).emitter(0), 3, CPU)
    env.reset(0)
    ladder = BlueprintAction.LORA_LADDER
    grow_two_ladders(env, ladder)
    germinated = [e for e in sink.events if e.event_type.name == "SEED_GERMINATED"]
    assert [(e.slot_id, e.payload.surface) for e in germinated] == [  # type: ignore[union-attr]
        ("r1c0", SurfaceType.POST_MLP),
        ("r0c1", SurfaceType.POST_ATTN),
    ]
    levels = [e for e in sink.events if e.event_type.name == "SEED_INTERNAL_LEVEL_CHANGED"]
    assert [(e.slot_id, e.payload.blueprint_id, e.payload.from_level, e.payload.to_level) for e in levels] == [  # type: ignore[union-attr]
        ("r1c0", "lora_ladder", 1, 2),
        ("r0c1", "lora_ladder", 1, 2),
        ("r1c0", "lora_ladder", 2, 1),
    ]
    reports = {r.slot_id: r for r in env.model.reports()}
    dim = task.config.transformer_host.n_embd  # type: ignore[union-attr]
    assert reports["r0c1"].internal_active_params == 2 * (2 * dim * 4)  # two rank-4 blocks at level 2
    assert reports["r1c0"].internal_active_params == 2 * dim * 4


def test_a_channel_ladder_grows_on_both_cnn_surfaces() -> None:
    """digits_narrow with a pre-pool and a post-pool slot: channel ladders germinate on each, SEED_GERMINATED names
    the surface and the group size, and the level changes come from the channel ladders."""
    task = get_task("digits_narrow")
    sink = ListSink()
    slots = ("r0c0", "r1c0")  # block 0 before and after its pool: action (forward) order
    env = Environment(task, DATA, slots, TelemetryHub("cnn", sinks=(sink,)).emitter(0), 3, CPU)
    env.reset(0)
    ladder = BlueprintAction.CHANNEL_LADDER
    grow_two_ladders(env, ladder)
    germinated = [e.payload for e in sink.events if e.event_type.name == "SEED_GERMINATED"]
    assert [(p.surface, p.internal_group_size) for p in germinated] == [  # type: ignore[union-attr]
        (SurfaceType.PRE_POOL, 2),
        (SurfaceType.POST_POOL, 2),
    ]
    levels = [e for e in sink.events if e.event_type.name == "SEED_INTERNAL_LEVEL_CHANGED"]
    assert [(e.slot_id, e.payload.blueprint_id, e.payload.to_level, e.payload.group_size) for e in levels] == [  # type: ignore[union-attr]
        ("r0c0", "channel_ladder", 2, 2),
        ("r1c0", "channel_ladder", 2, 2),
        ("r0c0", "channel_ladder", 1, 2),
    ]
    reports = {r.slot_id: r for r in env.model.reports()}
    assert reports["r1c0"].internal_group_size == 2 and reports["r1c0"].internal_max_level == 4
    assert reports["r1c0"].internal_active_params > reports["r0c0"].internal_active_params  # two groups vs one


def test_slots_out_of_the_hosts_action_order_are_refused() -> None:
    """The slot head's index is the position in slot_ids, which must be the host's order (what masks and the
    observation use): r1c0 (block 0's post-pool point) comes before r0c1."""
    with pytest.raises(ValueError, match=r"not in the host's action order: \['r0c0', 'r1c0', 'r0c1'\]"):
        Environment(TASK, DATA, ("r0c0", "r0c1", "r1c0"), TelemetryHub("x").emitter(0), 0, CPU)
