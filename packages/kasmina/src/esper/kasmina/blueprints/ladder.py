"""Ladder seeds: seeds whose capacity is their internal level (conv_ladder: Phase 0, track C0; lora_ladder: Phase 1).

A ladder has `max_level` blocks; at level L the first L are active and level 0 returns x itself (exact identity).
The level is the only state that shapes the structure, and blocks at index >= L have requires_grad off, so trainable
parameters (and rent) follow the level. Changing the level is the job of
SeedSlot.change_internal_level(GROW_INTERNAL | SHRINK_INTERNAL).

- conv_ladder: four SeedConvBlocks at the internal width (a 1x1 expansion from the slot's channels when the width
  differs) run in sequence, and a zero-initialised 1x1 projection back: x + proj(blocks[:L](expand(x))).
- lora_ladder: four rank-r low-rank blocks side by side, each `up` zero-initialised: x + sum_{k<L} up_k(down_k(x)),
  effective rank r * L. A block switched on starts from its trained-or-zero `up`, so growing onto a fresh block does
  not change the output.
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
