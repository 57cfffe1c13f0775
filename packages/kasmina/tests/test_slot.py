"""SeedSlot lifecycle: every transition, illegal ops, isolation, blending, embargo, pruning, gates, telemetry."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esper.kasmina import (
    FORWARD_MODE,
    GateMode,
    GateThresholds,
    IllegalOperation,
    QualityGates,
    SeedSlot,
    ease,
)
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.leyline import (
    INTERNAL_OP_STAGES,
    VALID_TRANSITIONS,
    AlphaAlgorithm,
    AlphaCurve,
    AlphaMode,
    BlueprintAction,
    GerminationStyle,
    LifecycleOp,
    PruneInitiator,
    SeedInternalKind,
    SeedStage,
    SurfaceType,
    TelemetryHub,
    Topology,
    assert_covers,
)

S = SeedStage


def test_stage_tables_cover_every_stage() -> None:
    assert_covers(SeedStage, FORWARD_MODE, consumer="kasmina FORWARD_MODE")
    slot = SeedSlot("r0c0", 8, Topology.CNN, QualityGates(), TelemetryHub("r").emitter(0), surface=SurfaceType.PRE_POOL)
    assert_covers(SeedStage, slot._tick, consumer="kasmina SeedSlot per-epoch tick")


def test_full_happy_path_visits_every_live_stage_in_order(rig: Any) -> None:
    rig.drive("r0c1", S.FOSSILIZED)
    changes = [(p.from_stage, p.to_stage) for p in rig.events("SEED_STAGE_CHANGED")]
    assert changes == [
        (S.DORMANT, S.GERMINATED),
        (S.GERMINATED, S.TRAINING),
        (S.TRAINING, S.BLENDING),
        (S.BLENDING, S.HOLDING),
        (S.HOLDING, S.FOSSILIZED),
    ]
    for before, after in changes[1:]:
        assert after in VALID_TRANSITIONS[before]
    assert rig.events("SEED_GERMINATED")[0].params == rig.model.slot("r0c1").seed_param_count()
    (fossil,) = rig.events("SEED_FOSSILIZED")
    assert fossil.counterfactual_contribution is not None
    gates = [p.result.gate.name for p in rig.events("SEED_GATE_EVALUATED")]
    assert {"G0", "G1", "G2", "G3", "G5"} <= set(gates)


def test_fossilized_is_terminal(rig: Any) -> None:
    rig.drive("r0c0", S.FOSSILIZED)
    slot = rig.model.slot("r0c0")
    for op, call in [
        (LifecycleOp.PRUNE, slot.prune),
        (LifecycleOp.ADVANCE, slot.advance),
        (LifecycleOp.FOSSILIZE, slot.fossilize),
        (LifecycleOp.GROW_INTERNAL, lambda: slot.change_internal_level(LifecycleOp.GROW_INTERNAL)),
        (LifecycleOp.SHRINK_INTERNAL, lambda: slot.change_internal_level(LifecycleOp.SHRINK_INTERNAL)),
    ]:
        with pytest.raises(IllegalOperation) as caught:
            call()
        assert (caught.value.slot_id, caught.value.stage, caught.value.op) == ("r0c0", S.FOSSILIZED, op)
    for _ in range(20):
        rig.epoch()
    assert slot.stage is S.FOSSILIZED


# Where each op is legal (the slot's contract); everything else must raise IllegalOperation.
LEGAL_IN: dict[str, frozenset[SeedStage]] = {
    "germinate": frozenset({S.DORMANT}),
    "advance": frozenset({S.GERMINATED, S.TRAINING, S.BLENDING}),
    "fossilize": frozenset({S.HOLDING}),
    "prune": frozenset({S.GERMINATED, S.TRAINING, S.BLENDING, S.HOLDING}),
    "set_alpha_target": frozenset({S.BLENDING, S.HOLDING}),
    "grow_internal": frozenset({S.TRAINING, S.BLENDING, S.HOLDING}),
    "shrink_internal": frozenset({S.TRAINING, S.BLENDING, S.HOLDING}),
}
OP_OF = {
    "germinate": LifecycleOp.GERMINATE,
    "advance": LifecycleOp.ADVANCE,
    "fossilize": LifecycleOp.FOSSILIZE,
    "prune": LifecycleOp.PRUNE,
    "set_alpha_target": LifecycleOp.SET_ALPHA_TARGET,
    "grow_internal": LifecycleOp.GROW_INTERNAL,
    "shrink_internal": LifecycleOp.SHRINK_INTERNAL,
}
ARGS: dict[str, tuple[Any, ...]] = {
    "set_alpha_target": (1.0, 0, AlphaCurve.LINEAR),
    "germinate": (BlueprintAction.CONV_LADDER, "again", GerminationStyle.LINEAR_ADD, 3, 1.0, 10),
}
REACHABLE = [
    S.DORMANT,
    S.GERMINATED,
    S.TRAINING,
    S.BLENDING,
    S.HOLDING,
    S.FOSSILIZED,
    S.PRUNED,
    S.EMBARGOED,
    S.RESETTING,
]


def put_in(rig: Any, slot_id: str, stage: SeedStage) -> None:
    if stage is S.DORMANT:
        return
    if stage in (S.PRUNED, S.EMBARGOED, S.RESETTING):
        rig.drive(slot_id, S.TRAINING)
        rig.model.slot(slot_id).prune()
        while rig.model.slot(slot_id).stage is not stage:
            rig.model.step_epoch()
        return
    rig.drive(slot_id, stage)
    while rig.model.slot(slot_id).state.alpha.mode is not AlphaMode.HOLD:  # a BLENDING seed whose ramp finished
        rig.model.step_epoch()


@pytest.mark.parametrize("stage", REACHABLE, ids=[s.name for s in REACHABLE])
def test_every_op_in_every_stage_is_legal_exactly_where_declared(make_rig: Any, stage: SeedStage) -> None:
    for method, legal in LEGAL_IN.items():
        rig = make_rig(embargo_epochs=2)
        put_in(rig, "r0c1", stage)
        slot = rig.model.slot("r0c1")
        assert slot.stage is stage
        calls = {
            "germinate": slot.germinate,
            "advance": slot.advance,
            "fossilize": slot.fossilize,
            "prune": slot.prune,
            "set_alpha_target": slot.set_alpha_target,
            "grow_internal": functools.partial(slot.change_internal_level, LifecycleOp.GROW_INTERNAL),
            "shrink_internal": functools.partial(slot.change_internal_level, LifecycleOp.SHRINK_INTERNAL),
        }
        args = ARGS[method] if method in ARGS else ()
        if stage in legal:
            calls[method](*args)  # must not raise
        else:
            with pytest.raises(IllegalOperation) as caught:
                calls[method](*args)
            assert (caught.value.slot_id, caught.value.stage, caught.value.op) == ("r0c1", stage, OP_OF[method])
            assert f"slot r0c1 ({stage.name}): {OP_OF[method].name} is illegal" in str(caught.value)


def test_every_transition_in_the_table_happens(make_rig: Any) -> None:
    """Scenarios that together walk every edge of VALID_TRANSITIONS (UNKNOWN never occurs in a slot)."""
    seen: set[tuple[SeedStage, SeedStage]] = set()
    scenarios = [
        lambda r: r.drive("r0c0", S.FOSSILIZED),
        lambda r: (r.drive("r0c0", S.GERMINATED), r.model.slot("r0c0").prune()),
        lambda r: (r.drive("r0c0", S.TRAINING), r.model.slot("r0c0").prune()),
        lambda r: (r.drive("r0c0", S.BLENDING, tempo=8), r.model.slot("r0c0").prune(initiator=PruneInitiator.GOVERNOR)),
        lambda r: (r.drive("r0c0", S.HOLDING), r.model.slot("r0c0").prune(initiator=PruneInitiator.GOVERNOR)),
        lambda r: (r.drive("r0c0", S.HOLDING), r.model.slot("r0c0").set_alpha_target(0.5, 1, AlphaCurve.LINEAR)),
    ]
    for scenario in scenarios:
        rig = make_rig(embargo_epochs=1)
        scenario(rig)
        for _ in range(4):
            rig.model.step_epoch()
        seen |= {(p.from_stage, p.to_stage) for p in rig.events("SEED_STAGE_CHANGED")}
    table = {(a, b) for a, targets in VALID_TRANSITIONS.items() for b in targets if a is not S.UNKNOWN}
    assert seen == table


def test_failed_gates_do_not_move_the_seed(make_rig: Any) -> None:
    rig = make_rig(gates=QualityGates(thresholds=GateThresholds(min_training_epochs=100)))
    rig.drive("r0c0", S.TRAINING)
    result = rig.model.slot("r0c0").advance()
    assert not result.passed and "min_training_epochs" in result.checks_failed
    assert rig.model.slot("r0c0").stage is S.TRAINING


def test_training_isolates_the_host(make_rig: Any) -> None:
    """TRAINING: the same logits, host gradients and batch-norm statistics as without the seed, the incubation loss
    included; the seed still learns."""
    bare, seeded = make_rig(seed=3), make_rig(seed=3)
    seeded.drive("r0c1", S.TRAINING, blueprint=BlueprintAction.CONV_HEAVY)
    for p_bare, p_seeded in zip(bare.model.host.parameters(), seeded.model.host.parameters(), strict=True):
        assert torch.equal(p_bare, p_seeded)  # same start: germination did not touch the host
    for rig in (bare, seeded):
        rig.model.train()
        rig.model.zero_grad(set_to_none=True)
    out_bare, out_seeded = bare.model(bare.x, incubate=True), seeded.model(seeded.x, incubate=True)
    assert out_bare.incubation_logits is None and out_seeded.incubation_logits is not None
    assert torch.equal(out_bare.logits, out_seeded.logits)
    out_bare.losses(torch.nn.functional.cross_entropy, bare.y)[1].backward()
    out_seeded.losses(torch.nn.functional.cross_entropy, seeded.y)[1].backward()
    for (name, p_bare), p_seeded in zip(
        bare.model.host.named_parameters(), seeded.model.host.parameters(), strict=True
    ):
        assert torch.equal(p_bare.grad, p_seeded.grad), name
    for (name, b_bare), b_seeded in zip(bare.model.host.named_buffers(), seeded.model.host.buffers(), strict=True):
        assert torch.equal(b_bare, b_seeded), name  # the incubation path left the running statistics alone
    seed_grads = [p.grad for p in seeded.model.seed_parameters("r0c1") if p.requires_grad]
    assert seed_grads and all(g is not None for g in seed_grads)
    assert any(float(g.abs().sum()) > 0 for g in seed_grads)


def test_incubation_learns_the_loss_the_seed_causes_once_blended(make_rig: Any) -> None:
    """The incubation path is the model with the seed blended at its target amplitude, and the seed's gradient is
    that model's loss gradient (what the old straight-through incubator never showed it)."""
    rig = make_rig(seed=5)
    rig.drive("r0c1", S.TRAINING, blueprint=BlueprintAction.CONV_HEAVY, target=0.7)
    model, slot = rig.model, rig.model.slot("r0c1")
    with torch.no_grad():  # move the seed away from its identity initialisation
        for p in model.seed_parameters("r0c1"):
            p.add_(0.1 * torch.randn_like(p))
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(rig.x, incubate=True)
    assert not torch.equal(out.logits, out.incubation_logits)
    torch.nn.functional.cross_entropy(out.incubation_logits, rig.y).backward()
    incubation_grads = [p.grad.clone() for p in model.seed_parameters("r0c1")]
    model.zero_grad(set_to_none=True)
    slot.state.stage, slot.state.alpha.alpha = S.BLENDING, 0.7  # the same seed, blended at its target
    reference = model(rig.x)
    torch.testing.assert_close(out.incubation_logits, reference)
    torch.nn.functional.cross_entropy(reference, rig.y).backward()
    for incubated, p in zip(incubation_grads, model.seed_parameters("r0c1"), strict=True):
        torch.testing.assert_close(incubated, p.grad)


def test_blending_follows_the_curve_and_reaches_the_target(rig: Any) -> None:
    rig.drive("r0c0", S.BLENDING, style=GerminationStyle.SIGMOID_ADD, tempo=5)
    slot = rig.model.slot("r0c0")
    alphas = []
    while slot.state.alpha.mode is AlphaMode.UP:
        rig.model.step_epoch()
        alphas.append(slot.alpha)
    assert len(alphas) == 5 and alphas[-1] == 1.0
    assert alphas == sorted(alphas) and 0.0 < alphas[0] < alphas[2] < 1.0
    expected = [ease(AlphaCurve.SIGMOID, t / 5, 12.0) for t in range(1, 5)]
    assert alphas[:4] == pytest.approx(expected)


def test_ease_curves_are_monotone_and_exact_at_the_ends() -> None:
    for curve in AlphaCurve:
        values = [ease(curve, t / 20, 6.0) for t in range(21)]
        assert values[0] == pytest.approx(0.0) and values[-1] == pytest.approx(1.0)
        assert values == sorted(values)
    assert ease(AlphaCurve.COSINE, 0.5, 12.0) == pytest.approx(0.5)


@pytest.mark.parametrize("embargo", [1, 3, 5])
def test_embargo_lasts_exactly_the_configured_epochs(make_rig: Any, embargo: int) -> None:
    rig = make_rig(embargo_epochs=embargo)
    rig.drive("r0c0", S.TRAINING)
    slot = rig.model.slot("r0c0")
    slot.prune()
    observed = []
    for _ in range(embargo + 4):
        rig.model.step_epoch()
        observed.append(slot.stage)
    assert observed.count(S.EMBARGOED) == embargo
    assert observed[: embargo + 2] == [S.EMBARGOED] * embargo + [S.RESETTING, S.DORMANT]
    assert slot.state is None and slot.seed is None
    rig.germinate("r0c0")  # reusable again
    assert slot.stage is S.GERMINATED


def test_scheduled_prune_ramps_down_frozen_then_removes(rig: Any) -> None:
    rig.drive("r0c0", S.HOLDING)
    slot = rig.model.slot("r0c0")
    slot.prune(steps=3, curve=AlphaCurve.LINEAR)
    assert slot.stage is S.BLENDING and slot.state.alpha.mode is AlphaMode.DOWN
    assert not any(p.requires_grad for p in rig.model.seed_parameters("r0c0"))
    alphas = []
    for _ in range(3):
        rig.epoch()
        alphas.append(slot.alpha)
    assert alphas[:2] == pytest.approx([2 / 3, 1 / 3]) and slot.stage is S.PRUNED
    (pruned,) = rig.events("SEED_PRUNED")
    assert pruned.initiator is PruneInitiator.SCHEDULE and pruned.from_stage is S.BLENDING


def test_instant_prune_from_every_live_stage(rig: Any) -> None:
    for slot_id, stage in [("r0c0", S.GERMINATED), ("r0c1", S.TRAINING), ("r1c0", S.HOLDING)]:
        rig.drive(slot_id, stage)
        rig.model.slot(slot_id).prune(initiator=PruneInitiator.GOVERNOR, reason="rollback")
        assert rig.model.slot(slot_id).stage is S.PRUNED
    assert [p.from_stage for p in rig.events("SEED_PRUNED")] == [S.GERMINATED, S.TRAINING, S.HOLDING]


def test_set_alpha_target_below_full_returns_to_blending(rig: Any) -> None:
    rig.drive("r0c0", S.HOLDING)
    slot = rig.model.slot("r0c0")
    slot.set_alpha_target(0.5, 2, AlphaCurve.COSINE, algorithm=AlphaAlgorithm.GATE)
    assert slot.stage is S.BLENDING and slot.gate is not None
    rig.epoch()
    rig.epoch()
    assert slot.alpha == 0.5 and slot.state.alpha.mode is AlphaMode.HOLD
    assert not slot.advance().passed  # G3 needs full amplitude
    slot.set_alpha_target(1.0, 0, AlphaCurve.LINEAR)
    assert slot.advance().passed and slot.stage is S.HOLDING
    with pytest.raises(ValueError, match=r"alpha target must be in \(0, 1\]"):
        slot.set_alpha_target(0.0, 1, AlphaCurve.LINEAR)


@pytest.mark.parametrize("style", list(GerminationStyle))
def test_blend_operators_are_identity_at_zero_and_seed_at_full(rig: Any, style: GerminationStyle) -> None:
    rig.drive("r0c0", S.BLENDING, style=style, blueprint=BlueprintAction.CONV_LIGHT)
    slot = rig.model.slot("r0c0")
    with torch.no_grad():
        torch.nn.init.normal_(slot.seed.proj.weight)  # make the seed's delta non-zero
    x = torch.randn(4, 8, 8, 8)
    slot.state.alpha.alpha = 0.0
    assert torch.allclose(slot(x), x)
    slot.state.alpha.alpha = 1.0
    full = slot(x)
    assert not torch.allclose(full, x)
    if style in (GerminationStyle.LINEAR_ADD, GerminationStyle.SIGMOID_ADD):
        assert torch.allclose(full, slot.seed(x), atol=1e-6)


def test_strict_gates_need_measured_contribution(make_rig: Any) -> None:
    strict = QualityGates(
        GateMode.STRICT,
        GateThresholds(
            min_training_epochs=1,
            min_training_improvement=-100.0,
            min_gradient_ratio=0.0,
            min_blending_epochs=1,
            min_fossilize_contribution=50.0,
        ),
    )
    rig = make_rig(gates=strict)
    rig.drive("r0c0", S.HOLDING)
    result = rig.model.slot("r0c0").fossilize()
    assert not result.passed and result.checks_failed == ("min_contribution",)


def test_permissive_g2_requires_measured_gradients(make_rig: Any) -> None:
    rig = make_rig()
    rig.drive("r0c0", S.TRAINING)
    slot = rig.model.slot("r0c0")
    slot.state.gradients.norm = None
    slot.state.epochs_in_stage = 20
    result = slot.advance()
    assert not result.passed and "gradients_measured" in result.checks_failed


def test_reports_follow_the_slot(rig: Any) -> None:
    rig.drive("r0c1", S.BLENDING)
    (report,) = rig.model.reports()
    slot = rig.model.slot("r0c1")
    assert report.slot_id == "r0c1" and report.stage is S.BLENDING and report.blueprint is BlueprintAction.CONV_LADDER
    assert (report.internal_level, report.internal_max_level) == (1, 4)
    assert report.internal_active_params == slot.seed_param_count() == report.metrics.seed_param_count
    assert report.metrics.gradient_health is not None


@pytest.mark.parametrize("stage", sorted(INTERNAL_OP_STAGES))
def test_internal_ops_in_allowed_stages(rig: Any, stage: SeedStage) -> None:
    rig.drive("r0c0", stage)
    slot = rig.model.slot("r0c0")
    assert slot.change_internal_level(LifecycleOp.GROW_INTERNAL) and slot.state.internal_level == 2
    assert (
        slot.change_internal_level(LifecycleOp.SHRINK_INTERNAL)
        and slot.change_internal_level(LifecycleOp.SHRINK_INTERNAL)
        and slot.state.internal_level == 0
    )
    assert not slot.change_internal_level(LifecycleOp.SHRINK_INTERNAL)  # bound: no-op
    levels = [(p.from_level, p.to_level) for p in rig.events("SEED_INTERNAL_LEVEL_CHANGED")]
    assert levels == [(1, 2), (2, 1), (1, 0)]


def test_internal_ops_need_internal_structure(rig: Any) -> None:
    rig.drive("r0c0", S.TRAINING, blueprint=BlueprintAction.NORM)
    with pytest.raises(IllegalOperation, match="no internal structure"):
        rig.model.slot("r0c0").change_internal_level(LifecycleOp.GROW_INTERNAL)


LADDERS = [
    (Topology.CNN, BlueprintAction.CONV_LADDER),
    (Topology.TRANSFORMER, BlueprintAction.LORA_LADDER),
    (Topology.CNN, BlueprintAction.CHANNEL_LADDER),
]


# make_rig is a factory (it holds no per-test state), so sharing it across examples is safe.
@pytest.mark.parametrize(("topology", "blueprint"), LADDERS, ids=[b.name.lower() for _, b in LADDERS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from([LifecycleOp.GROW_INTERNAL, LifecycleOp.SHRINK_INTERNAL]), max_size=20),
    st.sampled_from([S.TRAINING, S.BLENDING, S.HOLDING]),
)
def test_ladder_invariants_over_random_op_sequences(
    make_rig: Any, topology: Topology, blueprint: BlueprintAction, ops: list[LifecycleOp], stage: SeedStage
) -> None:
    rig = make_rig(slots=("r0c0",), topology=topology)
    rig.drive("r0c0", stage, blueprint=blueprint)
    slot = rig.model.slot("r0c0")
    level = 1
    for op in ops:
        before = len(rig.events("SEED_INTERNAL_LEVEL_CHANGED"))
        changed = slot.change_internal_level(op)
        expected = min(level + 1, 4) if op is LifecycleOp.GROW_INTERNAL else max(level - 1, 0)
        assert changed == (expected != level)
        level = expected
        events = rig.events("SEED_INTERNAL_LEVEL_CHANGED")
        assert len(events) == before + int(changed)  # no event for a no-op at the bounds
        (report,) = rig.model.reports()  # the report check enforces 0 <= level <= max
        assert report.internal_level == level == slot.seed.internal_level
        assert report.internal_active_params == slot.seed.active_param_count() == report.metrics.seed_param_count
        assert report.internal_group_size == (4 if blueprint is BlueprintAction.CHANNEL_LADDER else 0)  # 16 / 4
        trainable = sum(p.numel() for p in slot.seed.parameters() if p.requires_grad)
        assert trainable == slot.seed.active_param_count()
        if changed:
            assert events[-1].to_level == level and abs(events[-1].from_level - level) == 1
            assert events[-1].active_params == slot.seed.active_param_count()
            assert events[-1].group_size == report.internal_group_size
    assert slot.stage is stage  # internal ops never move the lifecycle


def test_only_internal_ops_change_the_level(rig: Any) -> None:
    rig.drive("r0c0", SeedStage.TRAINING)
    with pytest.raises(ValueError, match="ADVANCE is not an internal op"):
        rig.model.slot("r0c0").change_internal_level(LifecycleOp.ADVANCE)


# ---------------------------------------------------------------- lora_ladder on the transformer lattice
D = 16  # the lattice rig's embedding width
LORA_BLOCK = 2 * D * 4  # one rank-4 block: down (D -> 4) and up (4 -> D)
LEVEL_OPS = (LifecycleOp.GROW_INTERNAL, LifecycleOp.SHRINK_INTERNAL)


def lattice_rig(make_rig: Any) -> Any:
    return make_rig(slots=("r0c0", "r1c0", "r0c1"), topology=Topology.TRANSFORMER)


def test_germination_reports_the_slots_surface(make_rig: Any, rig: Any) -> None:
    rig.germinate("r1c0")
    rig.germinate("r0c1")
    assert [p.surface for p in rig.events("SEED_GERMINATED")] == [SurfaceType.POST_POOL, SurfaceType.PRE_POOL]
    lattice = lattice_rig(make_rig)
    lattice.germinate("r1c0", blueprint=BlueprintAction.LORA_LADDER)
    lattice.germinate("r0c1", blueprint=BlueprintAction.LORA)
    first, second = lattice.events("SEED_GERMINATED")
    assert (first.surface, second.surface) == (SurfaceType.POST_MLP, SurfaceType.POST_ATTN)
    assert (first.internal_kind, first.internal_level, first.internal_max_level) == (SeedInternalKind.LORA_LADDER, 1, 4)
    assert first.params == LORA_BLOCK  # level 1 of 4 at birth
    assert (second.internal_kind, second.internal_level, second.internal_max_level) == (SeedInternalKind.NONE, 0, 1)


@pytest.mark.parametrize("stage", sorted(INTERNAL_OP_STAGES), ids=lambda s: s.name)
def test_lora_ladder_grows_and_shrinks_in_a_slot(make_rig: Any, stage: SeedStage) -> None:
    rig = lattice_rig(make_rig)
    rig.drive("r1c0", stage, blueprint=BlueprintAction.LORA_LADDER)
    slot = rig.model.slot("r1c0")
    walk = [LifecycleOp.GROW_INTERNAL] * 4 + [LifecycleOp.SHRINK_INTERNAL] * 5
    changed = [slot.change_internal_level(op) for op in walk]
    assert changed == [True, True, True, False, True, True, True, True, False]  # 4 and 0 are the bounds
    events = rig.events("SEED_INTERNAL_LEVEL_CHANGED")
    assert [(e.from_level, e.to_level) for e in events] == [(1, 2), (2, 3), (3, 4), (4, 3), (3, 2), (2, 1), (1, 0)]
    assert [e.active_params for e in events] == [LORA_BLOCK * e.to_level for e in events]
    assert {e.internal_kind for e in events} == {SeedInternalKind.LORA_LADDER}
    (report,) = rig.model.reports()
    assert (report.internal_kind, report.internal_level, report.internal_active_params) == (
        SeedInternalKind.LORA_LADDER,
        0,
        0,
    )
    assert slot.change_internal_level(LifecycleOp.GROW_INTERNAL)
    (report,) = rig.model.reports()
    assert report.internal_level == 1 and report.internal_active_params == report.metrics.seed_param_count == LORA_BLOCK
    assert slot.stage is stage


def test_lora_ladder_trains_only_its_active_blocks(make_rig: Any) -> None:
    rig = lattice_rig(make_rig)
    rig.drive("r0c1", S.TRAINING, blueprint=BlueprintAction.LORA_LADDER)
    slot = rig.model.slot("r0c1")
    assert slot.change_internal_level(LifecycleOp.GROW_INTERNAL)  # blocks 0 and 1 active
    rig.train_step()  # the incubation path reaches the seed
    ladder = slot.seed
    for k in range(4):
        up_grad, down_grad = ladder.up[k].weight.grad, ladder.down[k].weight.grad
        if k < 2:  # up starts at zero, so the first step's gradient lands on up and down's is exactly zero
            assert up_grad is not None and float(up_grad.abs().sum()) > 0
            assert down_grad is not None and float(down_grad.abs().sum()) == 0.0
        else:
            assert up_grad is None and down_grad is None


@pytest.mark.parametrize("blueprint", [BlueprintAction.LORA_LADDER, BlueprintAction.CHANNEL_LADDER])
def test_fossilizing_a_ladder_freezes_its_level(make_rig: Any, blueprint: BlueprintAction) -> None:
    lora = blueprint is BlueprintAction.LORA_LADDER
    rig = lattice_rig(make_rig) if lora else channel_rig(make_rig)
    rig.drive("r0c0", S.HOLDING, blueprint=blueprint)
    slot = rig.model.slot("r0c0")
    assert slot.change_internal_level(LifecycleOp.GROW_INTERNAL)
    rig.drive("r0c0", S.FOSSILIZED)
    for op in LEVEL_OPS:
        with pytest.raises(IllegalOperation, match=f"FOSSILIZED\\): {op.name} is illegal"):
            slot.change_internal_level(op)
    for _ in range(3):
        rig.epoch()
    (report,) = rig.model.reports()
    params = 2 * LORA_BLOCK if lora else channel_params(2)
    assert report.stage is S.FOSSILIZED and report.internal_level == slot.seed.internal_level == 2
    assert (report.internal_group_size, report.internal_active_params) == (0 if lora else 2, params)
    (fossil,) = rig.events("SEED_FOSSILIZED")
    assert fossil.params_added == params


def test_a_scheduled_prune_keeps_a_lora_ladder_frozen_across_level_changes(make_rig: Any) -> None:
    rig = lattice_rig(make_rig)
    rig.drive("r1c0", S.HOLDING, blueprint=BlueprintAction.LORA_LADDER)
    slot = rig.model.slot("r1c0")
    slot.prune(steps=3)
    assert slot.stage is S.BLENDING and slot.state.prune_pending
    assert slot.change_internal_level(LifecycleOp.GROW_INTERNAL)  # legal while blending down
    assert not any(p.requires_grad for p in rig.model.seed_parameters("r1c0"))
    assert slot.report().internal_active_params == 2 * LORA_BLOCK  # rent follows the structure, frozen or not


# ---------------------------------------------------------------- channel_ladder on a CNN
# digits_narrow's setting: a 4-channel slot and seed width 4, so the ladder is 4 groups of 2 over width 8.
NARROW_CNN = CnnHostConfig(in_channels=1, image_size=8, num_classes=4, base_channels=4, num_blocks=3, pool_layers=2)
EXPAND = 4 * 8  # the 1x1 expansion 4 -> 8
GROUP = 9 * 8 * 2 + 2 * 2 + 2 * 4  # one group: 3x3 conv 8 -> 2, GroupNorm affine, 1x1 proj 2 -> 4


def channel_rig(make_rig: Any) -> Any:
    return make_rig(slots=("r0c0", "r1c0", "r0c1"), cnn_config=NARROW_CNN, seed_width=4)


def channel_params(level: int) -> int:
    return 0 if level == 0 else EXPAND + level * GROUP


def test_germination_carries_the_group_size(make_rig: Any) -> None:
    rig = channel_rig(make_rig)
    rig.germinate("r0c0", blueprint=BlueprintAction.CHANNEL_LADDER)
    rig.germinate("r1c0", blueprint=BlueprintAction.CONV_LADDER)
    rig.germinate("r0c1", blueprint=BlueprintAction.NORM)
    channel, conv, norm = rig.events("SEED_GERMINATED")
    assert rig.model.slot("r0c0").channels == 4 and rig.model.slot("r0c0").seed.group_size == 2
    assert (channel.internal_kind, channel.internal_level, channel.internal_max_level) == (
        SeedInternalKind.CHANNEL_LADDER,
        1,
        4,
    )
    assert channel.internal_group_size == 2 and channel.params == channel_params(1)
    assert (conv.internal_kind, conv.internal_group_size) == (SeedInternalKind.CONV_LADDER, 0)
    assert (norm.internal_kind, norm.internal_group_size) == (SeedInternalKind.NONE, 0)
    reports = {r.slot_id: r for r in rig.model.reports()}  # each passes leyline's check
    assert {s: r.internal_group_size for s, r in reports.items()} == {"r0c0": 2, "r1c0": 0, "r0c1": 0}


@pytest.mark.parametrize("stage", sorted(INTERNAL_OP_STAGES), ids=lambda s: s.name)
def test_channel_ladder_grows_and_shrinks_in_a_slot(make_rig: Any, stage: SeedStage) -> None:
    rig = channel_rig(make_rig)
    rig.drive("r0c0", stage, blueprint=BlueprintAction.CHANNEL_LADDER)
    slot = rig.model.slot("r0c0")
    walk = [LifecycleOp.GROW_INTERNAL] * 4 + [LifecycleOp.SHRINK_INTERNAL] * 5
    changed = []
    for op in walk:
        changed.append(slot.change_internal_level(op))
        (report,) = rig.model.reports()
        assert report.internal_group_size == 2
        assert report.internal_active_params == channel_params(slot.seed.internal_level) == slot.seed_param_count()
        assert sum(p.numel() for p in slot.seed.parameters() if p.requires_grad) == report.internal_active_params
    assert changed == [True, True, True, False, True, True, True, True, False]  # 4 and 0 are the bounds
    events = rig.events("SEED_INTERNAL_LEVEL_CHANGED")
    assert [(e.from_level, e.to_level) for e in events] == [(1, 2), (2, 3), (3, 4), (4, 3), (3, 2), (2, 1), (1, 0)]
    assert [e.active_params for e in events] == [channel_params(e.to_level) for e in events]
    assert {(e.internal_kind, e.group_size, e.max_level) for e in events} == {(SeedInternalKind.CHANNEL_LADDER, 2, 4)}
    assert slot.stage is stage


def test_conv_ladder_level_events_carry_no_group_size(rig: Any) -> None:
    rig.drive("r0c0", S.TRAINING)
    assert rig.model.slot("r0c0").change_internal_level(LifecycleOp.GROW_INTERNAL)
    (event,) = rig.events("SEED_INTERNAL_LEVEL_CHANGED")
    assert (event.internal_kind, event.group_size) == (SeedInternalKind.CONV_LADDER, 0)


def test_a_pruned_channel_ladder_still_reports_its_group_size(make_rig: Any) -> None:
    """After the module is gone the report still names a CHANNEL_LADDER, so it must keep its group size (leyline's
    check requires > 0 exactly for that kind)."""
    rig = channel_rig(make_rig)
    rig.drive("r0c0", S.TRAINING, blueprint=BlueprintAction.CHANNEL_LADDER)
    slot = rig.model.slot("r0c0")
    slot.prune()
    assert slot.seed is None and slot.stage is S.PRUNED
    (report,) = rig.model.reports()
    assert (report.internal_kind, report.internal_group_size, report.internal_active_params) == (
        SeedInternalKind.CHANNEL_LADDER,
        2,
        0,
    )
