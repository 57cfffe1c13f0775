"""Seed modules ("blueprints") keyed by (topology, blueprint); every one preserves its input's shape."""

from esper.kasmina.blueprints.ladder import ConvLadderSeed, LoraLadderSeed, MicrostructuredSeed
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
    "ConvLadderSeed",
    "LoraLadderSeed",
    "MicrostructuredSeed",
    "build_seed",
    "count_trainable",
    "spec_for",
]
