"""Ladder seeds: seeds whose capacity is their internal level (conv_ladder: Phase 0, track C0; lora_ladder: Phase 1;
channel_ladder: Phase 2).

A ladder has `max_level` blocks; at level L the first L are active and level 0 returns x itself (exact identity).
The level is the only state that shapes the structure, and blocks at index >= L have requires_grad off, so trainable
parameters (and rent) follow the level. Changing the level is the job of
SeedSlot.change_internal_level(GROW_INTERNAL | SHRINK_INTERNAL).

- conv_ladder: four SeedConvBlocks at the internal width (a 1x1 expansion from the slot's channels when the width
  differs) run in sequence, and a zero-initialised 1x1 projection back: x + proj(blocks[:L](expand(x))).
- lora_ladder: four rank-r low-rank blocks side by side, each `up` zero-initialised: x + sum_{k<L} up_k(down_k(x)),
  effective rank r * L. A block switched on starts from its trained-or-zero `up`, so growing onto a fresh block does
  not change the output.
- channel_ladder: the conv seed's width grown one channel group at a time. A 1x1 expansion to the internal width
  (when it differs from the slot's channels), then `width / group_size` groups side by side, each a 3x3 conv from the
  full width to `group_size` channels (+ GroupNorm + ReLU) and a zero-initialised 1x1 projection back:
  x + sum_{g<L} proj_g(block_g(expand(x))). As in lora_ladder a fresh group adds an exact 0.
"""

from __future__ import annotations

import abc
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from esper.kasmina.blueprints.common import SeedConvBlock, expansion, zero_init
from esper.leyline import SeedInternalKind


@runtime_checkable
class MicrostructuredSeed(Protocol):
    """A seed with an internal level driven by GROW_INTERNAL / SHRINK_INTERNAL."""

    @property
    def internal_kind(self) -> SeedInternalKind: ...

    @property
    def internal_level(self) -> int: ...

    @property
    def internal_max_level(self) -> int: ...

    def set_internal_level(self, level: int) -> None: ...

    def set_frozen(self, frozen: bool) -> None: ...

    def active_param_count(self) -> int: ...


class _Ladder(nn.Module, abc.ABC):
    """What every ladder shares: the level in 0..max_level, the frozen flag, trainability as a pure function of the
    two, and (level, max_level) as the module's extra state (so a checkpoint restores the structure)."""

    def __init__(self, max_level: int) -> None:
        super().__init__()
        self._max_level = max_level
        self._level = 0
        self._frozen = False

    @property
    def internal_level(self) -> int:
        return self._level

    @property
    def internal_max_level(self) -> int:
        return self._max_level

    def set_internal_level(self, level: int) -> None:
        if not 0 <= level <= self._max_level:
            raise ValueError(f"internal level {level} is outside 0..{self._max_level}")
        self._level = level
        self._apply_trainability()

    def set_frozen(self, frozen: bool) -> None:
        """Freeze every parameter (a scheduled prune ramps alpha down with the seed frozen)."""
        self._frozen = frozen
        self._apply_trainability()

    @abc.abstractmethod
    def _apply_trainability(self) -> None:
        """Set requires_grad from (level, frozen) alone: a level change during a frozen ramp cannot unfreeze."""

    def get_extra_state(self) -> dict[str, int]:
        return {"level": self._level, "max_level": self._max_level}

    def set_extra_state(self, state: dict[str, int]) -> None:
        if state["max_level"] != self._max_level:
            raise ValueError(f"checkpoint max_level {state['max_level']} != {self._max_level}")
        self.set_internal_level(state["level"])


class ConvLadderSeed(_Ladder):
    def __init__(self, channels: int, max_level: int = 4, level: int = 1, width: int | None = None) -> None:
        if max_level < 1:
            raise ValueError(f"max_level must be >= 1, got {max_level}")
        super().__init__(max_level)
        width = channels if width is None else width
        self.expand = expansion(channels, width)
        self.blocks = nn.ModuleList(SeedConvBlock(width) for _ in range(max_level))
        self.proj = nn.Conv2d(width, channels, 1, bias=False)
        zero_init(self.proj)
        self.set_internal_level(level)

    @property
    def internal_kind(self) -> SeedInternalKind:
        return SeedInternalKind.CONV_LADDER

    def _apply_trainability(self) -> None:
        for index, block in enumerate(self.blocks):
            block.requires_grad_(not self._frozen and index < self._level)
        self.expand.requires_grad_(not self._frozen and self._level > 0)
        self.proj.requires_grad_(not self._frozen and self._level > 0)

    def active_param_count(self) -> int:
        """Parameters that are part of the structure at the current level (trainable unless frozen)."""
        if self._level == 0:
            return 0
        active = sum(p.numel() for block in self.blocks[: self._level] for p in block.parameters())
        return active + sum(p.numel() for end in (self.expand, self.proj) for p in end.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._level == 0:
            return x
        h = self.expand(x)
        for block in self.blocks[: self._level]:
            h = block(h)
        delta: torch.Tensor = self.proj(h)
        return x + delta


class LoraLadderSeed(_Ladder):
    """Transformer seed over [B, T, dim]: `blocks` low-rank adapters of rank `rank` (bias-free), `level` of them
    active at birth."""

    def __init__(self, dim: int, blocks: int = 4, rank: int = 4, level: int = 1) -> None:
        if blocks < 1 or rank < 1:
            raise ValueError(f"blocks and rank must be >= 1, got blocks={blocks} rank={rank}")
        super().__init__(blocks)
        self.down = nn.ModuleList(nn.Linear(dim, rank, bias=False) for _ in range(blocks))
        ups = [nn.Linear(rank, dim, bias=False) for _ in range(blocks)]
        for up in ups:
            zero_init(up)
        self.up = nn.ModuleList(ups)
        self.set_internal_level(level)

    @property
    def internal_kind(self) -> SeedInternalKind:
        return SeedInternalKind.LORA_LADDER

    def _apply_trainability(self) -> None:
        for index, (down, up) in enumerate(zip(self.down, self.up, strict=True)):
            active = not self._frozen and index < self._level
            down.requires_grad_(active)
            up.requires_grad_(active)

    def active_param_count(self) -> int:
        """Parameters of the active blocks (trainable unless frozen): level * 2 * dim * rank."""
        blocks = (*self.down[: self._level], *self.up[: self._level])
        return sum(p.numel() for block in blocks for p in block.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._level == 0:
            return x
        # The deltas are summed before the residual, so an active block whose `up` is zero adds an exact 0.
        delta: torch.Tensor = self.up[0](self.down[0](x))
        for down, up in zip(self.down[1 : self._level], self.up[1 : self._level], strict=True):
            delta = delta + up(down(x))
        return x + delta


def channel_groups(width: int, group_size: int) -> int:
    """How many channel groups of `group_size` make up `width` (ValueError naming both unless it divides exactly)."""
    if width < 1 or group_size < 1:
        raise ValueError(f"width and group size must be >= 1, got width {width} and group size {group_size}")
    if width % group_size != 0:
        raise ValueError(f"width {width} is not divisible into groups of {group_size} channels")
    return width // group_size


class ChannelLadderSeed(_Ladder):
    """CNN seed over [B, C, H, W] whose level is the number of active channel groups of its internal width."""

    def __init__(self, channels: int, width: int, group_size: int, level: int = 1) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        groups = channel_groups(width, group_size)
        super().__init__(groups)
        self._group_size = group_size
        self.expand = expansion(channels, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, group_size, 3, padding=1, bias=False), nn.GroupNorm(1, group_size), nn.ReLU()
            )
            for _ in range(groups)
        )
        projections = [nn.Conv2d(group_size, channels, 1, bias=False) for _ in range(groups)]
        for proj in projections:
            zero_init(proj)
        self.proj = nn.ModuleList(projections)
        self.set_internal_level(level)

    @property
    def internal_kind(self) -> SeedInternalKind:
        return SeedInternalKind.CHANNEL_LADDER

    @property
    def group_size(self) -> int:
        """Channels per group (what one level adds to the internal width)."""
        return self._group_size

    def _apply_trainability(self) -> None:
        for index, (block, proj) in enumerate(zip(self.blocks, self.proj, strict=True)):
            active = not self._frozen and index < self._level
            block.requires_grad_(active)
            proj.requires_grad_(active)
        self.expand.requires_grad_(not self._frozen and self._level > 0)

    def active_param_count(self) -> int:
        """Parameters of the expansion and the active groups (trainable unless frozen); 0 at level 0."""
        if self._level == 0:
            return 0
        modules = (self.expand, *self.blocks[: self._level], *self.proj[: self._level])
        return sum(p.numel() for module in modules for p in module.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._level == 0:
            return x
        h = self.expand(x)
        # The deltas are summed before the residual, so an active group whose `proj` is zero adds an exact 0.
        delta: torch.Tensor = self.proj[0](self.blocks[0](h))
        for block, proj in zip(self.blocks[1 : self._level], self.proj[1 : self._level], strict=True):
            delta = delta + proj(block(h))
        return x + delta


def seed_group_size(seed: nn.Module) -> int:
    """Channels per group of a channel ladder; 0 for every other seed (what reports and events carry)."""
    return seed.group_size if isinstance(seed, ChannelLadderSeed) else 0
