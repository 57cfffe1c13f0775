"""Mutable per-seed state kept by a SeedSlot; `SeedSlot.report()` turns it into the SeedStateReport contract."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from esper.kasmina.alpha import AlphaController
from esper.leyline import AlphaAlgorithm, AlphaCurve, BlueprintAction, SeedInternalKind, SeedStage

CONTRIBUTION_VELOCITY_DECAY = 0.7
GRADIENT_EMA_DECAY = 0.9
VANISHING_GRADIENT = 1e-7
EXPLODING_GRADIENT = 100.0


@dataclass(slots=True)
class GradientStats:
    """Seed gradient statistics over the current epoch; None fields were not measured."""

    norm: float | None = None
    ratio: float = 0.0
    has_vanishing: bool | None = None
    has_exploding: bool | None = None

    @property
    def health(self) -> float | None:
        """1.0 for norms in [1e-6, 10]; falls off linearly in log10 to 0 at 1e-9 and 1e3; 0 if not finite."""
        if self.norm is None:
            return None
        if not math.isfinite(self.norm):
            return 0.0
        if self.norm <= 0.0:
            return 0.0
        log_norm = math.log10(self.norm)
        if -6.0 <= log_norm <= 1.0:
            return 1.0
        distance = (-6.0 - log_norm) if log_norm < -6.0 else (log_norm - 1.0)
        return max(0.0, 1.0 - distance / 3.0)

    def record(self, seed_norm: float, host_norm: float, seed_params: int, host_params: int) -> None:
        self.norm = (
            seed_norm if self.norm is None else GRADIENT_EMA_DECAY * self.norm + (1 - GRADIENT_EMA_DECAY) * seed_norm
        )
        # Norm ratio scaled for size: a seed with few parameters naturally has a small norm.
        if host_norm > 0.0 and seed_params > 0 and math.isfinite(seed_norm):
            ratio = (seed_norm / host_norm) * math.sqrt(host_params / seed_params)
            self.ratio = min(ratio, 10.0)
        self.has_vanishing = seed_norm < VANISHING_GRADIENT
        self.has_exploding = (not math.isfinite(seed_norm)) or seed_norm > EXPLODING_GRADIENT


@dataclass(slots=True)
class AccuracyRecord:
    initial: float | None = None
    current: float = 0.0
    best: float = 0.0
    at_stage_start: float | None = None

    def record(self, accuracy: float) -> None:
        if self.initial is None:
            self.initial = accuracy
            self.best = accuracy
        if self.at_stage_start is None:
            self.at_stage_start = accuracy
        self.current = accuracy
        self.best = max(self.best, accuracy)


@dataclass(slots=True)
class SeedState:
    seed_id: str
    blueprint: BlueprintAction
    stage: SeedStage
    alpha_algorithm: AlphaAlgorithm
    blend_curve: AlphaCurve  # shape of the germination-time BLENDING ramp (from the germination style)
    blend_tempo_epochs: int
    alpha_target: float  # the germinate-time (or last retargeted) amplitude BLENDING aims for
    seed_params: int
    host_params: int
    internal_kind: SeedInternalKind
    internal_level: int
    internal_max_level: int
    internal_group_size: int  # channels per group of a channel ladder; 0 for every other seed
    previous_stage: SeedStage = SeedStage.UNKNOWN
    previous_epochs_in_stage: int = 0
    epochs_total: int = 0
    epochs_in_stage: int = 0
    alpha: AlphaController = field(default_factory=AlphaController)
    accuracy: AccuracyRecord = field(default_factory=AccuracyRecord)
    contribution: float | None = None
    contribution_velocity: float = 0.0
    epochs_since_contribution: int | None = None
    gradients: GradientStats = field(default_factory=GradientStats)
    is_healthy: bool = True
    prune_pending: bool = False  # a scheduled prune is ramping alpha to zero
    delta_ratio: float | None = None  # mean |delta| / |x| over the last epoch's training batches; None: not measured

    def enter(self, stage: SeedStage) -> None:
        self.previous_stage, self.previous_epochs_in_stage = self.stage, self.epochs_in_stage
        self.stage, self.epochs_in_stage = stage, 0
        self.accuracy.at_stage_start = None if self.accuracy.initial is None else self.accuracy.current

    def record_contribution(self, contribution: float) -> None:
        if self.contribution is not None:
            delta = contribution - self.contribution
            self.contribution_velocity = (
                CONTRIBUTION_VELOCITY_DECAY * self.contribution_velocity + (1 - CONTRIBUTION_VELOCITY_DECAY) * delta
            )
        self.contribution = contribution
        self.epochs_since_contribution = 0
