"""A recording slot for routing tests: importable by name (pytest's pythonpath lists this folder)."""

from __future__ import annotations

import torch
from torch import nn

from esper.kasmina import SeedSlot
from esper.leyline import TelemetryHub


class RecordingSlot(SeedSlot):
    """A slot that records the tensor it receives and adds a fixed shift to it (None: passes it on untouched)."""

    def __init__(self, original: SeedSlot, shift: torch.Tensor | None) -> None:
        super().__init__(
            original.slot_id,
            original.channels,
            original.topology,
            original.gates,
            TelemetryHub("rec").emitter(0),
            surface=original.surface,
        )
        self.shift = shift
        self.seen: list[torch.Tensor] = []
        self.seed = nn.Identity()  # the model skips a slot without a seed: this one must be called

    def forward(self, x: torch.Tensor, measure: bool = True) -> torch.Tensor:
        self.seen.append(x)
        return x if self.shift is None else x + self.shift
