"""Action masks: exactly leyline's structural rule set is masked (never a preference), no required head is ever
empty."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tamiyo_inputs import SLOTS, cnn_mask_config, env_views, make_report, make_signals

from esper.leyline import (
    INTERNAL_OP_STAGES,
    LIVE_STAGES,
    MIN_TRAINING_EPOCHS,
    RULED_OPS,
    TOPOLOGY_BLUEPRINTS,
    ActionHead,
    AlphaMode,
    BlueprintAction,
    LifecycleOp,
    SeedInternalKind,
    SeedStage,
    Topology,
    assert_covers,
    blueprints_for,
)
from esper.tamiyo import EnvView, MaskConfig, compute_masks

OP = LifecycleOp


def test_every_op_has_a_mask_rule() -> None:
    assert_covers(LifecycleOp, RULED_OPS, consumer="leyline's structural rule set (masks and environment)")


def test_every_blueprint_is_in_the_right_topology_sets() -> None:
    assert BlueprintAction.CONV_LADDER in blueprints_for(Topology.CNN)
    assert BlueprintAction.CONV_LADDER not in blueprints_for(Topology.TRANSFORMER)
    for topology in Topology:
        assert BlueprintAction.NOOP not in blueprints_for(topology)
        assert set(blueprints_for(topology)) == TOPOLOGY_BLUEPRINTS[topology] - {BlueprintAction.NOOP}


@settings(max_examples=150, deadline=None)
@given(st.lists(env_views(), min_size=1, max_size=4), st.one_of(st.none(), st.integers(1, 3)))
def test_mask_invariants(views: list[EnvView], max_seeds: int | None) -> None:
    config = cnn_mask_config(max_seeds)
    masks = compute_masks(views, config)
    assert masks.op[:, OP.WAIT].all()
    assert (masks.op == masks.slot_by_op.any(dim=-1)).all()  # optimistic op mask
    for head in ActionHead:
        assert masks.head(head).any(dim=-1).all(), f"{head} mask empty"
    assert masks.slot_by_op[:, OP.WAIT].all()
    for env, view in enumerate(views):
        for slot, slot_id in enumerate(SLOTS):
            report = view.reports[slot_id] if slot_id in view.reports else None
            grow, shrink = (
                bool(masks.slot_by_op[env, OP.GROW_INTERNAL, slot]),
                bool(masks.slot_by_op[env, OP.SHRINK_INTERNAL, slot]),
            )
            ladder = (
                report is not None
                and report.stage in INTERNAL_OP_STAGES
                and report.internal_kind is not SeedInternalKind.NONE
            )
            assert grow == (ladder and report.internal_level < report.internal_max_level)
            assert shrink == (ladder and report.internal_level > 0)
            if report is not None and report.stage is SeedStage.FOSSILIZED:
                assert not masks.slot_by_op[env, :, slot][1:].any()  # nothing but WAIT touches a fossil
            # Preferences are not masked: any live seed may be pruned, whatever its age or alpha's motion.
            assert bool(masks.slot_by_op[env, OP.PRUNE, slot]) == (report is not None and report.stage in LIVE_STAGES)
            advance = bool(masks.slot_by_op[env, OP.ADVANCE, slot])
            if report is not None and report.stage is SeedStage.TRAINING:
                assert advance == (report.metrics.epochs_in_current_stage >= MIN_TRAINING_EPOCHS)
            if report is not None and report.stage is SeedStage.BLENDING:
                full = report.alpha_mode is AlphaMode.HOLD and report.alpha == 1.0 and report.alpha_target == 1.0
                assert advance == full
            fossilize = bool(masks.slot_by_op[env, OP.FOSSILIZE, slot])
            measured = report is not None and report.metrics.counterfactual_contribution is not None
            assert fossilize == (report is not None and report.stage is SeedStage.HOLDING and measured)
            if bool(masks.slot_by_op[env, OP.GERMINATE, slot]):
                assert report is None  # other slots' seeds (developing, cooling down) do not block it
        if max_seeds is not None:
            seeds = sum(1 for r in view.reports.values() if r.stage in LIVE_STAGES | {SeedStage.FOSSILIZED})
            if seeds >= max_seeds:
                assert not masks.op[env, OP.GERMINATE]


def test_ladder_ops_at_the_bounds() -> None:
    config = cnn_mask_config()
    views = [
        EnvView(make_signals(), {"r0c0": make_report("r0c0", SeedStage.BLENDING, level=4)}),
        EnvView(make_signals(), {"r0c0": make_report("r0c0", SeedStage.HOLDING, level=0)}),
        EnvView(make_signals(), {"r0c0": make_report("r0c0", SeedStage.GERMINATED, level=1)}),
    ]
    masks = compute_masks(views, config)
    assert masks.op[:, OP.GROW_INTERNAL].tolist() == [False, True, False]
    assert masks.op[:, OP.SHRINK_INTERNAL].tolist() == [True, False, False]


def test_canonical_style_and_target_stay_available() -> None:
    views = [
        EnvView(make_signals(), {s: make_report(s, SeedStage.TRAINING) for s in SLOTS})
    ]  # nothing to germinate/retarget
    masks = compute_masks(views, cnn_mask_config())
    assert masks.head(ActionHead.STYLE).sum() == 1 and masks.head(ActionHead.ALPHA_TARGET).sum() == 1


def test_config_rejects_blueprints_of_another_topology() -> None:
    with pytest.raises(ValueError, match=r"blueprints: \['conv_ladder'\] cannot be germinated on transformer"):
        MaskConfig(slot_ids=("r0c0",), topology=Topology.TRANSFORMER, blueprints=(BlueprintAction.CONV_LADDER,))
    with pytest.raises(ValueError, match="at least one germination blueprint"):
        MaskConfig(slot_ids=("r0c0",), topology=Topology.CNN, blueprints=())
    masks = compute_masks(
        [EnvView(make_signals())], MaskConfig(("r0c0",), Topology.CNN, (BlueprintAction.CONV_LADDER,))
    )
    assert masks.head(ActionHead.BLUEPRINT)[0].nonzero().flatten().tolist() == [int(BlueprintAction.CONV_LADDER)]
    assert torch.equal(masks.slot_by_op[0, OP.GERMINATE], torch.tensor([True]))
