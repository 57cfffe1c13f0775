"""conv_ladder: a seed whose capacity is its internal level (Phase 0, track C0).

Four SeedConvBlocks at the internal width (a 1x1 expansion from the slot's channels when the width differs) and a
zero-initialised 1x1 projection back. At level L the first L blocks run in sequence and the seed returns
x + proj(blocks[:L](expand(x))); level 0 returns x itself (exact identity). The level is the only state that
shapes the structure, and blocks at index >= L have requires_grad off, so trainable parameters (and rent) follow the
level. Changing the level is the job of SeedSlot.change_internal_level(GROW_INTERNAL | SHRINK_INTERNAL).
"""

from __future__ import annotations

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


class ConvLadderSeed(nn.Module):
    def __init__(self, channels: int, max_level: int = 4, level: int = 1, width: int | None = None) -> None:
        super().__init__()
        if max_level < 1:
            raise ValueError(f"max_level must be >= 1, got {max_level}")
        width = channels if width is None else width
        self.expand = expansion(channels, width)
        self.blocks = nn.ModuleList(SeedConvBlock(width) for _ in range(max_level))
        self.proj = nn.Conv2d(width, channels, 1, bias=False)
        zero_init(self.proj)
        self._max_level = max_level
        self._level = 0
        self._frozen = False
        self.set_internal_level(level)

    @property
    def internal_kind(self) -> SeedInternalKind:
        return SeedInternalKind.CONV_LADDER

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

    def _apply_trainability(self) -> None:
        # A pure function of (level, frozen): a level change during a frozen ramp cannot unfreeze anything.
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

    def get_extra_state(self) -> dict[str, int]:
        return {"level": self._level, "max_level": self._max_level}

    def set_extra_state(self, state: dict[str, int]) -> None:
        if state["max_level"] != self._max_level:
            raise ValueError(f"checkpoint max_level {state['max_level']} != {self._max_level}")
        self.set_internal_level(state["level"])
