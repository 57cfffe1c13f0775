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
    assert 22 + len(SeedStage) == OBS_V3_SLOT_FEATURE_SIZE


def test_phase0_widths() -> None:
    # Phase 0 (8 ops): base 25, slot 32 (the planning document's 32 less interaction_sum, which nothing measures, plus
    # delta_ratio, the bounded-incubation sensor), 3 slots 121 (+12 embed = 133).
    assert (OBS_V3_BASE_FEATURE_SIZE, OBS_V3_SLOT_FEATURE_SIZE) == (25, 32)
    assert obs_dim(3) == 121 and policy_input_dim(3, 4) == 133
    assert obs_dim(5) == 185 and policy_input_dim(5, 4) == 205
    assert BLUEPRINT_NULL_INDEX == len(BlueprintAction) == 14


def test_internal_level_norm_is_a_slot_field() -> None:
    assert SLOT_FEATURE_FIELDS[field_index(SLOT_FEATURE_FIELDS, "internal_level_norm")].encoding.startswith(
        "internal_level / internal_max_level"
    )
