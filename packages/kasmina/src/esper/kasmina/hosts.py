"""Hosts: the networks seeds grow into, with explicit routing and no forward hooks.

A host is `embed -> ops[0] -> ops[1] -> ... -> head`. Each injection point sits between two ops (its
`position` is the number of ops that run before it). MorphogeneticModel drives the ops itself, stopping at every
enabled slot, so routing is plain Python over module lists. The ops and the head are modules in their own right so
that an incubating seed's path can run them with frozen parameters (MorphogeneticModel.forward).

A host's injection points form its lattice: ids `r{row}c{col}` and an `order` (the action order) that
`leyline.check_lattice` validates. The transformer's ops are its sublayers, so one routing path serves every
surface layout; the layout only decides which points exist.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.kasmina.contracts.transformer_host_config import TransformerHostConfig
from esper.leyline import InjectionSpec, SurfaceType, Topology, check_lattice, format_slot_id


@runtime_checkable
class HostProtocol(Protocol):
    topology: Topology
    ops: nn.ModuleList  # the ops between injection points, in order
    head: nn.Module  # features -> logits

    def injection_specs(self) -> tuple[InjectionSpec, ...]:
        """Every injection point, sorted by `order` (the action index order)."""
        ...

    def execution_order(self) -> tuple[str, ...]:
        """Slot ids in the order the forward pass reaches them."""
        ...

    def position(self, slot_id: str) -> int:
        """Number of ops that run before the slot."""
        ...

    @property
    def num_ops(self) -> int: ...

    def embed(self, inputs: torch.Tensor) -> torch.Tensor: ...

    def run_ops(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor: ...

    def readout(self, x: torch.Tensor) -> torch.Tensor: ...


class _PointTable:
    """Injection points of a host: spec per slot id plus its op position."""

    def __init__(self, points: list[tuple[InjectionSpec, int]]) -> None:
        self.specs = check_lattice([spec for spec, _ in points])  # sorted by order; no repeats, no gaps
        self.positions = {spec.slot_id: position for spec, position in points}
        self.execution = tuple(spec.slot_id for spec, _ in sorted(points, key=lambda p: (p[1], p[0].order)))

    def position(self, slot_id: str) -> int:
        if slot_id not in self.positions:
            raise ValueError(f"host has no slot {slot_id!r}; slots: {', '.join(s.slot_id for s in self.specs)}")
        return self.positions[slot_id]


class SegmentedHost(nn.Module, abc.ABC):
    """The routing every host shares: `embed -> ops[0..n) -> head`, with injection points between ops.
    Subclasses build `self.ops`, `self.head`, `self._points` and `embed`."""

    ops: nn.ModuleList
    head: nn.Module
    _points: _PointTable

    def injection_specs(self) -> tuple[InjectionSpec, ...]:
        return self._points.specs

    def execution_order(self) -> tuple[str, ...]:
        return self._points.execution

    def position(self, slot_id: str) -> int:
        return self._points.position(slot_id)

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    @abc.abstractmethod
    def embed(self, inputs: torch.Tensor) -> torch.Tensor: ...

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(x)
        return logits

    def run_ops(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        ops = self.ops
        for index in range(start, stop):  # indexing, not slicing: a slice builds a new ModuleList every call
            x = ops[index](x)
        return x

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.readout(self.run_ops(self.embed(inputs), 0, self.num_ops))


class ConvBlock(nn.Module):
    """Host block: conv 3x3 (no bias) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class PooledClassifier(nn.Module):
    """CNN head: global average pooling, then a linear classifier."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.linear(x.mean(dim=(2, 3)))
        return logits


class CNNHost(SegmentedHost):
    """Conv blocks of growing width, each of the first `pool_layers` followed by 2x2 max-pooling, then global average
    pooling and a linear classifier.

    Injection points: row 0 (PRE_POOL) right after each block, before its pool, `r0c{i}`: the seed sees the block's
    output at full resolution and the pool runs after it; row 1 (POST_POOL) after each pooled block's pool, `r1c{i}`.
    The action order follows the forward pass: `order` is the number of points before the point in the forward pass
    (r0c0 0, r1c0 1, r0c1 2, r1c1 3, r0c2 4 for three blocks of which two pool; with every block pooled,
    order = block * 2 + rank of the surface), and `position` is (order + 1) / number of points.
    """

    topology = Topology.CNN

    def __init__(self, config: CnnHostConfig) -> None:
        super().__init__()
        if config.pool_layers > config.num_blocks:
            raise ValueError(f"pool_layers ({config.pool_layers}) must be <= num_blocks ({config.num_blocks})")
        if config.image_size % (2**config.pool_layers) != 0:
            raise ValueError(
                f"image_size {config.image_size} is not divisible by 2**pool_layers ({config.pool_layers})"
            )
        self.config = config
        ops: list[nn.Module] = []
        points: list[tuple[InjectionSpec, int]] = []
        widths = [config.base_channels * config.channel_multiplier**i for i in range(config.num_blocks)]
        total_points = config.num_blocks + config.pool_layers
        in_channels = config.in_channels
        for i, width in enumerate(widths):
            ops.append(ConvBlock(in_channels, width))
            points.append((self._spec(0, i, width, SurfaceType.PRE_POOL, len(points), total_points), len(ops)))
            if i < config.pool_layers:
                ops.append(nn.MaxPool2d(2))
                points.append((self._spec(1, i, width, SurfaceType.POST_POOL, len(points), total_points), len(ops)))
            in_channels = width
        self.ops = nn.ModuleList(ops)
        self.head = PooledClassifier(widths[-1], config.num_classes)
        self._points = _PointTable(points)

    @staticmethod
    def _spec(row: int, col: int, width: int, surface: SurfaceType, seen: int, total: int) -> InjectionSpec:
        """The point reached after `seen` others in the forward pass (its order) of `total`."""
        return InjectionSpec(
            slot_id=format_slot_id(row, col), channels=width, surface=surface, order=seen, position=(seen + 1) / total
        )

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs


class AttentionSublayer(nn.Module):
    """Pre-norm causal self-attention with its residual: x + drop(proj(SDPA(ln1 x)))."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(dim, dim=2)
        shape = (batch, steps, self.heads, dim // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        attn_dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=attn_dropout)
        attended: torch.Tensor = self.drop(self.proj(y.transpose(1, 2).reshape(batch, steps, dim)))
        return x + attended


class MlpSublayer(nn.Module):
    """Pre-norm MLP (4x, GELU) with its residual: x + drop(mlp(ln2 x))."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.drop(self.mlp(self.ln2(x)))
        return x + out


# The surface layouts a transformer host offers: one point per layer, or one after each chosen sublayer.
TRANSFORMER_LAYOUTS: Final[tuple[tuple[SurfaceType, ...], ...]] = (
    (SurfaceType.BLOCK_END,),
    (SurfaceType.POST_ATTN,),
    (SurfaceType.POST_MLP,),
    (SurfaceType.POST_ATTN, SurfaceType.POST_MLP),
)
# Which sublayer of a layer each surface follows (ops run attn_i = 2i, mlp_i = 2i + 1); the block end is the MLP's.
SUBLAYER_OF_SURFACE: Final[Mapping[SurfaceType, int]] = MappingProxyType(
    {SurfaceType.POST_ATTN: 0, SurfaceType.POST_MLP: 1, SurfaceType.BLOCK_END: 1}
)


def _surface_name(surface: object) -> str:
    return surface.name if isinstance(surface, SurfaceType) else repr(surface)


def check_surfaces(surfaces: Sequence[SurfaceType]) -> tuple[SurfaceType, ...]:
    """The layout as a tuple, or ValueError naming the field and the allowed values."""
    chosen = tuple(surfaces)
    if chosen not in TRANSFORMER_LAYOUTS:
        allowed = " or ".join("[" + ", ".join(s.name for s in layout) + "]" for layout in TRANSFORMER_LAYOUTS)
        got = "[" + ", ".join(_surface_name(s) for s in chosen) + "]"
        raise ValueError(
            f"surfaces {got} is not a transformer layout: [BLOCK_END] or a non-empty subset of [POST_ATTN, POST_MLP] "
            f"in forward order, without repeats (allowed: {allowed})"
        )
    return tuple(SurfaceType(s) for s in chosen)


class LanguageModelHead(nn.Module):
    """Transformer head: final LayerNorm, then the vocabulary projection (tied to the token embedding by the host)."""

    def __init__(self, dim: int, vocab_size: int) -> None:
        super().__init__()
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.lm_head(self.ln_f(x))
        return logits


class TransformerHost(SegmentedHost):
    """Small GPT-style causal language model with a weight-tied head.

    `ops` are the sublayers [attn_0, mlp_0, attn_1, mlp_1, ...] whatever the layout. `config.surfaces` chooses the
    injection points of every layer: [BLOCK_END] puts one after each MLP residual (`r0c{layer}`); a subset of
    [POST_ATTN, POST_MLP] puts one after each chosen sublayer's residual (`r{rank}c{layer}`, rank = the surface's
    index in `surfaces`). The action order follows the forward pass: order = layer * len(surfaces) + rank.
    """

    topology = Topology.TRANSFORMER
    positions: torch.Tensor  # registered buffer: 0..block_size-1

    def __init__(self, config: TransformerHostConfig) -> None:
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"n_embd ({config.n_embd}) must be a multiple of n_head ({config.n_head})")
        self.surfaces = check_surfaces(config.surfaces)
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        sublayers: list[nn.Module] = []
        for _ in range(config.n_layer):
            sublayers += [
                AttentionSublayer(config.n_embd, config.n_head, config.dropout),
                MlpSublayer(config.n_embd, config.dropout),
            ]
        self.ops = nn.ModuleList(sublayers)
        self.head = LanguageModelHead(config.n_embd, config.vocab_size)
        self.head.lm_head.weight = self.token_embedding.weight  # tied
        self.register_buffer("positions", torch.arange(config.block_size), persistent=False)
        self._points = _PointTable(self._lattice())
        self.apply(self._init_weights)

    def _lattice(self) -> list[tuple[InjectionSpec, int]]:
        """Every (point, number of ops before it), layer by layer, each layer's surfaces in forward order."""
        per_layer = len(self.surfaces)
        total = self.config.n_layer * per_layer
        points = []
        for layer in range(self.config.n_layer):
            for rank, surface in enumerate(self.surfaces):
                order = layer * per_layer + rank
                spec = InjectionSpec(
                    slot_id=format_slot_id(rank, layer),
                    channels=self.config.n_embd,
                    surface=surface,
                    order=order,
                    position=(order + 1) / total,
                )
                points.append((spec, 2 * layer + SUBLAYER_OF_SURFACE[surface] + 1))
        return points

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        steps = inputs.shape[1]
        if steps > self.config.block_size:
            raise ValueError(f"sequence length {steps} exceeds block_size {self.config.block_size}")
        embedded: torch.Tensor = self.drop(
            self.token_embedding(inputs) + self.position_embedding(self.positions[:steps])
        )
        return embedded
