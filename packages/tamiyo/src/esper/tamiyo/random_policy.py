"""The random policy: uniform over valid actions (the experiment baseline)."""

from __future__ import annotations

from typing import Any

import torch

from esper.leyline import ActionHead, PolicyKind, head_sizes
from esper.tamiyo.features import Observation
from esper.tamiyo.masks import ActionMasks
from esper.tamiyo.policy import PolicyOutput, decisions_of, sample_actions

NO_FLOORS = {head: 0.0 for head in ActionHead}


class RandomPolicy:
    kind = PolicyKind.RANDOM

    def __init__(self, num_slots: int) -> None:
        self.sizes = head_sizes(num_slots)

    def initial_state(self, n_envs: int) -> None:
        return None

    def reset_env(self, state: Any, env: int) -> None:
        return None

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
        n = masks.op.shape[0]
        logits = {head: torch.zeros(n, size) for head, size in self.sizes.items()}
        actions, log_probs, explanations = sample_actions(logits, masks, NO_FLOORS, generator, deterministic, explain)
        return PolicyOutput(
            decisions=decisions_of(actions),
            actions=actions,
            log_probs=log_probs,
            values=None,
            state=None,
            explanations=explanations,
        )
