"""Action masks: which head values are physically possible for each environment.

Only the impossible is masked, never timing. The op mask is optimistic (an op is valid if any enabled slot allows
it) and `slot_by_op[op]` says which slots the chosen op may target. Each LifecycleOp has its rule in OP_SLOT_RULES
(covered for every member by the consumer-coverage tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import torch

from esper.leyline import (
    FAILURE_STAGES,
    INTERNAL_OP_STAGES,
    LIVE_STAGES,
    TOPOLOGY_BLUEPRINTS,
    ActionHead,
    AlphaMode,
    AlphaTargetAction,
    BlueprintAction,
    GerminationStyle,
    LifecycleOp,
    SeedInternalKind,
    SeedStage,
    SeedStateReport,
    Topology,
    head_sizes,
    validate_slot_ids,
)
from esper.tamiyo.features import EnvView

OP = LifecycleOp
S = SeedStage


@dataclass(frozen=True, slots=True)
class MaskConfig:
    slot_ids: tuple[str, ...]
    topology: Topology
    blueprints: tuple[BlueprintAction, ...]  # germination targets allowed in this run
    max_seeds: int | None = None  # live + fossilized seeds per environment; None = unlimited
    min_prune_age: int = 5  # epochs since germination before PRUNE

    def __post_init__(self) -> None:
        validate_slot_ids(self.slot_ids)
        if not self.blueprints:
            raise ValueError("blueprints: at least one germination blueprint is required")
        wrong = [b for b in self.blueprints if b not in TOPOLOGY_BLUEPRINTS[self.topology] or b is BlueprintAction.NOOP]
        if wrong:
            allowed = sorted(
                b.name.lower() for b in TOPOLOGY_BLUEPRINTS[self.topology] if b is not BlueprintAction.NOOP
            )
            raise ValueError(
                f"blueprints: {[b.name.lower() for b in wrong]} cannot be germinated on {self.topology.value}; "
                f"allowed: {', '.join(allowed)}"
            )
        if self.max_seeds is not None and self.max_seeds < 1:
            raise ValueError(f"max_seeds must be >= 1 or None (unlimited), got {self.max_seeds}")


SlotRule = Callable[[SeedStateReport | None, MaskConfig], bool]


def _holding_still(r: SeedStateReport) -> bool:
    return r.alpha_mode is AlphaMode.HOLD


def _has_ladder(r: SeedStateReport) -> bool:
    return r.stage in INTERNAL_OP_STAGES and r.internal_kind is not SeedInternalKind.NONE


# Whether an op may target a slot, given the slot's report (None = empty slot).
OP_SLOT_RULES: Final[Mapping[LifecycleOp, SlotRule]] = MappingProxyType(
    {
        OP.WAIT: lambda r, c: True,
        OP.GERMINATE: lambda r, c: r is None,
        OP.SET_ALPHA_TARGET: lambda r, c: r is not None and r.stage in (S.BLENDING, S.HOLDING) and _holding_still(r),
        OP.PRUNE: lambda r, c: (
            r is not None and r.stage in LIVE_STAGES and r.metrics.epochs_total >= c.min_prune_age and _holding_still(r)
        ),
        OP.FOSSILIZE: lambda r, c: r is not None and r.stage is S.HOLDING,
        OP.ADVANCE: lambda r, c: r is not None and r.stage in (S.GERMINATED, S.TRAINING, S.BLENDING),
        OP.GROW_INTERNAL: lambda r, c: r is not None and _has_ladder(r) and r.internal_level < r.internal_max_level,
        OP.SHRINK_INTERNAL: lambda r, c: r is not None and _has_ladder(r) and r.internal_level > 0,
    }
)


def germination_allowed(reports: Sequence[SeedStateReport], config: MaskConfig) -> bool:
    """Environment-wide conditions on GERMINATE: below max_seeds, one seed developing at a time (none GERMINATED or
    TRAINING), and no slot still cooling down from a prune (closes germinate -> prune farming)."""
    stages = [r.stage for r in reports]
    seeds = sum(1 for s in stages if s in LIVE_STAGES or s is S.FOSSILIZED)
    if config.max_seeds is not None and seeds >= config.max_seeds:
        return False
    return not any(s in (S.GERMINATED, S.TRAINING) or s in FAILURE_STAGES for s in stages)


@dataclass(frozen=True, slots=True)
class ActionMasks:
    """Boolean masks with leading dimension [n_envs] (or [n_envs, steps] when stacked for PPO)."""

    op: torch.Tensor  # [..., NUM_OPS]
    slot_by_op: torch.Tensor  # [..., NUM_OPS, n_slots]
    heads: Mapping[ActionHead, torch.Tensor]  # every head except OP; SLOT is the enabled-slot mask

    def head(self, head: ActionHead) -> torch.Tensor:
        return self.op if head is ActionHead.OP else self.heads[head]

    def to(self, device: torch.device | str) -> ActionMasks:
        return ActionMasks(
            self.op.to(device), self.slot_by_op.to(device), {h: m.to(device) for h, m in self.heads.items()}
        )

    @staticmethod
    def stack(masks: Sequence[ActionMasks], dim: int = 1) -> ActionMasks:
        return ActionMasks(
            torch.stack([m.op for m in masks], dim),
            torch.stack([m.slot_by_op for m in masks], dim),
            {h: torch.stack([m.heads[h] for m in masks], dim) for h in masks[0].heads},
        )


def compute_masks(views: Sequence[EnvView], config: MaskConfig) -> ActionMasks:
    n_slots = len(config.slot_ids)
    sizes = head_sizes(n_slots)
    op_rows: list[list[bool]] = []
    slot_rows: list[list[list[bool]]] = []
    style_rows: list[list[bool]] = []
    target_rows: list[list[bool]] = []
    for view in views:
        reports = [view.reports[s] if s in view.reports else None for s in config.slot_ids]
        by_op = [[OP_SLOT_RULES[op](r, config) for r in reports] for op in LifecycleOp]
        if not germination_allowed([r for r in reports if r is not None], config):
            by_op[OP.GERMINATE] = [False] * n_slots
        slot_rows.append(by_op)
        ops = [any(row) for row in by_op]
        op_rows.append(ops)
        # style and alpha_target stay well-defined heads even when no op uses them.
        free = ops[OP.GERMINATE] or ops[OP.SET_ALPHA_TARGET]
        style_rows.append([free or s is GerminationStyle.SIGMOID_ADD for s in GerminationStyle])
        target_rows.append([free or t is AlphaTargetAction.FULL for t in AlphaTargetAction])
    n = len(views)
    blueprint_row = [b in config.blueprints for b in BlueprintAction]
    heads = {
        ActionHead.SLOT: torch.ones(n, n_slots, dtype=torch.bool),
        ActionHead.BLUEPRINT: torch.tensor([blueprint_row] * n, dtype=torch.bool),
        ActionHead.STYLE: torch.tensor(style_rows, dtype=torch.bool),
        ActionHead.TEMPO: torch.ones(n, sizes[ActionHead.TEMPO], dtype=torch.bool),
        ActionHead.ALPHA_TARGET: torch.tensor(target_rows, dtype=torch.bool),
        ActionHead.ALPHA_SPEED: torch.ones(n, sizes[ActionHead.ALPHA_SPEED], dtype=torch.bool),
        ActionHead.ALPHA_CURVE: torch.ones(n, sizes[ActionHead.ALPHA_CURVE], dtype=torch.bool),
    }
    return ActionMasks(torch.tensor(op_rows, dtype=torch.bool), torch.tensor(slot_rows, dtype=torch.bool), heads)
