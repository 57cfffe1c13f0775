"""The policy protocol, its output, and the masked sampling every stochastic policy shares.

Actions are an int64 tensor [n_envs, len(ActionHead)] with columns in ActionHead order. The op is sampled first,
then the slot under `slot_by_op[op]`, then the other heads; heads the chosen op does not use (leyline's causal
relevance) take CANONICAL_HEAD_VALUES and contribute log-prob 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from esper.leyline import (
    CANONICAL_HEAD_VALUES,
    ActionHead,
    AlphaCurveAction,
    AlphaSpeedAction,
    AlphaTargetAction,
    BlueprintAction,
    FactoredAction,
    GerminationStyle,
    LifecycleOp,
    PolicyKind,
    TempoAction,
    relevance_matrix,
)
from esper.tamiyo.features import Observation
from esper.tamiyo.masks import ActionMasks

HEADS = tuple(ActionHead)
HEAD_INDEX = {head: i for i, head in enumerate(HEADS)}
OP_COLUMN = HEAD_INDEX[ActionHead.OP]
SLOT_COLUMN = HEAD_INDEX[ActionHead.SLOT]
# Heads sampled after op and slot, in ActionHead order.
OTHER_HEADS = tuple(h for h in HEADS if h not in (ActionHead.OP, ActionHead.SLOT))
RELEVANCE = torch.tensor(relevance_matrix(), dtype=torch.bool)  # [NUM_OPS, NUM_HEADS]
CANONICAL = torch.tensor([CANONICAL_HEAD_VALUES[h] for h in HEADS], dtype=torch.int64)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an environment got its action: the valid ops and, for stochastic policies, the probabilities."""

    valid_ops: tuple[LifecycleOp, ...]
    op_probabilities: Mapping[str, float] | None
    head_probabilities: Mapping[ActionHead, tuple[float, ...]] | None  # heads the chosen op uses
    reason: str | None  # the heuristic's rule, in words


@dataclass(frozen=True, slots=True)
class PolicyOutput:
    decisions: tuple[FactoredAction, ...]  # each environment's action: the one form it keeps down to the slot
    actions: torch.Tensor  # [n, NUM_HEADS] int64 (CPU): the same actions as head indices, for PPO's buffer
    log_probs: torch.Tensor | None  # [n, NUM_HEADS]; 0 for canonicalised heads
    values: torch.Tensor | None  # [n] V(s)
    state: Any
    explanations: tuple[Explanation, ...] | None = None


@runtime_checkable
class Policy(Protocol):
    kind: PolicyKind

    def initial_state(self, n_envs: int) -> Any: ...

    def reset_env(self, state: Any, env: int) -> Any: ...

    def act(
        self,
        observation: Observation,
        masks: ActionMasks,
        state: Any,
        *,
        generator: torch.Generator | None = None,
        explain: bool = False,
        deterministic: bool = False,
    ) -> PolicyOutput: ...


def as_row(action: FactoredAction) -> list[int]:
    """A FactoredAction as head indices in ActionHead order (a row of PolicyOutput.actions)."""
    by_head = {
        ActionHead.OP: action.op,
        ActionHead.SLOT: action.slot,
        ActionHead.BLUEPRINT: action.blueprint,
        ActionHead.STYLE: action.style,
        ActionHead.TEMPO: action.tempo,
        ActionHead.ALPHA_TARGET: action.alpha_target,
        ActionHead.ALPHA_SPEED: action.alpha_speed,
        ActionHead.ALPHA_CURVE: action.alpha_curve,
    }
    return [int(by_head[head]) for head in HEADS]


def decisions_of(actions: torch.Tensor) -> tuple[FactoredAction, ...]:
    """Sampled head indices [n, NUM_HEADS] as each environment's FactoredAction (sampling's output, read once)."""
    return tuple(to_factored(row) for row in actions)


def to_factored(row: torch.Tensor) -> FactoredAction:
    values = [int(v) for v in row.tolist()]
    by_head = dict(zip(HEADS, values, strict=True))
    return FactoredAction(
        op=LifecycleOp(by_head[ActionHead.OP]),
        slot=by_head[ActionHead.SLOT],
        blueprint=BlueprintAction(by_head[ActionHead.BLUEPRINT]),
        style=GerminationStyle(by_head[ActionHead.STYLE]),
        tempo=TempoAction(by_head[ActionHead.TEMPO]),
        alpha_target=AlphaTargetAction(by_head[ActionHead.ALPHA_TARGET]),
        alpha_speed=AlphaSpeedAction(by_head[ActionHead.ALPHA_SPEED]),
        alpha_curve=AlphaCurveAction(by_head[ActionHead.ALPHA_CURVE]),
    )


def head_mask(masks: ActionMasks, head: ActionHead, ops: torch.Tensor) -> torch.Tensor:
    """The mask a head is sampled under once the op is known (slot: slot_by_op[op])."""
    if head is ActionHead.SLOT:
        index = ops.view(*ops.shape, 1, 1).expand(*ops.shape, 1, masks.slot_by_op.shape[-1])
        return masks.slot_by_op.gather(-2, index).squeeze(-2)
    return masks.head(head)


def floored_probs(logits: torch.Tensor, mask: torch.Tensor, floor: float) -> torch.Tensor:
    """Softmax over valid entries (FP32), each raised to at least m = min(floor, 0.99 / n_valid), renormalised.
    The renormalisation divides by at most 1 + n_valid * m, so every valid entry ends at least m / (1 + n_valid * m):
    the floor is a floor before renormalising, which leaves a preferred op room to dominate (about 0.55 among six
    valid ops at the default op floor of 0.15, where an exact floor would cap it at 0.25)."""
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("a head has no valid action in some environment (masks must never be empty)")
    masked = logits.float().masked_fill(~mask, float("-inf"))
    probs = torch.softmax(masked, dim=-1)
    if floor > 0.0:
        valid = mask.sum(dim=-1, keepdim=True).clamp(min=1).float()
        minimum = torch.clamp(0.99 / valid, max=floor)
        probs = torch.where(mask, torch.maximum(probs, minimum), torch.zeros_like(probs))
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample(probs: torch.Tensor, generator: torch.Generator | None, deterministic: bool) -> torch.Tensor:
    if deterministic:
        return probs.argmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


def normalized_entropy(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Entropy / ln(n_valid); 0 when a single action is valid."""
    logp = torch.log(probs.clamp(min=1e-12))
    entropy = -(probs * logp).sum(dim=-1)
    valid = mask.sum(dim=-1).float()
    return torch.where(valid > 1, entropy / torch.log(valid.clamp(min=2)), torch.zeros_like(entropy))


def sample_actions(
    logits: Mapping[ActionHead, torch.Tensor],
    masks: ActionMasks,
    floors: Mapping[ActionHead, float],
    generator: torch.Generator | None,
    deterministic: bool,
    explain: bool,
) -> tuple[torch.Tensor, torch.Tensor, tuple[Explanation, ...] | None]:
    """Sample every head in causal order from per-head logits [n, size] (zeros give the uniform policy).
    Returns actions, log-probs (0 where canonicalised) and, if asked, explanations."""
    n = masks.op.shape[0]
    actions = CANONICAL.repeat(n, 1)
    log_probs = torch.zeros(n, len(HEADS))
    op_probs = floored_probs(logits[ActionHead.OP], masks.op, floors[ActionHead.OP])
    ops = sample(op_probs, generator, deterministic)
    actions[:, OP_COLUMN] = ops
    log_probs[:, OP_COLUMN] = torch.log(op_probs.gather(-1, ops[:, None]).squeeze(-1))
    relevant = RELEVANCE[ops]  # [n, NUM_HEADS]
    head_probs: dict[ActionHead, torch.Tensor] = {ActionHead.OP: op_probs}
    for head in (ActionHead.SLOT, *OTHER_HEADS):
        mask = head_mask(masks, head, ops)
        use = relevant[:, HEAD_INDEX[head]]
        # Rows whose op does not use this head may have an all-false mask (e.g. slot under an impossible op):
        # give them a dummy valid entry; their value is canonical and their log-prob 0 anyway.
        safe_mask = torch.where(use[:, None], mask, torch.ones_like(mask))
        probs = floored_probs(logits[head], safe_mask, floors[head])
        picked = sample(probs, generator, deterministic)
        column = HEAD_INDEX[head]
        actions[:, column] = torch.where(use, picked, actions[:, column])
        chosen = torch.log(probs.gather(-1, picked[:, None]).squeeze(-1))
        log_probs[:, column] = torch.where(use, chosen, torch.zeros_like(chosen))
        head_probs[head] = probs
    if not explain:
        return actions, log_probs, None
    explanations = []
    for i in range(n):
        valid = tuple(op for op in LifecycleOp if bool(masks.op[i, op]))
        op_row = op_probs[i].tolist()
        chosen_op = LifecycleOp(int(ops[i]))
        used = [h for h in HEADS if bool(RELEVANCE[chosen_op, HEAD_INDEX[h]]) and h is not ActionHead.OP]
        explanations.append(
            Explanation(
                valid_ops=valid,
                op_probabilities={op.name: float(op_row[op]) for op in LifecycleOp},
                head_probabilities={h: tuple(float(p) for p in head_probs[h][i].tolist()) for h in used},
                reason=None,
            )
        )
    return actions, log_probs, tuple(explanations)
