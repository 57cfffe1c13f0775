"""Obs V3 dims are derived from the declared field lists (and so from the enums)."""

from __future__ import annotations

from esper.leyline import (
    BASE_FEATURE_FIELDS,
    BLUEPRINT_NULL_INDEX,
    OBS_V3_BASE_FEATURE_SIZE,
    OBS_V3_SLOT_FEATURE_SIZE,
    SLOT_FEATURE_FIELDS,
    BlueprintAction,
    LifecycleOp,
    SeedStage,
    field_index,
    obs_dim,
    policy_input_dim,
)


def test_field_names_are_unique() -> None:
    for fields in (BASE_FEATURE_FIELDS, SLOT_FEATURE_FIELDS):
        names = [f.name for f in fields]
        assert len(names) == len(set(names))


def test_dims_follow_the_enums() -> None:
    one_hot = [f.name for f in BASE_FEATURE_FIELDS if f.name.startswith("last_op_")]
    assert one_hot == [f"last_op_{op.name.lower()}" for op in LifecycleOp]
    stage_hot = [f.name for f in SLOT_FEATURE_FIELDS if f.name.startswith("stage_")]
    assert stage_hot == [f"stage_{s.name.lower()}" for s in SeedStage]
    assert 17 + len(LifecycleOp) == OBS_V3_BASE_FEATURE_SIZE
    assert 24 + len(SeedStage) == OBS_V3_SLOT_FEATURE_SIZE


def test_phase1_widths() -> None:
    # Phase 1 (8 ops): base 25, slot 34 (the planning document's 32 less interaction_sum, which nothing measures, plus
    # delta_ratio, the bounded-incubation sensor, plus slot_order_norm and slot_surface_norm), 3 slots 127 (+12 embed
    # = 139), 12 slots 433.
    assert (OBS_V3_BASE_FEATURE_SIZE, OBS_V3_SLOT_FEATURE_SIZE) == (25, 34)
    assert obs_dim(3) == 127 and policy_input_dim(3, 4) == 139
    assert obs_dim(12) == 433 and policy_input_dim(12, 4) == 481
    assert BLUEPRINT_NULL_INDEX == len(BlueprintAction) == 16


def test_internal_level_norm_is_a_slot_field() -> None:
    assert SLOT_FEATURE_FIELDS[field_index(SLOT_FEATURE_FIELDS, "internal_level_norm")].encoding.startswith(
        "internal_level / internal_max_level"
    )
