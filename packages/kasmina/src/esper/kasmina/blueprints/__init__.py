"""Seed modules ("blueprints") keyed by (topology, blueprint); every one preserves its input's shape."""

from esper.kasmina.blueprints.ladder import (
    ChannelLadderSeed,
    ConvLadderSeed,
    LoraLadderSeed,
    MicrostructuredSeed,
    channel_groups,
    seed_group_size,
)
from esper.kasmina.blueprints.registry import (
    BLUEPRINTS,
    INTERNAL_FAMILIES,
    BlueprintSpec,
    build_seed,
    count_trainable,
    spec_for,
)

__all__ = [
    "BLUEPRINTS",
    "INTERNAL_FAMILIES",
    "BlueprintSpec",
    "ChannelLadderSeed",
    "ConvLadderSeed",
    "LoraLadderSeed",
    "MicrostructuredSeed",
    "build_seed",
    "channel_groups",
    "count_trainable",
    "seed_group_size",
    "spec_for",
]
