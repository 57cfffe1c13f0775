"""The alpha controller (blend amplitude schedule, ticked once per epoch) and the blend operators."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from esper.leyline import AlphaAlgorithm, AlphaCurve, AlphaMode

MIN_STEEPNESS = 0.1


def ease(curve: AlphaCurve, t: float, steepness: float) -> float:
    """Progress in [0, 1] after fraction t of a schedule: 0 -> 0, 1 -> 1, monotone."""
    t = min(max(t, 0.0), 1.0)
    if curve is AlphaCurve.LINEAR:
        return t
    if curve is AlphaCurve.COSINE:
        return 0.5 * (1.0 - math.cos(math.pi * t))
    # SIGMOID: a logistic centred at t = 0.5, rescaled so the ends are exact.
    k = max(steepness, MIN_STEEPNESS)
    low, high = 1.0 / (1.0 + math.exp(k / 2)), 1.0 / (1.0 + math.exp(-k / 2))
    return (1.0 / (1.0 + math.exp(-k * (t - 0.5))) - low) / (high - low)


@dataclass(slots=True)
class AlphaController:
    alpha: float = 0.0
    start: float = 0.0
    target: float = 0.0
    mode: AlphaMode = AlphaMode.HOLD
    curve: AlphaCurve = AlphaCurve.LINEAR
    steepness: float = 12.0
    steps_total: int = 0
    steps_done: int = 0

    def retarget(self, target: float, steps: int, curve: AlphaCurve, steepness: float) -> None:
        """Start moving toward `target` over `steps` ticks (0 snaps), from wherever alpha is now: a ramp in progress
        is replaced by the new one (a change of mind is a policy's to make, and the reward's alpha shock prices it)."""
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"alpha target {target} is outside [0, 1]")
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.start, self.target, self.curve, self.steepness = self.alpha, target, curve, steepness
        self.steps_total, self.steps_done = steps, 0
        if steps == 0 or math.isclose(target, self.alpha):
            self.alpha, self.mode = target, AlphaMode.HOLD
        else:
            self.mode = AlphaMode.UP if target > self.alpha else AlphaMode.DOWN

    def step(self) -> bool:
        """One tick. Returns True when this tick reached the target."""
        if self.mode is AlphaMode.HOLD:
            return False
        self.steps_done += 1
        if self.steps_done >= self.steps_total:
            self.alpha, self.mode = self.target, AlphaMode.HOLD
            return True
        progress = ease(self.curve, self.steps_done / self.steps_total, self.steepness)
        value = self.start + (self.target - self.start) * progress
        low, high = sorted((self.start, self.target))
        self.alpha = min(max(value, low), high)
        return False

    def velocity(self) -> float:
        """Alpha change per tick over the remaining schedule (0 while holding)."""
        remaining = self.steps_total - self.steps_done
        if self.mode is AlphaMode.HOLD or remaining <= 0:
            return 0.0
        return (self.target - self.alpha) / remaining


class GatedBlend(nn.Module):
    """Per-sample gate in (0, 1) from the pooled input: mean over spatial/time dims -> MLP -> sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(8, channels // 4)
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3)) if x.dim() == 4 else x.mean(dim=1)
        gate = torch.sigmoid(self.net(pooled))
        return gate.view(x.shape[0], *([1] * (x.dim() - 1)))


def blend(
    algorithm: AlphaAlgorithm,
    host: torch.Tensor,
    seed_input: torch.Tensor,
    seed_output: torch.Tensor,
    alpha: torch.Tensor | float,
    gate: GatedBlend | None,
) -> torch.Tensor:
    """Compose a seed into the host stream. The host term always passes with weight 1; the seed adds its delta
    (seed_output - seed_input) scaled by alpha, so host gradients along the host path are never attenuated."""
    delta = seed_output - seed_input
    if algorithm is AlphaAlgorithm.ADD:
        return host + alpha * delta
    if algorithm is AlphaAlgorithm.MULTIPLY:
        return host * (1.0 + alpha * torch.tanh(delta))
    if gate is None:
        raise ValueError("GATE blending needs a GatedBlend module")
    gated: torch.Tensor = gate(seed_input)
    return host + alpha * gated * delta
