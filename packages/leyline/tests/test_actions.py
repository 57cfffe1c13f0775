from __future__ import annotations

import pytest

from esper.leyline import (
    BLUEPRINT_IDS,
    BLUEPRINT_INTERNAL_KIND,
    HEAD_RELEVANCE_BY_OP,
    ActionHead,
    BlueprintAction,
    LifecycleOp,
    SeedInternalKind,
    Topology,
    blueprint_from_id,
    blueprints_for,
    head_sizes,
    is_head_relevant,
    relevance_matrix,
)


def test_blueprint_ids_are_lowercase_names_and_round_trip() -> None:
    for bp, blueprint_id in BLUEPRINT_IDS.items():
        assert blueprint_id == bp.name.lower()
        assert blueprint_from_id(blueprint_id) is bp
    with pytest.raises(ValueError, match="unknown blueprint 'conv_huge'; allowed: attention, bottleneck"):
        blueprint_from_id("conv_huge")


def test_topology_blueprint_sets() -> None:
    cnn = blueprints_for(Topology.CNN)
    assert BlueprintAction.NOOP not in cnn and BlueprintAction.CONV_LADDER in cnn
    assert BlueprintAction.LORA in blueprints_for(Topology.TRANSFORMER)
    assert BlueprintAction.CONV_LADDER not in blueprints_for(Topology.TRANSFORMER)


def test_only_the_ladders_have_internal_structure() -> None:
    assert {bp: kind for bp, kind in BLUEPRINT_INTERNAL_KIND.items() if kind is not SeedInternalKind.NONE} == {
        BlueprintAction.CONV_LADDER: SeedInternalKind.CONV_LADDER,
        BlueprintAction.LORA_LADDER: SeedInternalKind.LORA_LADDER,
        BlueprintAction.CHANNEL_LADDER: SeedInternalKind.CHANNEL_LADDER,
    }
    assert BlueprintAction.LORA_LADDER in blueprints_for(Topology.TRANSFORMER)
    assert BlueprintAction.LORA_LADDER not in blueprints_for(Topology.CNN)


def test_causal_relevance_rules() -> None:
    for op in LifecycleOp:
        assert is_head_relevant(op, ActionHead.OP)
        assert is_head_relevant(op, ActionHead.SLOT) == (op is not LifecycleOp.WAIT)
        assert is_head_relevant(op, ActionHead.BLUEPRINT) == (op is LifecycleOp.GERMINATE)
    assert HEAD_RELEVANCE_BY_OP[LifecycleOp.GROW_INTERNAL] == {ActionHead.OP, ActionHead.SLOT}
    assert HEAD_RELEVANCE_BY_OP[LifecycleOp.SHRINK_INTERNAL] == {ActionHead.OP, ActionHead.SLOT}
    matrix = relevance_matrix()
    assert len(matrix) == len(LifecycleOp) and all(len(row) == len(ActionHead) for row in matrix)


def test_head_sizes_follow_enums_and_slots() -> None:
    sizes = head_sizes(5)
    assert list(sizes) == list(ActionHead)
    assert sizes[ActionHead.SLOT] == 5 and sizes[ActionHead.OP] == 8 and sizes[ActionHead.BLUEPRINT] == 16
    with pytest.raises(ValueError, match="num_slots must be >= 1"):
        head_sizes(0)
