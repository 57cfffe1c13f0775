"""The blueprint registry: (topology, BlueprintAction) -> how to build the seed module.

It covers every BlueprintAction that leyline assigns to a topology (a consumer-coverage test checks it). Parameter
counts always come from the built module (`count_trainable`), never from estimates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from torch import nn

from esper.kasmina.blueprints import cnn, transformer
from esper.kasmina.blueprints.ladder import ChannelLadderSeed, ConvLadderSeed, LoraLadderSeed
from esper.leyline import TOPOLOGY_BLUEPRINTS, BlueprintAction, SeedInternalKind, Topology

BP = BlueprintAction
LADDER_MAX_LEVEL: Final = 4
LADDER_START_LEVEL: Final = 1
LORA_LADDER_RANK: Final = 4
CHANNEL_LADDER_GROUPS: Final = 4  # as conv_ladder has 4 blocks
CHANNEL_LADDER_WIDTH_FACTOR: Final = 2  # its width is twice the conv seeds' internal width


@dataclass(frozen=True, slots=True)
class BlueprintSpec:
    topology: Topology
    blueprint: BlueprintAction
    # (channels (CNN) or embedding width (transformer), internal width) -> module; only the CNN conv stacks and the
    # conv and channel ladders use the internal width, which is the slot's channels unless the task sets
    # `seed_width`.
    factory: Callable[[int, int], nn.Module]
    description: str


def _spec(
    topology: Topology, blueprint: BlueprintAction, factory: Callable[[int, int], nn.Module], text: str
) -> BlueprintSpec:
    return BlueprintSpec(topology, blueprint, factory, text)


def _fixed(factory: Callable[[int], nn.Module]) -> Callable[[int, int], nn.Module]:
    """A seed whose size follows the slot alone (it has no internal width)."""
    return lambda channels, width: factory(channels)


def _channel_ladder(channels: int, seed_width: int) -> ChannelLadderSeed:
    """Four channel groups over twice the conv seeds' internal width (so the max budget matches conv_ladder's)."""
    width = CHANNEL_LADDER_WIDTH_FACTOR * seed_width
    if width % CHANNEL_LADDER_GROUPS != 0:
        raise ValueError(f"channel_ladder: width {width} is not divisible into {CHANNEL_LADDER_GROUPS} groups")
    return ChannelLadderSeed(channels, width, width // CHANNEL_LADDER_GROUPS, level=LADDER_START_LEVEL)


_CNN = Topology.CNN
_TF = Topology.TRANSFORMER
_SPECS: Final = (
    _spec(_CNN, BP.NOOP, _fixed(lambda c: cnn.NoopSeed()), "identity"),
    _spec(_CNN, BP.NORM, _fixed(cnn.NormSeed), "x + tanh(s)(GN(x) - x)"),
    _spec(_CNN, BP.ATTENTION, _fixed(cnn.SqueezeExciteSeed), "squeeze-and-excite channel gate"),
    _spec(_CNN, BP.DEPTHWISE, _fixed(cnn.DepthwiseSeed), "depthwise 3x3 + pointwise 1x1, residual"),
    _spec(_CNN, BP.BOTTLENECK, _fixed(cnn.BottleneckSeed), "1x1 down, 3x3, 1x1 up, residual"),
    _spec(_CNN, BP.CONV_SMALL, _fixed(cnn.ConvSmallSeed), "1x1 conv + GN, residual"),
    _spec(
        _CNN,
        BP.CONV_LIGHT,
        lambda c, w: cnn.ConvStackSeed(c, depth=1, width=w),
        "one 3x3 conv block + 1x1 proj, residual",
    ),
    _spec(
        _CNN,
        BP.CONV_HEAVY,
        lambda c, w: cnn.ConvStackSeed(c, depth=2, width=w),
        "two 3x3 conv blocks + 1x1 proj, residual",
    ),
    _spec(
        _CNN,
        BP.CONV_LADDER,
        lambda c, w: ConvLadderSeed(c, max_level=LADDER_MAX_LEVEL, level=LADDER_START_LEVEL, width=w),
        "ladder of up to 4 conv blocks; the internal level is the active depth",
    ),
    _spec(
        _CNN,
        BP.CHANNEL_LADDER,
        _channel_ladder,
        "ladder of 4 channel groups at twice the seed width; the internal level is the number of active groups",
    ),
    _spec(_TF, BP.NOOP, _fixed(lambda d: transformer.NoopSeed()), "identity"),
    _spec(_TF, BP.NORM, _fixed(transformer.LayerNormSeed), "x + tanh(s)(LN(x) - x)"),
    _spec(_TF, BP.ATTENTION, _fixed(transformer.CausalAttentionSeed), "causal self-attention (SDPA), residual"),
    _spec(_TF, BP.FLEX_ATTENTION, _fixed(transformer.MaskedAttentionSeed), "causal self-attention with a block mask"),
    _spec(_TF, BP.LORA, _fixed(lambda d: transformer.LoraSeed(d, rank=8)), "low-rank adapter, rank 8"),
    _spec(_TF, BP.LORA_LARGE, _fixed(lambda d: transformer.LoraSeed(d, rank=32)), "low-rank adapter, rank 32"),
    _spec(_TF, BP.MLP_SMALL, _fixed(lambda d: transformer.MlpSeed(d, expansion=2)), "MLP, 2x expansion"),
    _spec(_TF, BP.MLP, _fixed(lambda d: transformer.MlpSeed(d, expansion=4)), "MLP, 4x expansion"),
    _spec(
        _TF,
        BP.LORA_LADDER,
        _fixed(lambda d: LoraLadderSeed(d, blocks=LADDER_MAX_LEVEL, rank=LORA_LADDER_RANK, level=LADDER_START_LEVEL)),
        "ladder of 4 rank-4 low-rank blocks; the internal level is the number of active blocks",
    ),
)

BLUEPRINTS: Final[Mapping[tuple[Topology, BlueprintAction], BlueprintSpec]] = MappingProxyType(
    {(spec.topology, spec.blueprint): spec for spec in _SPECS}
)
# Seed family for each internal kind that has one (NONE has none by definition).
INTERNAL_FAMILIES: Final[Mapping[SeedInternalKind, BlueprintAction]] = MappingProxyType(
    {
        SeedInternalKind.CONV_LADDER: BP.CONV_LADDER,
        SeedInternalKind.LORA_LADDER: BP.LORA_LADDER,
        SeedInternalKind.CHANNEL_LADDER: BP.CHANNEL_LADDER,
    }
)


def spec_for(topology: Topology, blueprint: BlueprintAction) -> BlueprintSpec:
    if (topology, blueprint) not in BLUEPRINTS:
        allowed = ", ".join(b.name.lower() for b in BlueprintAction if b in TOPOLOGY_BLUEPRINTS[topology])
        raise ValueError(f"blueprint {blueprint.name.lower()!r} does not apply to {topology.value}; allowed: {allowed}")
    return BLUEPRINTS[(topology, blueprint)]


def build_seed(topology: Topology, blueprint: BlueprintAction, channels: int, width: int | None = None) -> nn.Module:
    """The seed for a slot of `channels`; `width` is the internal width of the CNN conv stacks and the conv ladder
    (the channel ladder takes twice it; None: the slot's channels)."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if width is not None and width < 1:
        raise ValueError(f"seed width must be >= 1, got {width}")
    if width is not None and topology is not Topology.CNN:
        raise ValueError(f"seed_width applies to CNN conv seeds only; {topology.value} tasks leave it null")
    return spec_for(topology, blueprint).factory(channels, channels if width is None else width)


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
