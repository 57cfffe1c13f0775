"""The learned Tamiyo: a factored recurrent actor-critic.

features (+ per-slot blueprint embeddings) -> feature net -> LSTM -> one head per ActionHead, a V(s) critic, and a
Q(s, op) head over every op that reads the LSTM output detached (telemetry: it cannot reshape the trunk).
`act` samples one step for a batch of environments; `evaluate_actions` replays stored sequences for PPO with the
same masks, floors and canonicalisation, so rollout and update agree on every log-prob.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from esper.leyline import NUM_BLUEPRINTS, NUM_OPS, ActionHead, PolicyKind, head_sizes, obs_dim
from esper.tamiyo.contracts.lstm_policy_config import LstmPolicyConfig
from esper.tamiyo.features import Observation
from esper.tamiyo.masks import ActionMasks
from esper.tamiyo.policy import (
    HEAD_INDEX,
    HEADS,
    OP_COLUMN,
    RELEVANCE,
    PolicyOutput,
    decisions_of,
    floored_probs,
    head_mask,
    normalized_entropy,
    sample_actions,
)

LstmState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [1, n_envs, hidden]


def _floors(config: LstmPolicyConfig, name: str) -> dict[ActionHead, float]:
    table = config.probability_floors if name == "probability" else config.entropy_floors
    missing = [h.value for h in ActionHead if h not in table]
    if missing:
        raise ValueError(f"LstmPolicyConfig.{name}_floors: missing heads {missing}; every ActionHead needs a floor")
    return {h: float(table[h]) for h in ActionHead}


def _mlp(inputs: int, hidden: int, outputs: int, gain: float) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=2**0.5)
            nn.init.zeros_(layer.bias)
    last = net[-1]
    assert isinstance(last, nn.Linear)
    nn.init.orthogonal_(last.weight, gain=gain)
    return net


@dataclass(frozen=True, slots=True)
class Evaluation:
    log_probs: torch.Tensor  # [B, T, NUM_HEADS], 0 where the taken op does not use the head
    entropies: torch.Tensor  # [B, T, NUM_HEADS], normalised, 0 where irrelevant
    values: torch.Tensor  # [B, T]
    q_taken: torch.Tensor  # [B, T] Q(s, op taken), for the auxiliary loss


class FactoredActorCritic(nn.Module):
    def __init__(self, num_slots: int, config: LstmPolicyConfig) -> None:
        super().__init__()
        self.num_slots = num_slots
        self.config = config
        self.sizes = head_sizes(num_slots)
        embed = config.blueprint_embed_dim
        self.blueprint_embedding = nn.Embedding(NUM_BLUEPRINTS + 1, embed)
        nn.init.normal_(self.blueprint_embedding.weight, std=0.02)
        self.input_dim = obs_dim(num_slots) + num_slots * embed
        self.feature_net = nn.Sequential(
            nn.Linear(self.input_dim, config.feature_dim), nn.LayerNorm(config.feature_dim), nn.ReLU()
        )
        self.lstm = nn.LSTM(config.feature_dim, config.lstm_hidden_dim, batch_first=True)
        self.lstm_norm = nn.LayerNorm(config.lstm_hidden_dim)
        hidden, head_hidden = config.lstm_hidden_dim, config.head_hidden_dim
        self.heads = nn.ModuleDict({h.value: _mlp(hidden, head_hidden, self.sizes[h], gain=0.01) for h in HEADS})
        self.value_head = _mlp(hidden, head_hidden, 1, gain=0.1)
        self.q_head = _mlp(hidden + NUM_OPS, head_hidden, 1, gain=0.1)

    def initial_state(self, n_envs: int, device: torch.device | str = "cpu") -> LstmState:
        zeros = torch.zeros(1, n_envs, self.config.lstm_hidden_dim, device=device)
        return zeros, zeros.clone()

    def trunk(
        self, features: torch.Tensor, blueprints: torch.Tensor, state: LstmState
    ) -> tuple[torch.Tensor, LstmState]:
        """features [B, T, obs], blueprints [B, T, S] -> LSTM output [B, T, hidden]."""
        if features.shape[-1] != obs_dim(self.num_slots):
            raise ValueError(f"features width {features.shape[-1]} != obs_dim({self.num_slots})")
        embedded = self.blueprint_embedding(blueprints).flatten(start_dim=-2)
        x = self.feature_net(torch.cat([features, embedded], dim=-1))
        out, (h, c) = self.lstm(x, state)
        return self.lstm_norm(out), (h, c)

    def logits(self, hidden: torch.Tensor) -> dict[ActionHead, torch.Tensor]:
        return {h: self.heads[h.value](hidden) for h in HEADS}

    def value(self, hidden: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.value_head(hidden).squeeze(-1)
        return out

    def q_values(self, hidden: torch.Tensor) -> torch.Tensor:
        """Q(s, op) for every op: [..., NUM_OPS], from the detached trunk."""
        h = hidden.detach().unsqueeze(-2).expand(*hidden.shape[:-1], NUM_OPS, hidden.shape[-1])
        ops = torch.eye(NUM_OPS, device=hidden.device).expand(*hidden.shape[:-1], NUM_OPS, NUM_OPS)
        out: torch.Tensor = self.q_head(torch.cat([h, ops], dim=-1)).squeeze(-1)
        return out

    def evaluate_actions(
        self,
        features: torch.Tensor,
        blueprints: torch.Tensor,
        masks: ActionMasks,
        actions: torch.Tensor,
        state: LstmState,
        floors: dict[ActionHead, float],
    ) -> Evaluation:
        """Replay [B, T] steps from `state`; masks carry leading dims [B, T]."""
        hidden, _ = self.trunk(features, blueprints, state)
        logits = self.logits(hidden)
        ops = actions[..., OP_COLUMN]
        relevant = RELEVANCE.to(actions.device)[ops]  # [B, T, NUM_HEADS]
        log_probs, entropies = [], []
        for head in HEADS:
            mask = head_mask(masks, head, ops) if head is not ActionHead.OP else masks.op
            use = relevant[..., HEAD_INDEX[head]]
            safe = torch.where(use[..., None], mask, torch.ones_like(mask))
            probs = floored_probs(logits[head], safe, floors[head])
            taken = probs.gather(-1, actions[..., HEAD_INDEX[head], None]).squeeze(-1)
            log_probs.append(torch.where(use, torch.log(taken.clamp(min=1e-12)), torch.zeros_like(taken)))
            entropies.append(torch.where(use, normalized_entropy(probs, safe), torch.zeros_like(taken)))
        q = self.q_values(hidden).gather(-1, ops[..., None]).squeeze(-1)
        return Evaluation(torch.stack(log_probs, -1), torch.stack(entropies, -1), self.value(hidden), q)


class LstmPolicy:
    kind = PolicyKind.PPO

    def __init__(self, num_slots: int, config: LstmPolicyConfig, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.network = FactoredActorCritic(num_slots, config).to(self.device)
        self.probability_floors = _floors(config, "probability")
        self.entropy_floors = _floors(config, "entropy")

    def initial_state(self, n_envs: int) -> LstmState:
        return self.network.initial_state(n_envs, self.device)

    def reset_env(self, state: Any, env: int) -> LstmState:
        h, c = state
        h, c = h.clone(), c.clone()
        h[:, env] = 0.0
        c[:, env] = 0.0
        return h, c

    @torch.no_grad()
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
        obs = observation.to(self.device)  # one copy of the batch to the policy device
        hidden, new_state = self.network.trunk(obs.features[:, None], obs.blueprint_indices[:, None], state)
        hidden = hidden[:, 0]
        logits = {h: t.cpu() for h, t in self.network.logits(hidden).items()}
        values = self.network.value(hidden).cpu()
        actions, log_probs, explanations = sample_actions(
            logits, masks, self.probability_floors, generator, deterministic, explain
        )
        return PolicyOutput(decisions_of(actions), actions, log_probs, values, new_state, explanations)
