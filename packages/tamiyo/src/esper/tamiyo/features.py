"""Obs V3 feature extraction: SeedStateReports + TrainingSignals of N environments -> one CPU tensor.

The fields and their order are leyline's BASE_FEATURE_FIELDS and SLOT_FEATURE_FIELDS; the encoders below are keyed
by field name and a test ties them to the lists, so the extraction width is the declared width by construction.
Everything is written into plain Python lists and turned into one tensor at the end (one copy to the policy
device later), never element by element on a device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from esper.leyline import (
    BLUEPRINT_NULL_INDEX,
    HISTORY_LENGTH,
    MAX_SURFACE_VALUE,
    OBS_V3_BASE_FEATURE_SIZE,
    OBS_V3_SLOT_FEATURE_SIZE,
    STAGE_INDEX,
    SYMLOG_NORM,
    UNKNOWN_SENTINEL,
    AlphaMode,
    LifecycleOp,
    SeedStage,
    SeedStateReport,
    SlotConfig,
    TrainingSignals,
    slot_ids,
)

CONTRIBUTION_SCALE = 10.0
BLEND_TEMPO_SCALE = 12.0
FRESHNESS_DECAY = 0.995
MAX_ALPHA_MODE = max(AlphaMode)


@dataclass(frozen=True, slots=True)
class EnvView:
    """What Tamiyo sees of one environment at one step: training signals and the reports of occupied slots."""

    signals: TrainingSignals
    reports: Mapping[str, SeedStateReport] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """A batch of encoded environments (CPU until `.to(device)`)."""

    views: tuple[EnvView, ...]
    features: torch.Tensor  # [n_envs, obs_dim] float32
    blueprint_indices: torch.Tensor  # [n_envs, n_slots] int64; BLUEPRINT_NULL_INDEX for an empty slot

    def to(self, device: torch.device | str) -> Observation:
        return Observation(self.views, self.features.to(device), self.blueprint_indices.to(device))


def symlog(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x) / SYMLOG_NORM


def _clamp(x: float, limit: float = 1.0) -> float:
    return max(-limit, min(limit, x))


def _finite(name: str, value: float) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"feature {name}: non-finite value {value} (NaN/inf telemetry is a bug upstream, not zero)")
    return value


class FeatureExtractor:
    """Encodes batches for a fixed slot configuration (slot blocks in its action order). Keeps, per environment and
    slot, the previous epoch's gradient health (the one field reports do not carry); call `reset(env)` when an
    environment starts a new episode."""

    def __init__(self, slots: SlotConfig, n_envs: int) -> None:
        self.slot_ids = slot_ids(slots)
        self.n_envs = n_envs
        # Where each slot sits is a property of the slot, not of its seed: an empty slot shows it too.
        self._places = {
            spec.slot_id: [spec.order / slots.lattice_size, spec.surface / MAX_SURFACE_VALUE] for spec in slots.slots
        }
        self._previous_health: list[dict[str, tuple[str, float]]] = [{} for _ in range(n_envs)]
        self._stage_one_hot = {
            stage: [1.0 if i == STAGE_INDEX[stage] else 0.0 for i in range(len(STAGE_INDEX))] for stage in SeedStage
        }
        self._op_one_hot = {op: [1.0 if o is op else 0.0 for o in LifecycleOp] for op in LifecycleOp}
        self._empty_slot = [0.0] * (OBS_V3_SLOT_FEATURE_SIZE - 2)

    @property
    def obs_dim(self) -> int:
        return OBS_V3_BASE_FEATURE_SIZE + OBS_V3_SLOT_FEATURE_SIZE * len(self.slot_ids)

    def reset(self, env: int) -> None:
        self._previous_health[env] = {}

    def encode(self, views: Sequence[EnvView]) -> Observation:
        if len(views) != self.n_envs:
            raise ValueError(f"expected {self.n_envs} environments, got {len(views)}")
        rows: list[list[float]] = []
        blueprints: list[list[int]] = []
        for env, view in enumerate(views):
            unknown = set(view.reports) - set(self.slot_ids)
            if unknown:
                raise ValueError(f"env {env}: reports for slots {sorted(unknown)} outside the layout {self.slot_ids}")
            row = self._base(view)
            bp_row: list[int] = []
            for slot_id in self.slot_ids:
                row += self._places[slot_id]
                if slot_id in view.reports:
                    report = view.reports[slot_id]
                    row += self._slot(env, report, view.signals.max_epochs)
                    bp_row.append(int(report.blueprint))
                else:
                    row += self._empty_slot
                    bp_row.append(BLUEPRINT_NULL_INDEX)
            rows.append(row)
            blueprints.append(bp_row)
        features = torch.tensor(rows, dtype=torch.float32)
        if features.shape[1] != self.obs_dim:
            raise AssertionError(f"encoded width {features.shape[1]} != declared {self.obs_dim}")
        return Observation(tuple(views), features, torch.tensor(blueprints, dtype=torch.int64))

    # ------------------------------------------------------------------ base
    def _base(self, view: EnvView) -> list[float]:
        signals, metrics = view.signals, view.signals.metrics
        max_epochs = signals.max_epochs
        losses = [symlog(_finite("loss_history", v)) for v in signals.loss_history[-HISTORY_LENGTH:]]
        accuracies = [_finite("accuracy_history", v) / 100.0 for v in signals.accuracy_history[-HISTORY_LENGTH:]]
        pad = [UNKNOWN_SENTINEL] * HISTORY_LENGTH
        losses = pad[len(losses) :] + losses
        accuracies = pad[len(accuracies) :] + accuracies
        stages = [r.stage for r in view.reports.values()]
        slots = len(self.slot_ids)
        return [
            min(metrics.epoch, max_epochs) / max_epochs,
            symlog(_finite("val_loss", metrics.val_loss)),
            _finite("val_accuracy", metrics.val_accuracy) / 100.0,
            *losses,
            *accuracies,
            stages.count(SeedStage.TRAINING) / slots,
            stages.count(SeedStage.BLENDING) / slots,
            (stages.count(SeedStage.HOLDING) + stages.count(SeedStage.FOSSILIZED)) / slots,
            1.0 if signals.last_action_success else 0.0,
            *self._op_one_hot[signals.last_action_op],
        ]

    # ------------------------------------------------------------------ slot
    def _slot(self, env: int, report: SeedStateReport, max_epochs: int) -> list[float]:
        m = report.metrics
        contribution = m.counterfactual_contribution
        health = m.gradient_health
        memory = self._previous_health[env]
        previous = memory[report.slot_id] if report.slot_id in memory else None
        health_prev = previous[1] if previous is not None and previous[0] == report.seed_id else UNKNOWN_SENTINEL
        if health is not None:
            memory[report.slot_id] = (report.seed_id, _finite("gradient_health", health))
        remaining = max(report.alpha_steps_total - report.alpha_steps_done, 0)
        velocity = 0.0
        if report.alpha_mode is not AlphaMode.HOLD and remaining > 0:
            velocity = _clamp((report.alpha_target - report.alpha) / remaining)
        grad_norm = m.gradient_norm
        freshness = (
            UNKNOWN_SENTINEL
            if m.epochs_since_counterfactual is None
            else FRESHNESS_DECAY**m.epochs_since_counterfactual
        )
        return [
            1.0,
            *self._stage_one_hot[report.stage],
            _finite("alpha", report.alpha),
            0.0 if contribution is None else _clamp(_finite("contribution", contribution) / CONTRIBUTION_SCALE),
            _clamp(_finite("contribution_velocity", m.contribution_velocity) / CONTRIBUTION_SCALE),
            report.blend_tempo_epochs / BLEND_TEMPO_SCALE,
            _finite("alpha_target", report.alpha_target),
            report.alpha_mode / MAX_ALPHA_MODE,
            min(report.alpha_steps_total, max_epochs) / max_epochs,
            min(report.alpha_steps_done, max_epochs) / max_epochs,
            min(remaining, max_epochs) / max_epochs,
            velocity,
            (report.alpha_algorithm - 1) / 2.0,
            0.0 if grad_norm is None else symlog(_finite("gradient_norm", grad_norm)),
            0.0 if health is None else min(health, 1.0),
            1.0 if m.has_vanishing else 0.0,
            1.0 if m.has_exploding else 0.0,
            health_prev,
            min(m.epochs_in_current_stage, max_epochs) / max_epochs,
            freshness,
            min(m.epochs_total, max_epochs) / max_epochs,
            report.internal_level / report.internal_max_level,
            0.0 if m.delta_ratio is None else symlog(_finite("delta_ratio", m.delta_ratio)),
        ]
