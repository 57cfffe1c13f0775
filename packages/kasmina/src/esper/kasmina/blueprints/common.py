"""Building blocks shared by the seed families."""

from __future__ import annotations

import torch
from torch import nn


def num_groups(channels: int) -> int:
    """GroupNorm groups: the largest of 32/16/8/4/2 that divides `channels` with >= 16 channels per group, else the
    largest of those that divides it at all (1 as a last resort)."""
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0 and channels // groups >= 16:
            return groups
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0:
            return groups
    return 1


class SeedConvBlock(nn.Module):
    """conv 3x3 (no bias) -> GroupNorm -> ReLU (GroupNorm has no running statistics to drift while isolated)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.norm = nn.GroupNorm(num_groups(channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


def expansion(channels: int, width: int) -> nn.Module:
    """The 1x1 conv from a slot's channels to a seed's internal width (nothing when they are equal)."""
    return nn.Identity() if width == channels else nn.Conv2d(channels, width, 1, bias=False)


def zero_init(module: nn.Conv2d | nn.Linear) -> None:
    """Final layer of a residual seed: the seed starts as an exact identity and the layer still gets gradients."""
    nn.init.zeros_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
