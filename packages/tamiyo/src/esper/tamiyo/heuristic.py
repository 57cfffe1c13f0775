"""The heuristic Tamiyo: a readable, rule-based baseline.

- No seed live and no slot cooling down from a prune (embargo): germinate once the host has stabilised and accuracy
  has plateaued, rotating through the allowed blueprints and skipping those whose recent prunes left a penalty.
  One seed at a time and the cooldown are this policy's rules, not the masks' (which block only the impossible).
- GERMINATED -> ADVANCE. TRAINING: advance after enough epochs (an incubating seed cannot change the host's output,
  so it is never pruned for accuracy). BLENDING: prune a seed whose measured contribution is negative enough;
  advance once alpha holds at full amplitude.
- HOLDING: prune a seed the host became dependent on without gaining (contribution > 0 but total improvement < 0);
  wait for a measured contribution; fossilize above the threshold, otherwise prune.
- Ladder seeds (BLENDING/HOLDING, contribution measured): after a few measured epochs at a level, shrink if the
  contribution per level is worse than one level down, grow to an unexplored level if the seed helps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import torch

from esper.leyline import (
    FAILURE_STAGES,
    LIVE_STAGES,
    ActionHead,
    BlueprintAction,
    LifecycleOp,
    PolicyKind,
    SeedInternalKind,
    SeedStage,
    SeedStateReport,
    blueprint_from_id,
    canonical_action,
)
from esper.tamiyo.contracts.heuristic_config import HeuristicConfig
from esper.tamiyo.features import EnvView, Observation
from esper.tamiyo.masks import ActionMasks
from esper.tamiyo.policy import Explanation, PolicyOutput, as_row

OP = LifecycleOp
S = SeedStage
NEVER = "never chosen by the heuristic"

# How the heuristic reaches each op (consumer coverage: every op has a path or an explicit, tested NEVER).
HEURISTIC_OP_PATHS: Final[Mapping[LifecycleOp, str]] = MappingProxyType(
    {
        OP.WAIT: "nothing to do this epoch",
        OP.GERMINATE: "no seed live or cooling down, host stabilised, accuracy plateaued",
        OP.SET_ALPHA_TARGET: f"{NEVER}: seeds always blend to full amplitude",
        OP.PRUNE: "a seed that hurts, a dependency without gain, or a holding seed below the fossilize threshold",
        OP.FOSSILIZE: "a holding seed whose measured contribution is above the threshold",
        OP.ADVANCE: "germinated, trained long enough, or blended to full amplitude",
        OP.GROW_INTERNAL: "a helpful ladder seed with an unexplored level above",
        OP.SHRINK_INTERNAL: "a ladder seed whose contribution per level fell below the level beneath",
    }
)


@dataclass(slots=True)
class HeuristicMemory:
    """Per-environment memory: blueprint penalties, the rotation position, and ladder measurements."""

    penalties: dict[BlueprintAction, float] = field(default_factory=dict)
    rotation: int = 0
    # seed id -> level -> contributions measured at that level
    ladder: dict[str, dict[int, list[float]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Choice:
    op: LifecycleOp
    slot: int
    reason: str
    blueprint: BlueprintAction = BlueprintAction.NOOP


Pick = Callable[[LifecycleOp, str], Choice | None]  # the op on this seed's slot with a reason, if the masks allow it


class HeuristicPolicy:
    kind = PolicyKind.HEURISTIC

    def __init__(self, slot_ids: tuple[str, ...], config: HeuristicConfig | None = None) -> None:
        self.slot_ids = slot_ids
        self.config = config if config is not None else HeuristicConfig()
        self.rotation = tuple(blueprint_from_id(b) for b in self.config.blueprint_rotation)

    def initial_state(self, n_envs: int) -> list[HeuristicMemory]:
        return [HeuristicMemory() for _ in range(n_envs)]

    def reset_env(self, state: Any, env: int) -> list[HeuristicMemory]:
        memories: list[HeuristicMemory] = list(state)
        memories[env] = HeuristicMemory()
        return memories

    def act(
        self,
        observation: Observation,
        masks: ActionMasks,
        state: Any,
        *,
        generator: torch.Generator | None = None,
        explain: bool = False,
        deterministic: bool = False,
    ) -> PolicyOutput:
        memories: list[HeuristicMemory] = state
        decisions = []
        explanations = []
        for env, view in enumerate(observation.views):
            memory = memories[env]
            for blueprint in list(memory.penalties):
                memory.penalties[blueprint] *= self.config.penalty_decay
                if memory.penalties[blueprint] < 0.1:
                    del memory.penalties[blueprint]
            choice = self._decide(view, masks, env, memory)
            blueprint = choice.blueprint if choice.op is OP.GERMINATE else BlueprintAction.NOOP
            decisions.append(canonical_action(choice.op, choice.slot, blueprint))
            if explain:
                valid = tuple(op for op in LifecycleOp if bool(masks.op[env, op]))
                explanations.append(Explanation(valid, None, None, choice.reason))
        actions = torch.tensor([as_row(d) for d in decisions], dtype=torch.int64)
        return PolicyOutput(tuple(decisions), actions, None, None, memories, tuple(explanations) if explain else None)

    # ------------------------------------------------------------------ rules
    def _allowed(self, masks: ActionMasks, env: int, op: LifecycleOp, slot: int) -> bool:
        return bool(masks.slot_by_op[env, op, slot])

    def _decide(self, view: EnvView, masks: ActionMasks, env: int, memory: HeuristicMemory) -> Choice:
        c = self.config
        busy = False  # a seed is live, or a slot cools down from a prune
        for slot, slot_id in enumerate(self.slot_ids):
            if slot_id not in view.reports:
                continue
            report = view.reports[slot_id]
            busy = busy or report.stage in FAILURE_STAGES
            if report.stage in LIVE_STAGES:
                busy = True
                choice = self._seed_choice(report, slot, masks, env, memory)
                if choice is not None:
                    if choice.op is OP.PRUNE:
                        penalty = memory.penalties[report.blueprint] if report.blueprint in memory.penalties else 0.0
                        memory.penalties[report.blueprint] = penalty + c.prune_penalty
                    return choice
        if not busy:
            choice = self._germination(view, masks, env, memory)
            if choice is not None:
                return choice
        return Choice(OP.WAIT, 0, HEURISTIC_OP_PATHS[OP.WAIT])

    def _germination(self, view: EnvView, masks: ActionMasks, env: int, memory: HeuristicMemory) -> Choice | None:
        c, metrics = self.config, view.signals.metrics
        if not bool(masks.op[env, OP.GERMINATE]):
            return None
        if metrics.epoch < c.min_epoch_to_germinate or not metrics.host_stabilized:
            return None
        if metrics.plateau_epochs < c.plateau_epochs_to_germinate:
            return None
        allowed = [b for b in BlueprintAction if bool(masks.heads[ActionHead.BLUEPRINT][env, b])]
        order = [b for b in self.rotation if b in allowed] + [b for b in allowed if b not in self.rotation]
        penalty = {b: memory.penalties[b] if b in memory.penalties else 0.0 for b in order}
        fresh = [b for b in order if penalty[b] < c.penalty_threshold]
        if fresh:
            blueprint = fresh[memory.rotation % len(fresh)]
            memory.rotation += 1
        else:
            blueprint = min(order, key=lambda b: penalty[b])
        slot = int(masks.slot_by_op[env, OP.GERMINATE].nonzero()[0])
        return Choice(OP.GERMINATE, slot, HEURISTIC_OP_PATHS[OP.GERMINATE], blueprint)

    def _seed_choice(
        self, report: SeedStateReport, slot: int, masks: ActionMasks, env: int, memory: HeuristicMemory
    ) -> Choice | None:
        c, m = self.config, report.metrics

        def pick(op: LifecycleOp, reason: str) -> Choice | None:
            return Choice(op, slot, reason) if self._allowed(masks, env, op, slot) else None

        contribution = m.counterfactual_contribution
        if report.stage is S.GERMINATED:
            return pick(OP.ADVANCE, "germinated: start training")
        if report.stage is S.TRAINING:
            if m.epochs_in_current_stage >= c.advance_after_epochs:
                return pick(OP.ADVANCE, "trained long enough: start blending")
            return None
        ladder = self._ladder_choice(report, slot, masks, env, memory)
        if report.stage is S.BLENDING:
            return self._blending_choice(report, ladder, pick)
        # HOLDING
        if contribution is not None and contribution > c.ransomware_contribution and m.total_improvement < 0:
            return pick(OP.PRUNE, "host depends on the seed without gaining accuracy")
        if contribution is None:
            return None
        if ladder is not None:
            return ladder  # grow, shrink, or wait until the current level has been measured
        if contribution > c.fossilize_above_contribution:
            return pick(OP.FOSSILIZE, f"contribution {contribution:.2f} above threshold")
        return pick(OP.PRUNE, f"contribution {contribution:.2f} at or below threshold")

    def _blending_choice(self, report: SeedStateReport, ladder: Choice | None, pick: Pick) -> Choice | None:
        """Prune a seed that hurts, let a ladder grow or shrink, and advance once alpha holds at full amplitude."""
        c, m = self.config, report.metrics
        contribution = m.counterfactual_contribution
        hurts = contribution is not None and contribution < c.prune_below_contribution
        if hurts and m.epochs_in_current_stage >= c.prune_after_epochs:
            return pick(OP.PRUNE, f"blending seed hurts: contribution {contribution:.2f}")
        if ladder is not None and ladder.op is not OP.WAIT:
            return ladder
        if report.alpha >= 1.0 and report.alpha_target >= 1.0:
            return pick(OP.ADVANCE, "blended to full amplitude: hold")
        return None

    def _ladder_choice(
        self, report: SeedStateReport, slot: int, masks: ActionMasks, env: int, memory: HeuristicMemory
    ) -> Choice | None:
        """GROW/SHRINK, WAIT while the current level is still being measured, or None when the ladder is settled
        (or the seed has no ladder / no measurement yet)."""
        m = report.metrics
        if report.internal_kind is SeedInternalKind.NONE or m.counterfactual_contribution is None:
            return None
        levels = memory.ladder.setdefault(report.seed_id, {})
        level = report.internal_level
        if m.epochs_since_counterfactual == 0:
            levels.setdefault(level, []).append(m.counterfactual_contribution)
        if level not in levels or len(levels[level]) < self.config.ladder_dwell_epochs:
            return Choice(OP.WAIT, 0, "measuring the ladder at its current level")

        def per_level(at: int) -> float:
            return sum(levels[at]) / len(levels[at]) / max(at, 1)

        below, above = level - 1, level + 1
        worse_than_below = below >= 1 and below in levels and per_level(level) < per_level(below)
        if worse_than_below and self._allowed(masks, env, OP.SHRINK_INTERNAL, slot):
            return Choice(OP.SHRINK_INTERNAL, slot, HEURISTIC_OP_PATHS[OP.SHRINK_INTERNAL])
        helps = sum(levels[level]) / len(levels[level]) > 0.0
        unexplored_above = above <= report.internal_max_level and above not in levels
        if helps and unexplored_above and self._allowed(masks, env, OP.GROW_INTERNAL, slot):
            return Choice(OP.GROW_INTERNAL, slot, HEURISTIC_OP_PATHS[OP.GROW_INTERNAL])
        return None
