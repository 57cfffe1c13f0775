"""CNN seeds over [B, C, H, W]. Residual seeds return x + f(x); most zero-init f's last layer (identity at birth)."""

from __future__ import annotations

import torch
from torch import nn

from esper.kasmina.blueprints.common import SeedConvBlock, expansion, num_groups, zero_init


class NoopSeed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class NormSeed(nn.Module):
    """x + tanh(s) * (GN(x) - x) with s = 0 at birth: an exact identity that can learn to normalise."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(num_groups(channels), channels)
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed: torch.Tensor = self.norm(x)
        return x + torch.tanh(self.scale) * (normed - x)


class SqueezeExciteSeed(nn.Module):
    """Channel attention: x * 2 * sigmoid(MLP(GAP(x))); the last layer starts at zero, so the gate starts at 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // 4, 1)
        self.down = nn.Linear(channels, hidden, bias=False)
        self.up = nn.Linear(hidden, channels)
        zero_init(self.up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = 2.0 * torch.sigmoid(self.up(torch.relu(self.down(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]


class DepthwiseSeed(nn.Module):
    """x + pw1x1(ReLU(GN(dw3x3(x))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.norm = nn.GroupNorm(num_groups(channels), channels)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        zero_init(self.pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta: torch.Tensor = self.pointwise(torch.relu(self.norm(self.depthwise(x))))
        return x + delta


class BottleneckSeed(nn.Module):
    """x + up1x1(ReLU(GN(conv3x3(ReLU(GN(down1x1(x))))))) with width max(8, C/4)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        width = max(8, channels // 4)
        self.down = nn.Conv2d(channels, width, 1, bias=False)
        self.norm1 = nn.GroupNorm(num_groups(width), width)
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(num_groups(width), width)
        self.up = nn.Conv2d(width, channels, 1, bias=False)
        zero_init(self.up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm1(self.down(x)))
        delta: torch.Tensor = self.up(torch.relu(self.norm2(self.conv(h))))
        return x + delta


class ConvSmallSeed(nn.Module):
    """x + GN(conv1x1(x)) with the norm's affine at zero (identity at birth, gradients reach the affine)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.GroupNorm(num_groups(channels), channels)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta: torch.Tensor = self.norm(self.conv(x))
        return x + delta


class ConvStackSeed(nn.Module):
    """x + proj(blocks(expand(x))): conv_light has one SeedConvBlock, conv_heavy two, at the internal `width`
    (expand is a 1x1 conv from the slot's channels when the width differs); proj (1x1, back to the slot's channels)
    starts at zero."""

    def __init__(self, channels: int, depth: int, width: int) -> None:
        super().__init__()
        self.expand = expansion(channels, width)
        self.blocks = nn.Sequential(*(SeedConvBlock(width) for _ in range(depth)))
        self.proj = nn.Conv2d(width, channels, 1, bias=False)
        zero_init(self.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta: torch.Tensor = self.proj(self.blocks(self.expand(x)))
        return x + delta
