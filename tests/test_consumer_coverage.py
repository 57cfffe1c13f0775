"""Every exhaustive consumer table handles every member of the enum it is keyed by.

When a member is added to a schema and `make codegen` runs, these tests fail and name each table that must change.
Later packages add their own tables (mask rules, op handlers, reward costs, Karn renderers) with the same helper.
"""

from __future__ import annotations

import json

import pytest

from esper.leyline import (
    ALPHA_CURVE_SHAPES,
    ALPHA_SPEED_STEPS,
    ALPHA_TARGET_VALUES,
    BLUEPRINT_IDS,
    BLUEPRINT_INTERNAL_KIND,
    CANONICAL_HEAD_VALUES,
    EVENT_PAYLOAD_TYPES,
    HEAD_ENUMS,
    HEAD_RELEVANCE_BY_OP,
    STAGE_INDEX,
    STYLE_BLEND,
    TEMPO_EPOCHS,
    TOPOLOGY_BLUEPRINTS,
    VALID_TRANSITIONS,
    ActionHead,
    AlphaCurveAction,
    AlphaSpeedAction,
    AlphaTargetAction,
    BlueprintAction,
    CoverageError,
    GerminationStyle,
    LifecycleOp,
    SeedStage,
    TelemetryEventType,
    TempoAction,
    Topology,
    assert_covers,
    missing_members,
)
from esper.simic.contracts.reward_config import RewardConfig  # the contract alone: no torch import
from tests.conftest import ROOT

ENVELOPE = json.loads((ROOT / "schemas" / "leyline" / "telemetry_event.json").read_text())

TABLES = [
    (SeedStage, VALID_TRANSITIONS, "leyline VALID_TRANSITIONS"),
    (SeedStage, STAGE_INDEX, "leyline STAGE_INDEX (stage one-hot)"),
    (LifecycleOp, HEAD_RELEVANCE_BY_OP, "leyline HEAD_RELEVANCE_BY_OP (causal relevance)"),
    (ActionHead, HEAD_ENUMS, "leyline HEAD_ENUMS"),
    (ActionHead, CANONICAL_HEAD_VALUES, "leyline CANONICAL_HEAD_VALUES"),
    (BlueprintAction, BLUEPRINT_IDS, "leyline BLUEPRINT_IDS"),
    (BlueprintAction, BLUEPRINT_INTERNAL_KIND, "leyline BLUEPRINT_INTERNAL_KIND"),
    (Topology, TOPOLOGY_BLUEPRINTS, "leyline TOPOLOGY_BLUEPRINTS"),
    (GerminationStyle, STYLE_BLEND, "leyline STYLE_BLEND"),
    (TempoAction, TEMPO_EPOCHS, "leyline TEMPO_EPOCHS"),
    (AlphaTargetAction, ALPHA_TARGET_VALUES, "leyline ALPHA_TARGET_VALUES"),
    (AlphaSpeedAction, ALPHA_SPEED_STEPS, "leyline ALPHA_SPEED_STEPS"),
    (AlphaCurveAction, ALPHA_CURVE_SHAPES, "leyline ALPHA_CURVE_SHAPES"),
    (TelemetryEventType, EVENT_PAYLOAD_TYPES, "leyline EVENT_PAYLOAD_TYPES"),
]


@pytest.mark.parametrize(("enum", "table", "consumer"), TABLES, ids=[t[2] for t in TABLES])
def test_table_covers_enum(enum: type, table: object, consumer: str) -> None:
    assert_covers(enum, table, consumer=consumer)  # type: ignore[arg-type]


def test_every_germinable_blueprint_belongs_to_a_topology() -> None:
    homeless = [bp for bp in BlueprintAction if not any(bp in s for s in TOPOLOGY_BLUEPRINTS.values())]
    assert homeless == [], f"blueprints with no topology: {homeless}"
    assert BlueprintAction.CONV_LADDER in TOPOLOGY_BLUEPRINTS[Topology.CNN]
    assert BlueprintAction.CONV_LADDER not in TOPOLOGY_BLUEPRINTS[Topology.TRANSFORMER]


def test_envelope_lists_and_binds_every_event_type() -> None:
    names = ENVELOPE["properties"]["event_type"]["enum"]
    assert_covers(TelemetryEventType, names, consumer="telemetry_event.json event_type enum", key=lambda m: m.name)
    bindings = {
        branch["if"]["properties"]["event_type"]["const"]: branch["then"]["properties"]["payload"]["$ref"]
        for branch in ENVELOPE["allOf"]
    }
    assert_covers(TelemetryEventType, bindings, consumer="telemetry_event.json payload bindings", key=lambda m: m.name)
    for event_type, payload_type in EVENT_PAYLOAD_TYPES.items():
        schema = json.loads((ROOT / "schemas" / "leyline" / bindings[event_type.name]).read_text())
        assert schema["title"] == payload_type.__name__, event_type.name


def test_reward_config_costs_every_op() -> None:
    assert_covers(
        LifecycleOp,
        RewardConfig().intervention_costs,
        consumer="simic RewardConfig.intervention_costs (schema default)",
        key=lambda m: m.name,
    )


def test_helper_names_what_is_missing_and_extra() -> None:
    assert missing_members(LifecycleOp, [LifecycleOp.WAIT]) == [op for op in LifecycleOp if op is not LifecycleOp.WAIT]
    with pytest.raises(CoverageError) as caught:
        assert_covers(TempoAction, {TempoAction.FAST: 3, "LUDICROUS": 1}, consumer="demo table")
    message = str(caught.value)
    assert "demo table does not handle TempoAction.STANDARD (1), TempoAction.SLOW (2)" in message
    assert "entries that are not TempoAction members: 'LUDICROUS'" in message
    assert_covers(TempoAction, {"FAST", "STANDARD", "SLOW"}, consumer="by name", key=lambda m: m.name)
