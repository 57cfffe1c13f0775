"""The factored action space: blueprint ids and topology sets, head value tables, and causal relevance.

Every table here is keyed by an enum and must cover all of its members; tests/test_consumer_coverage.py checks them
with `esper.leyline.coverage.assert_covers`, so adding a member to a schema fails until each table handles it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType
from typing import Final

from esper.leyline.contracts.action_head import ActionHead
from esper.leyline.contracts.alpha_algorithm import AlphaAlgorithm
from esper.leyline.contracts.alpha_curve import AlphaCurve
from esper.leyline.contracts.alpha_curve_action import AlphaCurveAction
from esper.leyline.contracts.alpha_speed_action import AlphaSpeedAction
from esper.leyline.contracts.alpha_target_action import AlphaTargetAction
from esper.leyline.contracts.blueprint_action import BlueprintAction
from esper.leyline.contracts.factored_action import FactoredAction
from esper.leyline.contracts.germination_style import GerminationStyle
from esper.leyline.contracts.lifecycle_op import LifecycleOp
from esper.leyline.contracts.seed_internal_kind import SeedInternalKind
from esper.leyline.contracts.tempo_action import TempoAction
from esper.leyline.contracts.topology import Topology
from esper.leyline.coverage import assert_covers

BP = BlueprintAction
OP = LifecycleOp
H = ActionHead

# ---------------------------------------------------------------- blueprints
BLUEPRINT_IDS: Final[Mapping[BlueprintAction, str]] = MappingProxyType({bp: bp.name.lower() for bp in BlueprintAction})
_BLUEPRINT_BY_ID: Final[Mapping[str, BlueprintAction]] = MappingProxyType({v: k for k, v in BLUEPRINT_IDS.items()})

TOPOLOGY_BLUEPRINTS: Final[Mapping[Topology, frozenset[BlueprintAction]]] = MappingProxyType(
    {
        Topology.CNN: frozenset(
            {
                BP.NOOP,
                BP.NORM,
                BP.ATTENTION,
                BP.CONV_LIGHT,
                BP.DEPTHWISE,
                BP.BOTTLENECK,
                BP.CONV_SMALL,
                BP.CONV_HEAVY,
                BP.CONV_LADDER,
                BP.CHANNEL_LADDER,
            }
        ),
        Topology.TRANSFORMER: frozenset(
            {
                BP.NOOP,
                BP.NORM,
                BP.ATTENTION,
                BP.LORA,
                BP.LORA_LARGE,
                BP.MLP_SMALL,
                BP.MLP,
                BP.FLEX_ATTENTION,
                BP.LORA_LADDER,
            }
        ),
    }
)

# The ladder families; every other blueprint has no internal structure.
_LADDERS: Final[Mapping[BlueprintAction, SeedInternalKind]] = MappingProxyType(
    {
        BP.CONV_LADDER: SeedInternalKind.CONV_LADDER,
        BP.LORA_LADDER: SeedInternalKind.LORA_LADDER,
        BP.CHANNEL_LADDER: SeedInternalKind.CHANNEL_LADDER,
    }
)
BLUEPRINT_INTERNAL_KIND: Final[Mapping[BlueprintAction, SeedInternalKind]] = MappingProxyType(
    {bp: _LADDERS[bp] if bp in _LADDERS else SeedInternalKind.NONE for bp in BlueprintAction}
)


def blueprint_from_id(blueprint_id: str) -> BlueprintAction:
    if blueprint_id not in _BLUEPRINT_BY_ID:
        raise ValueError(f"unknown blueprint {blueprint_id!r}; allowed: {', '.join(sorted(_BLUEPRINT_BY_ID))}")
    return _BLUEPRINT_BY_ID[blueprint_id]


def blueprints_for(topology: Topology) -> tuple[BlueprintAction, ...]:
    """Blueprints a policy may germinate on this topology (NOOP excluded), in enum order."""
    return tuple(bp for bp in BlueprintAction if bp in TOPOLOGY_BLUEPRINTS[topology] and bp is not BP.NOOP)


# ---------------------------------------------------------------- head value tables
STYLE_BLEND: Final[Mapping[GerminationStyle, tuple[AlphaCurve, AlphaAlgorithm]]] = MappingProxyType(
    {
        GerminationStyle.LINEAR_ADD: (AlphaCurve.LINEAR, AlphaAlgorithm.ADD),
        GerminationStyle.LINEAR_MULTIPLY: (AlphaCurve.LINEAR, AlphaAlgorithm.MULTIPLY),
        GerminationStyle.SIGMOID_ADD: (AlphaCurve.SIGMOID, AlphaAlgorithm.ADD),
        GerminationStyle.GATED_GATE: (AlphaCurve.LINEAR, AlphaAlgorithm.GATE),
    }
)
TEMPO_EPOCHS: Final[Mapping[TempoAction, int]] = MappingProxyType(
    {TempoAction.FAST: 3, TempoAction.STANDARD: 5, TempoAction.SLOW: 8}
)
ALPHA_TARGET_VALUES: Final[Mapping[AlphaTargetAction, float]] = MappingProxyType(
    {AlphaTargetAction.HALF: 0.5, AlphaTargetAction.SEVENTY: 0.7, AlphaTargetAction.FULL: 1.0}
)
ALPHA_SPEED_STEPS: Final[Mapping[AlphaSpeedAction, int]] = MappingProxyType(
    {
        AlphaSpeedAction.INSTANT: 0,
        AlphaSpeedAction.FAST: 3,
        AlphaSpeedAction.MEDIUM: 5,
        AlphaSpeedAction.SLOW: 8,
    }
)
# (schedule shape, sigmoid steepness)
ALPHA_CURVE_SHAPES: Final[Mapping[AlphaCurveAction, tuple[AlphaCurve, float]]] = MappingProxyType(
    {
        AlphaCurveAction.LINEAR: (AlphaCurve.LINEAR, 12.0),
        AlphaCurveAction.COSINE: (AlphaCurve.COSINE, 12.0),
        AlphaCurveAction.SIGMOID_GENTLE: (AlphaCurve.SIGMOID, 6.0),
        AlphaCurveAction.SIGMOID: (AlphaCurve.SIGMOID, 12.0),
        AlphaCurveAction.SIGMOID_SHARP: (AlphaCurve.SIGMOID, 24.0),
    }
)

# Enum behind each head; the slot head's size depends on the environment's slot count.
HEAD_ENUMS: Final[Mapping[ActionHead, type[IntEnum] | None]] = MappingProxyType(
    {
        H.SLOT: None,
        H.BLUEPRINT: BlueprintAction,
        H.STYLE: GerminationStyle,
        H.TEMPO: TempoAction,
        H.ALPHA_TARGET: AlphaTargetAction,
        H.ALPHA_SPEED: AlphaSpeedAction,
        H.ALPHA_CURVE: AlphaCurveAction,
        H.OP: LifecycleOp,
    }
)


def head_sizes(num_slots: int) -> dict[ActionHead, int]:
    """Size of every head, in ActionHead order."""
    if num_slots < 1:
        raise ValueError(f"num_slots must be >= 1, got {num_slots}")
    sizes: dict[ActionHead, int] = {}
    for head in ActionHead:
        enum = HEAD_ENUMS[head]
        sizes[head] = num_slots if enum is None else len(enum)
    return sizes


# ---------------------------------------------------------------- causal relevance
# Which heads influence the outcome of each op. Irrelevant heads are canonicalised by the policy (log-prob 0)
# and masked out of per-head advantages, losses, KL and entropy.
HEAD_RELEVANCE_BY_OP: Final[Mapping[LifecycleOp, frozenset[ActionHead]]] = MappingProxyType(
    {
        OP.WAIT: frozenset({H.OP}),
        OP.GERMINATE: frozenset({H.OP, H.SLOT, H.BLUEPRINT, H.STYLE, H.TEMPO, H.ALPHA_TARGET}),
        OP.SET_ALPHA_TARGET: frozenset({H.OP, H.SLOT, H.STYLE, H.ALPHA_TARGET, H.ALPHA_SPEED, H.ALPHA_CURVE}),
        OP.PRUNE: frozenset({H.OP, H.SLOT, H.ALPHA_SPEED, H.ALPHA_CURVE}),
        OP.FOSSILIZE: frozenset({H.OP, H.SLOT}),
        OP.ADVANCE: frozenset({H.OP, H.SLOT}),
        OP.GROW_INTERNAL: frozenset({H.OP, H.SLOT}),
        OP.SHRINK_INTERNAL: frozenset({H.OP, H.SLOT}),
    }
)

INTERNAL_OPS: Final = frozenset({OP.GROW_INTERNAL, OP.SHRINK_INTERNAL})

# The value a head takes when the chosen op does not use it (its log-prob is then 0). The slot head under WAIT takes
# the first enabled slot (index 0 of the environment's slot order).
CANONICAL_HEAD_VALUES: Final[Mapping[ActionHead, int]] = MappingProxyType(
    {
        H.SLOT: 0,
        H.BLUEPRINT: int(BP.NOOP),
        H.STYLE: int(GerminationStyle.SIGMOID_ADD),
        H.TEMPO: int(TempoAction.STANDARD),
        H.ALPHA_TARGET: int(AlphaTargetAction.FULL),
        H.ALPHA_SPEED: int(AlphaSpeedAction.INSTANT),
        H.ALPHA_CURVE: int(AlphaCurveAction.LINEAR),
        H.OP: int(OP.WAIT),
    }
)


def canonical_action(op: LifecycleOp, slot: int = 0, blueprint: BlueprintAction = BP.NOOP) -> FactoredAction:
    """An action with the given op, slot and blueprint and every other head at its canonical value."""
    c = CANONICAL_HEAD_VALUES
    return FactoredAction(
        op=op,
        slot=slot,
        blueprint=blueprint,
        style=GerminationStyle(c[H.STYLE]),
        tempo=TempoAction(c[H.TEMPO]),
        alpha_target=AlphaTargetAction(c[H.ALPHA_TARGET]),
        alpha_speed=AlphaSpeedAction(c[H.ALPHA_SPEED]),
        alpha_curve=AlphaCurveAction(c[H.ALPHA_CURVE]),
    )


def is_head_relevant(op: LifecycleOp, head: ActionHead) -> bool:
    return head in HEAD_RELEVANCE_BY_OP[op]


def relevance_matrix() -> tuple[tuple[bool, ...], ...]:
    """[op][head] booleans in LifecycleOp x ActionHead order, for building a tensor once."""
    assert_covers(LifecycleOp, HEAD_RELEVANCE_BY_OP, consumer="leyline HEAD_RELEVANCE_BY_OP (causal relevance)")
    return tuple(tuple(head in HEAD_RELEVANCE_BY_OP[op] for head in ActionHead) for op in LifecycleOp)
