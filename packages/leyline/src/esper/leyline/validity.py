"""Which actions are structurally possible: the one rule set that Tamiyo's masks and Tolaria's environment share.

An op is refused here when a seed's report already says it cannot succeed: the wrong stage, a ladder at its
bound, an ADVANCE whose gate would fail a rule known in advance (too few epochs in TRAINING, alpha not holding at
full amplitude), a FOSSILIZE before any contribution was measured, a germination beyond the run's seed cap.
Refusals that depend on measurements (exploding gradients, gradient health, an unhealthy seed) are left to the seed
gates: they are gate outcomes, counted apart from invalid actions. Policy preferences (one seed developing at a
time, a minimum age before pruning, waiting out a prune's embargo) are not rules here: the heuristic encodes them
and a learned policy may discover them from the reward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from esper.leyline.contracts.alpha_mode import AlphaMode
from esper.leyline.contracts.lifecycle_op import LifecycleOp
from esper.leyline.contracts.seed_internal_kind import SeedInternalKind
from esper.leyline.contracts.seed_stage import SeedStage
from esper.leyline.contracts.seed_state_report import SeedStateReport
from esper.leyline.stages import INTERNAL_OP_STAGES, LIVE_STAGES

OP = LifecycleOp
S = SeedStage
MIN_TRAINING_EPOCHS: Final = 10  # epochs in TRAINING before ADVANCE to BLENDING (the G2 gate's rule)
FULL_AMPLITUDE: Final = 1.0 - 1e-6


@dataclass(frozen=True, slots=True)
class ActionLimits:
    """The run's structural limits: the seed gates' rules known in advance, and the seed cap."""

    min_training_epochs: int = MIN_TRAINING_EPOCHS
    min_blending_epochs: int = 0  # strict gates only
    max_seeds: int | None = None  # live + fossilized seeds per environment; None = unlimited

    def __post_init__(self) -> None:
        if self.min_training_epochs < 0 or self.min_blending_epochs < 0:
            raise ValueError(
                f"ActionLimits: min_training_epochs ({self.min_training_epochs}) and min_blending_epochs "
                f"({self.min_blending_epochs}) must be >= 0"
            )
        if self.max_seeds is not None and self.max_seeds < 1:
            raise ValueError(f"max_seeds must be >= 1 or None (unlimited), got {self.max_seeds}")


Report = SeedStateReport | None  # None: the slot is empty
SlotRule = Callable[[SeedStateReport, ActionLimits], str | None]


def _pruning(r: SeedStateReport) -> bool:
    """A scheduled prune ramps alpha toward 0; no retarget or policy ever aims a live seed at 0 otherwise."""
    return r.alpha_target == 0.0


def _alpha_target(r: SeedStateReport, limits: ActionLimits) -> str | None:
    if r.stage not in (S.BLENDING, S.HOLDING):
        return f"SET_ALPHA_TARGET needs a BLENDING or HOLDING seed, not {r.stage.name}"
    return "the seed is being pruned" if _pruning(r) else None


def _advance(r: SeedStateReport, limits: ActionLimits) -> str | None:
    m = r.metrics
    if r.stage is S.GERMINATED:
        return None
    if r.stage is S.TRAINING:
        if m.epochs_in_current_stage < limits.min_training_epochs:
            return f"{m.epochs_in_current_stage} of {limits.min_training_epochs} epochs in TRAINING"
        return None
    if r.stage is S.BLENDING:
        holding = r.alpha_mode is AlphaMode.HOLD and r.alpha >= FULL_AMPLITUDE and r.alpha_target >= FULL_AMPLITUDE
        if not holding:
            return "alpha does not hold at full amplitude"
        if m.epochs_in_current_stage < limits.min_blending_epochs:
            return f"{m.epochs_in_current_stage} of {limits.min_blending_epochs} epochs in BLENDING"
        return None
    return f"ADVANCE applies to GERMINATED, TRAINING and BLENDING, not {r.stage.name}"


def _fossilize(r: SeedStateReport, limits: ActionLimits) -> str | None:
    if r.stage is not S.HOLDING:
        return f"FOSSILIZE needs a HOLDING seed, not {r.stage.name}"
    return "no contribution measured yet" if r.metrics.counterfactual_contribution is None else None


def _internal(step: int) -> SlotRule:
    def rule(r: SeedStateReport, limits: ActionLimits) -> str | None:
        if r.internal_kind is SeedInternalKind.NONE:
            return "the seed has no internal ladder"
        if r.stage not in INTERNAL_OP_STAGES:
            return f"internal ops need TRAINING, BLENDING or HOLDING, not {r.stage.name}"
        level = r.internal_level + step
        return None if 0 <= level <= r.internal_max_level else f"internal level {r.internal_level} is at its bound"

    return rule


def _live(r: SeedStateReport, limits: ActionLimits) -> str | None:
    return None if r.stage in LIVE_STAGES else f"PRUNE needs a live seed, not {r.stage.name}"


# Why an op cannot act on an occupied slot (None: it can). GERMINATE and WAIT are decided before these rules.
_OCCUPIED_RULES: Final[Mapping[LifecycleOp, SlotRule]] = MappingProxyType(
    {
        OP.SET_ALPHA_TARGET: _alpha_target,
        OP.PRUNE: _live,
        OP.FOSSILIZE: _fossilize,
        OP.ADVANCE: _advance,
        OP.GROW_INTERNAL: _internal(+1),
        OP.SHRINK_INTERNAL: _internal(-1),
    }
)
# Every op the rule set decides (consumer coverage: every LifecycleOp).
RULED_OPS: Final = frozenset({OP.WAIT, OP.GERMINATE, *_OCCUPIED_RULES})


def seed_count(reports: Sequence[SeedStateReport]) -> int:
    """Live and fossilized seeds: what the seed cap counts."""
    return sum(1 for r in reports if r.stage in LIVE_STAGES or r.stage is S.FOSSILIZED)


def refusal(op: LifecycleOp, report: Report, reports: Sequence[SeedStateReport], limits: ActionLimits) -> str | None:
    """Why `op` on a slot (its report, None when empty) is structurally impossible, or None when it is possible.
    `reports` are every occupied slot's reports in the environment (the seed cap counts them)."""
    if op is OP.WAIT:
        return None
    if op is OP.GERMINATE:
        if report is not None:
            return f"the slot holds a {report.stage.name} seed"
        if limits.max_seeds is not None and seed_count(reports) >= limits.max_seeds:
            return f"{limits.max_seeds} seed(s) already (max_seeds)"
        return None
    if report is None:
        return f"{op.name} needs a seed; the slot is empty"
    return _OCCUPIED_RULES[op](report, limits)
