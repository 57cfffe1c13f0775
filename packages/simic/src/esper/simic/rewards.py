"""Rewards (contribution family): what Simic pays Tamiyo for one environment step.

Every term is reported (RewardComponents); `total` is their sum. In `shaped` mode (default):
- contribution: the value of the seeds whose output reaches the host (blending and holding): each seed's measured
  counterfactual contribution, capped by the accuracy the model gained since the seed germinated (`seed_value`),
  `contribution_weight` per `contribution_scale` points;
- rent: added parameters (alpha-weighted while blending, in full once fossilized) against the budget (param-first);
- alpha_shock: squared alpha changes weighted by the seed's size relative to the host;
- pbrs: potential-based shaping gamma * Phi(s') - Phi(s) over the slots' stage potentials (gamma = PPO's gamma, so
  it telescopes and cannot change the optimal policy);
- intervention_cost: the op's cost (every LifecycleOp has one, a schema default covered by the tests);
- thrash_penalty: oscillating GROW/SHRINK_INTERNAL in a window (off by default);
- terminal_bonus: final accuracy at the episode's end (or, with `terminal_over_host_only`, its difference from the
  host-only accuracy of the same host, seed and epochs), plus a bonus per successful fossilization of a helping seed;
- governor_penalty: when the governor rolled the model back.
`sparse` mode pays only the terminal bonus and the governor penalty.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from esper.leyline import INTERNAL_OPS, LifecycleOp, RewardComponents, SeedStage, SeedStateReport
from esper.simic.contracts.reward_config import RewardConfig
from esper.simic.contracts.reward_mode import RewardMode

S = SeedStage
STAGE_POTENTIALS: Final[Mapping[SeedStage, float]] = MappingProxyType(
    {
        S.UNKNOWN: 0.0,
        S.DORMANT: 0.0,
        S.GERMINATED: 1.0,
        S.TRAINING: 2.0,
        S.BLENDING: 3.5,
        S.HOLDING: 5.5,
        S.FOSSILIZED: 6.0,
        S.PRUNED: 0.0,
        S.EMBARGOED: 0.0,
        S.RESETTING: 0.0,
    }
)
MAX_ALPHA_SHOCK = 1.0


def check_reward_config(config: RewardConfig) -> RewardConfig:
    """Every op must have a cost (by name); unknown names are errors."""
    names = {op.name for op in LifecycleOp}
    missing = sorted(names - set(config.intervention_costs))
    unknown = sorted(set(config.intervention_costs) - names)
    if missing or unknown:
        raise ValueError(
            f"RewardConfig.intervention_costs: missing {missing}, unknown {unknown}; allowed: {sorted(names)}"
        )
    return config


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What happened in one environment step, as the reward sees it."""

    op: LifecycleOp
    success: bool
    before: Sequence[SeedStateReport]  # reports the policy saw
    after: Sequence[SeedStateReport]  # reports after the step
    host_params: int
    val_accuracy: float  # after the step, percent
    terminal: bool  # last step of the episode
    rolled_back: bool
    host_only_accuracy: float | None = None  # the same host trained alone to this epoch; None: not trained


def potential(reports: Sequence[SeedStateReport]) -> float:
    return sum(STAGE_POTENTIALS[r.stage] for r in reports)


def added_params(reports: Sequence[SeedStateReport]) -> float:
    total = 0.0
    for r in reports:
        if r.stage is S.FOSSILIZED:
            total += r.metrics.seed_param_count
        elif r.stage in (S.BLENDING, S.HOLDING):
            total += r.alpha * r.metrics.seed_param_count
    return total


class InternalOpWindow:
    """One seed's window of internal ops in its slot: density, net level change and reversal rate (anti-thrash
    metrics). `seed_id` is the seed it belongs to (None: the slot was empty)."""

    def __init__(self, window: int, seed_id: str | None = None) -> None:
        self.window = window
        self.seed_id = seed_id
        self._steps: deque[int] = deque(maxlen=window)  # +1 grow, -1 shrink, 0 anything else

    def record(self, op: LifecycleOp, success: bool) -> None:
        direction = 0
        if success and op is LifecycleOp.GROW_INTERNAL:
            direction = 1
        elif success and op is LifecycleOp.SHRINK_INTERNAL:
            direction = -1
        self._steps.append(direction)

    @property
    def op_count(self) -> int:
        return sum(1 for d in self._steps if d != 0)

    @property
    def density(self) -> float:
        return self.op_count / self.window

    @property
    def net_level_change(self) -> int:
        return sum(self._steps)

    @property
    def reversal_rate(self) -> float:
        moves = [d for d in self._steps if d != 0]
        if len(moves) < 2:
            return 0.0
        reversals = sum(1 for a, b in zip(moves, moves[1:], strict=False) if a != b)
        return reversals / (len(moves) - 1)


def seed_value(report: SeedStateReport) -> float | None:
    """A seed's counterfactual contribution, capped by the accuracy gained since it germinated (None: not measured).
    The contribution alone pays for dependence, not value: a seed that broke the host and then props it up scores
    high because the host without it is broken. No seed earns more than the model actually improved."""
    contribution = report.metrics.counterfactual_contribution
    if contribution is None:
        return None
    return min(contribution, max(report.metrics.total_improvement, 0.0))


def compute_reward(
    config: RewardConfig, gamma: float, outcome: StepOutcome, window: InternalOpWindow | None
) -> RewardComponents:
    governor = -config.governor_penalty if outcome.rolled_back else 0.0
    terminal = (
        config.terminal_accuracy_weight * (outcome.val_accuracy - _reference(config, outcome))
        if outcome.terminal
        else 0.0
    )
    if config.mode is RewardMode.SPARSE:
        return _components(terminal_bonus=terminal, governor_penalty=governor)
    values = [seed_value(r) for r in outcome.after if r.stage in (S.BLENDING, S.HOLDING)]
    contribution = sum(v for v in values if v is not None)
    budget = config.param_budget if config.param_budget > 0 else max(outcome.host_params, 1)
    rent = -min(config.max_rent, config.rent_weight * added_params(outcome.after) / budget)
    shock = 0.0
    before = {r.slot_id: r for r in outcome.before}
    for r in outcome.after:
        if r.slot_id in before and r.seed_id == before[r.slot_id].seed_id:
            delta = r.alpha - before[r.slot_id].alpha
            shock += delta * delta * r.metrics.seed_param_count / max(outcome.host_params, 1)
    alpha_shock = -min(MAX_ALPHA_SHOCK, config.alpha_shock_coef * shock)
    phi_after = 0.0 if outcome.rolled_back else potential(outcome.after)
    pbrs = config.pbrs_weight * (gamma * phi_after - potential(outcome.before))
    thrash = 0.0
    thrashing = (
        window is not None
        and window.op_count >= config.thrash_min_ops
        and window.reversal_rate > config.thrash_reversal_threshold
    )
    if config.thrash_penalty_enabled and outcome.op in INTERNAL_OPS and thrashing:
        assert window is not None
        thrash = -config.thrash_penalty * window.reversal_rate
    if outcome.op is LifecycleOp.FOSSILIZE and outcome.success:
        fossils = [r for r in outcome.after if r.stage is S.FOSSILIZED]
        helped = any((seed_value(r) or 0.0) > 0.0 for r in fossils)
        terminal += config.fossilize_bonus if helped else 0.0
    return _components(
        contribution=config.contribution_weight * contribution / config.contribution_scale,
        rent=rent,
        alpha_shock=alpha_shock,
        pbrs=pbrs,
        intervention_cost=-config.intervention_costs[outcome.op.name],
        thrash_penalty=thrash,
        terminal_bonus=terminal,
        governor_penalty=governor,
    )


def _reference(config: RewardConfig, outcome: StepOutcome) -> float:
    """What the terminal bonus measures the final accuracy from: 0, or the host-only accuracy."""
    if not config.terminal_over_host_only:
        return 0.0
    if outcome.host_only_accuracy is None:
        raise ValueError("RewardConfig.terminal_over_host_only needs the host-only accuracy of the episode's end")
    return outcome.host_only_accuracy


def _components(
    contribution: float = 0.0,
    rent: float = 0.0,
    alpha_shock: float = 0.0,
    pbrs: float = 0.0,
    intervention_cost: float = 0.0,
    thrash_penalty: float = 0.0,
    terminal_bonus: float = 0.0,
    governor_penalty: float = 0.0,
) -> RewardComponents:
    parts = (contribution, rent, alpha_shock, pbrs, intervention_cost, thrash_penalty, terminal_bonus, governor_penalty)
    if not all(math.isfinite(p) for p in parts):
        raise ValueError(f"non-finite reward component in {parts}")
    return RewardComponents(
        contribution=contribution,
        rent=rent,
        alpha_shock=alpha_shock,
        pbrs=pbrs,
        intervention_cost=intervention_cost,
        thrash_penalty=thrash_penalty,
        terminal_bonus=terminal_bonus,
        governor_penalty=governor_penalty,
        total=sum(parts),
    )
