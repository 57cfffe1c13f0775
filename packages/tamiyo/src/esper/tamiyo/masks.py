"""Action masks: which head values are structurally possible for each environment.

Only the impossible is masked, never a preference: `slot_by_op[op, slot]` is leyline's structural rule set
(`esper.leyline.refusal`, the same rules the environment applies before it acts), and the op mask is true where any
slot allows the op. What the rule set leaves open can still be refused by a seed gate on a measurement (exploding
gradients, poor gradient health): a gate outcome, not an invalid action.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from esper.leyline import (
    TOPOLOGY_BLUEPRINTS,
    ActionHead,
    ActionLimits,
    AlphaTargetAction,
    BlueprintAction,
    GerminationStyle,
    LifecycleOp,
    Topology,
    head_sizes,
    refusal,
    validate_slot_ids,
)
from esper.tamiyo.features import EnvView

OP = LifecycleOp


@dataclass(frozen=True, slots=True)
class MaskConfig:
    slot_ids: tuple[str, ...]
    topology: Topology
    blueprints: tuple[BlueprintAction, ...]  # germination targets allowed in this run
    limits: ActionLimits = ActionLimits()  # must equal the environments' (the episode loop checks)

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
        occupied = [r for r in reports if r is not None]
        by_op = [[refusal(op, r, occupied, config.limits) is None for r in reports] for op in LifecycleOp]
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
