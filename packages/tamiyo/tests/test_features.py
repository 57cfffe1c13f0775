"""Obs V3 extraction: width tied to leyline's field lists, field semantics, sentinels, NaN handling."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tamiyo_inputs import SLOT_CONFIG, SLOTS, env_views, make_report, make_signals

from esper.leyline import (
    BASE_FEATURE_FIELDS,
    BLUEPRINT_NULL_INDEX,
    OBS_V3_BASE_FEATURE_SIZE,
    OBS_V3_SLOT_FEATURE_SIZE,
    SLOT_FEATURE_FIELDS,
    SYMLOG_NORM,
    UNKNOWN_SENTINEL,
    BlueprintAction,
    InjectionSpec,
    LifecycleOp,
    SeedStage,
    SlotConfig,
    SurfaceType,
    field_index,
    obs_dim,
)
from esper.tamiyo import EnvView, FeatureExtractor


def slot_value(row: torch.Tensor, slot: int, name: str) -> float:
    return float(
        row[OBS_V3_BASE_FEATURE_SIZE + slot * OBS_V3_SLOT_FEATURE_SIZE + field_index(SLOT_FEATURE_FIELDS, name)]
    )


def base_value(row: torch.Tensor, name: str) -> float:
    return float(row[field_index(BASE_FEATURE_FIELDS, name)])


@settings(max_examples=40, deadline=None)
@given(st.lists(env_views(), min_size=1, max_size=6))
def test_width_is_the_declared_width(views: list[EnvView]) -> None:
    extractor = FeatureExtractor(SLOT_CONFIG, len(views))
    observation = extractor.encode(views)
    assert observation.features.shape == (len(views), obs_dim(len(SLOTS)))
    assert obs_dim(len(SLOTS)) == len(BASE_FEATURE_FIELDS) + len(SLOTS) * len(SLOT_FEATURE_FIELDS)
    assert observation.features.dtype == torch.float32 and observation.features.device.type == "cpu"
    assert observation.blueprint_indices.shape == (len(views), len(SLOTS))
    assert torch.isfinite(observation.features).all()
    for env, view in enumerate(views):
        for slot, slot_id in enumerate(SLOTS):
            row = observation.features[env]
            if slot_id in view.reports:
                report = view.reports[slot_id]
                assert slot_value(row, slot, "is_active") == 1.0
                assert slot_value(row, slot, f"stage_{report.stage.name.lower()}") == 1.0
                expected = report.internal_level / report.internal_max_level
                assert slot_value(row, slot, "internal_level_norm") == pytest.approx(expected)
                assert int(observation.blueprint_indices[env, slot]) == int(report.blueprint)
            else:  # an empty slot: only where it sits (its order and surface), the rest zeros
                start = OBS_V3_BASE_FEATURE_SIZE + slot * OBS_V3_SLOT_FEATURE_SIZE
                seed_start = start + field_index(SLOT_FEATURE_FIELDS, "is_active")
                assert torch.count_nonzero(row[seed_start : start + OBS_V3_SLOT_FEATURE_SIZE]) == 0
                assert int(observation.blueprint_indices[env, slot]) == BLUEPRINT_NULL_INDEX
            assert slot_value(row, slot, "slot_order_norm") == pytest.approx(slot / len(SLOTS))


def test_base_fields() -> None:
    view = EnvView(signals=make_signals(epoch=5, max_epochs=20, last_op=LifecycleOp.GROW_INTERNAL, history=2))
    row = FeatureExtractor(SLOT_CONFIG, 1).encode([view]).features[0]
    assert base_value(row, "epoch_norm") == pytest.approx(0.25)
    assert base_value(row, "last_op_grow_internal") == 1.0 and base_value(row, "last_op_wait") == 0.0
    # two observed epochs: the three oldest history entries are the declared sentinel
    assert [base_value(row, f"accuracy_history_{i}") for i in range(3)] == [UNKNOWN_SENTINEL] * 3
    assert base_value(row, "accuracy_history_4") == pytest.approx(0.61)


def test_seed_without_structure_has_zero_level_norm_and_missing_telemetry_is_zero() -> None:
    report = make_report("r0c1", SeedStage.TRAINING, BlueprintAction.NORM)
    row = FeatureExtractor(SLOT_CONFIG, 1).encode([EnvView(make_signals(), {"r0c1": report})]).features[0]
    assert slot_value(row, 1, "internal_level_norm") == 0.0
    assert slot_value(row, 1, "gradient_health") == 0.0 and slot_value(row, 1, "gradient_norm") == 0.0
    assert slot_value(row, 1, "contribution") == 0.0
    assert slot_value(row, 1, "counterfactual_fresh") == UNKNOWN_SENTINEL
    assert slot_value(row, 1, "gradient_health_prev") == UNKNOWN_SENTINEL


def test_previous_gradient_health_is_remembered_per_seed() -> None:
    extractor = FeatureExtractor(SLOT_CONFIG, 1)
    first = make_report("r0c0", SeedStage.TRAINING, gradient_health=0.8)
    extractor.encode([EnvView(make_signals(), {"r0c0": first})])
    second = replace(first, metrics=replace(first.metrics, gradient_health=0.6))
    row = extractor.encode([EnvView(make_signals(), {"r0c0": second})]).features[0]
    assert slot_value(row, 0, "gradient_health_prev") == pytest.approx(0.8)
    assert slot_value(row, 0, "gradient_health") == pytest.approx(0.6)
    other_seed = replace(second, seed_id="another")
    row = extractor.encode([EnvView(make_signals(), {"r0c0": other_seed})]).features[0]
    assert slot_value(row, 0, "gradient_health_prev") == UNKNOWN_SENTINEL  # a new seed has no history
    extractor.reset(0)


def test_nan_raises_naming_the_feature() -> None:
    report = make_report("r0c0", SeedStage.BLENDING, counterfactual_contribution=float("nan"))
    with pytest.raises(ValueError, match="feature contribution: non-finite value nan"):
        FeatureExtractor(SLOT_CONFIG, 1).encode([EnvView(make_signals(), {"r0c0": report})])


def test_layout_errors() -> None:
    with pytest.raises(ValueError, match="outside the layout"):
        FeatureExtractor(replace(SLOT_CONFIG, slots=SLOT_CONFIG.slots[:1]), 1).encode(
            [EnvView(make_signals(), {"r0c1": make_report("r0c1", SeedStage.TRAINING)})]
        )
    with pytest.raises(ValueError, match="expected 2 environments"):
        FeatureExtractor(SLOT_CONFIG, 2).encode([EnvView(make_signals())])


def test_delta_ratio_is_symlogged_and_zero_when_not_measured() -> None:
    measured = make_report("r0c0", SeedStage.TRAINING, BlueprintAction.CONV_HEAVY, delta_ratio=1000.0)
    unmeasured = make_report("r0c1", SeedStage.TRAINING, BlueprintAction.CONV_HEAVY)
    views = [EnvView(make_signals(), {"r0c0": measured, "r0c1": unmeasured})]
    row = FeatureExtractor(SLOT_CONFIG, 1).encode(views).features[0]
    assert slot_value(row, 0, "delta_ratio") == pytest.approx(math.log1p(1000.0) / SYMLOG_NORM)
    assert slot_value(row, 1, "delta_ratio") == 0.0


def test_every_slot_block_says_where_the_slot_sits_even_when_empty() -> None:
    """slot_order_norm = order / lattice_size and slot_surface_norm = surface / max surface, occupied or not."""
    lattice = SlotConfig(
        slots=tuple(
            InjectionSpec(slot_id=s, channels=32, surface=surface, order=order, position=(order + 1) / 12)
            for s, surface, order in (("r0c1", SurfaceType.POST_ATTN, 2), ("r1c4", SurfaceType.POST_MLP, 9))
        ),
        lattice_size=12,
    )
    occupied = make_report("r1c4", SeedStage.TRAINING, BlueprintAction.LORA_LADDER)
    row = FeatureExtractor(lattice, 1).encode([EnvView(make_signals(), {"r1c4": occupied})]).features[0]
    largest = max(s.value for s in SurfaceType)
    assert slot_value(row, 0, "slot_order_norm") == pytest.approx(2 / 12)
    assert slot_value(row, 0, "slot_surface_norm") == pytest.approx(SurfaceType.POST_ATTN / largest)
    assert slot_value(row, 0, "is_active") == 0.0
    assert slot_value(row, 1, "slot_order_norm") == pytest.approx(9 / 12)
    assert slot_value(row, 1, "slot_surface_norm") == pytest.approx(1.0)  # POST_MLP is the largest value
    assert slot_value(row, 1, "is_active") == 1.0
    assert slot_value(row, 1, "internal_level_norm") == pytest.approx(1 / 4)
