"""Builders and hypothesis strategies for Tamiyo's inputs: valid SeedStateReports and TrainingSignals (leyline
contracts only; Tamiyo never sees a slot). Importable by name: pytest's pythonpath lists this folder."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from esper.leyline import (
    BLUEPRINT_IDS,
    BLUEPRINT_INTERNAL_KIND,
    ActionLimits,
    AlphaAlgorithm,
    AlphaCurve,
    AlphaMode,
    BlueprintAction,
    InjectionSpec,
    LifecycleOp,
    SeedInternalKind,
    SeedMetrics,
    SeedStage,
    SeedStateReport,
    SlotConfig,
    SurfaceType,
    Topology,
    TrainingMetrics,
    TrainingSignals,
    blueprints_for,
    check_seed_state_report,
)
from esper.tamiyo import EnvView, MaskConfig

SLOTS = ("r0c0", "r0c1", "r0c2", "r1c0", "r1c1")
# The digits CNN host's points: row 0 pre-pool after blocks 0..2 (orders 0..2), row 1 post-pool after blocks 0..1.
SLOT_CONFIG = SlotConfig(
    slots=tuple(
        InjectionSpec(
            slot_id=slot_id,
            channels=8,
            surface=SurfaceType.PRE_POOL if slot_id.startswith("r0") else SurfaceType.POST_POOL,
            order=order,
            position=(order + 1) / len(SLOTS),
        )
        for order, slot_id in enumerate(SLOTS)
    ),
    lattice_size=len(SLOTS),
)
REPORT_STAGES = [s for s in SeedStage if s not in (SeedStage.UNKNOWN, SeedStage.DORMANT)]
unit = st.floats(0.0, 1.0)


def make_report(
    slot_id: str,
    stage: SeedStage,
    blueprint: BlueprintAction = BlueprintAction.CONV_LADDER,
    level: int = 1,
    **metrics: Any,
) -> SeedStateReport:
    kind = BLUEPRINT_INTERNAL_KIND[blueprint]
    base = dict(
        epochs_total=10,
        epochs_in_current_stage=3,
        initial_val_accuracy=50.0,
        current_val_accuracy=60.0,
        best_val_accuracy=60.0,
        accuracy_at_stage_start=55.0,
        total_improvement=10.0,
        improvement_since_stage_start=5.0,
        counterfactual_contribution=None,
        contribution_velocity=0.0,
        epochs_since_counterfactual=None,
        seed_gradient_norm_ratio=0.5,
        gradient_norm=None,
        gradient_health=None,
        has_vanishing=None,
        has_exploding=None,
        seed_param_count=1000,
        host_param_count=50000,
        delta_ratio=None,
    )
    base.update(metrics)
    return check_seed_state_report(
        SeedStateReport(
            seed_id=f"seed-{slot_id}",
            slot_id=slot_id,
            blueprint=blueprint,
            blueprint_id=BLUEPRINT_IDS[blueprint],
            stage=stage,
            previous_stage=SeedStage.UNKNOWN,
            previous_epochs_in_stage=0,
            alpha=1.0 if stage in (SeedStage.HOLDING, SeedStage.FOSSILIZED) else 0.0,
            alpha_target=1.0,
            alpha_mode=AlphaMode.HOLD,
            alpha_curve=AlphaCurve.LINEAR,
            alpha_algorithm=AlphaAlgorithm.ADD,
            alpha_steps_total=0,
            alpha_steps_done=0,
            blend_tempo_epochs=5,
            metrics=SeedMetrics(**base),
            is_healthy=True,
            internal_kind=kind,
            internal_level=level if kind is not SeedInternalKind.NONE else 0,
            internal_max_level=4 if kind is not SeedInternalKind.NONE else 1,
            internal_active_params=1000,
            internal_group_size=2 if kind is SeedInternalKind.CHANNEL_LADDER else 0,
        )
    )


def make_signals(
    epoch: int = 10,
    max_epochs: int = 25,
    last_op: LifecycleOp = LifecycleOp.WAIT,
    stabilized: bool = True,
    plateau: int = 5,
    history: int = 5,
) -> TrainingSignals:
    metrics = TrainingMetrics(
        epoch=epoch,
        global_step=epoch * 10,
        train_loss=0.8,
        val_loss=0.9,
        loss_delta=-0.01,
        train_accuracy=70.0,
        val_accuracy=68.0,
        accuracy_delta=0.1,
        plateau_epochs=plateau,
        host_stabilized=stabilized,
        best_val_accuracy=68.0,
        best_val_loss=0.9,
    )
    return TrainingSignals(
        metrics=metrics,
        loss_history=tuple([1.0 - 0.01 * i for i in range(history)]),
        accuracy_history=tuple([60.0 + i for i in range(history)]),
        max_epochs=max_epochs,
        last_action_op=last_op,
        last_action_success=True,
    )


@st.composite
def reports(draw: st.DrawFn, slot_id: str) -> SeedStateReport:
    stage = draw(st.sampled_from(REPORT_STAGES))
    blueprint = draw(st.sampled_from(blueprints_for(Topology.CNN)))
    kind = BLUEPRINT_INTERNAL_KIND[blueprint]
    max_level = 4 if kind is not SeedInternalKind.NONE else 1
    level = draw(st.integers(0, max_level)) if kind is not SeedInternalKind.NONE else 0
    contribution = draw(st.one_of(st.none(), st.floats(-20, 20)))
    report = make_report(
        slot_id,
        stage,
        blueprint,
        level,
        epochs_total=draw(st.integers(0, 40)),
        epochs_in_current_stage=draw(st.integers(0, 20)),
        counterfactual_contribution=contribution,
        epochs_since_counterfactual=None if contribution is None else draw(st.integers(0, 3)),
        gradient_norm=draw(st.one_of(st.none(), st.floats(0, 50))),
        gradient_health=draw(st.one_of(st.none(), unit)),
        improvement_since_stage_start=draw(st.floats(-10, 10)),
        total_improvement=draw(st.floats(-10, 10)),
    )
    mode = draw(st.sampled_from(list(AlphaMode)))
    return replace(report, alpha_mode=mode, alpha=draw(unit) if stage is SeedStage.BLENDING else report.alpha)


@st.composite
def env_views(draw: st.DrawFn, slots: tuple[str, ...] = SLOTS) -> EnvView:
    occupied = draw(st.lists(st.sampled_from(slots), unique=True, max_size=len(slots)))
    signals = make_signals(
        epoch=draw(st.integers(0, 30)),
        last_op=draw(st.sampled_from(list(LifecycleOp))),
        stabilized=draw(st.booleans()),
        plateau=draw(st.integers(0, 6)),
        history=draw(st.integers(0, 7)),
    )
    return EnvView(signals=signals, reports={s: draw(reports(s)) for s in occupied})


def cnn_mask_config(max_seeds: int | None = None) -> MaskConfig:
    return MaskConfig(SLOTS, Topology.CNN, blueprints_for(Topology.CNN), ActionLimits(max_seeds=max_seeds))
