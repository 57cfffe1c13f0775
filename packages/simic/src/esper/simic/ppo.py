"""PPO for the factored recurrent Tamiyo: rollout buffer, GAE, observation normalizer, and the clipped update.

One flow, CleanRL style: the buffer holds [n_envs, steps] sequences (its shapes come from leyline's derived dims and
are asserted on every add); the update replays whole sequences from the rollout's initial LSTM state
(full BPTT), with causal-masked per-head ratios, value clipping, entropy bonus and per-head entropy floors, a
detached Q(s, op) auxiliary head, and gradient clipping. Minibatches split environments, never time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from esper.leyline import NUM_BLUEPRINTS, ActionHead, LifecycleOp, head_sizes, obs_dim
from esper.simic.contracts.ppo_config import PpoConfig
from esper.tamiyo import HEAD_INDEX, HEADS, RELEVANCE, ActionMasks, Evaluation, LstmPolicy, LstmState


class RunningMeanStd(nn.Module):
    """Observation normalizer (Welford over batches); frozen during a rollout, updated before each PPO update."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, width: int, clip: float = 10.0) -> None:
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("var", torch.ones(width))
        self.register_buffer("count", torch.tensor(1e-4))

    def update(self, batch: torch.Tensor) -> None:
        batch = batch.reshape(-1, batch.shape[-1]).double()
        b_mean, b_var, b_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        mean, var, count = self.mean.double(), self.var.double(), self.count.double()
        delta, total = b_mean - mean, count + b_count
        new_mean = mean + delta * b_count / total
        m2 = var * count + b_var * b_count + delta**2 * count * b_count / total
        self.mean.copy_(new_mean.float())
        self.var.copy_((m2 / total).float())
        self.count.copy_(total.float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(self.var + 1e-8)
        return torch.clamp((features - self.mean) / std, -self.clip, self.clip)


@dataclass
class RolloutBuffer:
    n_envs: int
    steps: int
    n_slots: int
    features: torch.Tensor = field(init=False)
    blueprints: torch.Tensor = field(init=False)
    actions: torch.Tensor = field(init=False)
    log_probs: torch.Tensor = field(init=False)
    values: torch.Tensor = field(init=False)
    rewards: torch.Tensor = field(init=False)
    dones: torch.Tensor = field(init=False)
    masks: list[ActionMasks] = field(init=False)
    cursor: int = 0

    def __post_init__(self) -> None:
        n, t = self.n_envs, self.steps
        self.width = obs_dim(self.n_slots)
        self.features = torch.zeros(n, t, self.width)
        self.blueprints = torch.zeros(n, t, self.n_slots, dtype=torch.int64)
        self.actions = torch.zeros(n, t, len(HEADS), dtype=torch.int64)
        self.log_probs = torch.zeros(n, t, len(HEADS))
        self.values = torch.zeros(n, t)
        self.rewards = torch.zeros(n, t)
        self.dones = torch.zeros(n, t)
        self.masks = []

    def add(
        self,
        features: torch.Tensor,
        blueprints: torch.Tensor,
        masks: ActionMasks,
        actions: torch.Tensor,
        log_probs: torch.Tensor,
        values: torch.Tensor,
        rewards: torch.Tensor,
        dones: torch.Tensor,
    ) -> None:
        n, sizes = self.n_envs, head_sizes(self.n_slots)
        expected = {
            "features": (features, (n, self.width)),
            "blueprints": (blueprints, (n, self.n_slots)),
            "actions": (actions, (n, len(HEADS))),
            "log_probs": (log_probs, (n, len(HEADS))),
            "values": (values, (n,)),
            "rewards": (rewards, (n,)),
            "dones": (dones, (n,)),
            "op mask": (masks.op, (n, sizes[ActionHead.OP])),
            "slot_by_op": (masks.slot_by_op, (n, len(LifecycleOp), self.n_slots)),
        }
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"RolloutBuffer.add: {name} has shape {tuple(tensor.shape)}, expected {shape}")
        if int(blueprints.max()) > NUM_BLUEPRINTS:
            raise ValueError("RolloutBuffer.add: blueprint index beyond the embedding table")
        if self.cursor >= self.steps:
            raise IndexError(f"RolloutBuffer is full ({self.steps} steps)")
        t = self.cursor
        self.features[:, t], self.blueprints[:, t], self.actions[:, t] = features, blueprints, actions
        self.log_probs[:, t], self.values[:, t] = log_probs, values
        self.rewards[:, t], self.dones[:, t] = rewards, dones
        self.masks.append(masks)
        self.cursor += 1


def concat_buffers(buffers: list[RolloutBuffer]) -> RolloutBuffer:
    """Full buffers of the same shape but different environments, joined along the environment axis in order (how
    environment-parallel PPO assembles every rank's rollout)."""
    first = buffers[0]
    for other in buffers:
        if (other.steps, other.n_slots, other.cursor) != (first.steps, first.n_slots, first.steps):
            raise ValueError("concat_buffers needs full buffers with the same steps and slots")
    joined = RolloutBuffer(sum(b.n_envs for b in buffers), first.steps, first.n_slots)
    joined.features = torch.cat([b.features for b in buffers])
    joined.blueprints = torch.cat([b.blueprints for b in buffers])
    joined.actions = torch.cat([b.actions for b in buffers])
    joined.log_probs = torch.cat([b.log_probs for b in buffers])
    joined.values = torch.cat([b.values for b in buffers])
    joined.rewards = torch.cat([b.rewards for b in buffers])
    joined.dones = torch.cat([b.dones for b in buffers])
    joined.masks = [
        ActionMasks(
            torch.cat([b.masks[t].op for b in buffers]),
            torch.cat([b.masks[t].slot_by_op for b in buffers]),
            {h: torch.cat([b.masks[t].heads[h] for b in buffers]) for h in first.masks[t].heads},
        )
        for t in range(first.steps)
    ]
    joined.cursor = first.steps
    return joined


def gae(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over [n_envs, steps]; `dones[:, t]` ends the episode after step t."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0])
    next_value = last_value
    for t in reversed(range(rewards.shape[1])):
        live = 1.0 - dones[:, t]
        delta = rewards[:, t] + gamma * next_value * live - values[:, t]
        running = delta + gamma * lam * live * running
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, advantages + values


@dataclass(frozen=True, slots=True)
class UpdateStats:
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    explained_variance: float
    grad_norm: float
    head_entropies: dict[ActionHead, float]
    op_q_values: dict[str, float]  # by LifecycleOp name, as on the wire


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What every minibatch of one update reads: the rollout, its masks stacked over time, GAE, head relevance."""

    buffer: RolloutBuffer
    initial_state: LstmState
    masks: ActionMasks  # [n_envs, steps, ...]
    advantages: torch.Tensor  # [n_envs, steps]
    returns: torch.Tensor  # [n_envs, steps]
    relevant: torch.Tensor  # [n_envs, steps, heads]: 1.0 where the op taken uses the head
    floors: torch.Tensor  # [heads]: entropy floors in HEADS order


@dataclass(frozen=True, slots=True)
class _Losses:
    policy: torch.Tensor
    value: torch.Tensor
    head_entropy: torch.Tensor  # [heads], mean over the steps where each head is relevant
    total: torch.Tensor


def clipped_policy_loss(
    ratio: torch.Tensor, advantages: torch.Tensor, relevant: torch.Tensor, clip_ratio: float
) -> torch.Tensor:
    """The clipped surrogate per head ([b, t, heads] ratios), averaged where the head is relevant, summed over heads."""
    unclipped = ratio * advantages[..., None]
    clipped = torch.clamp(ratio, 1 - clip_ratio, 1 + clip_ratio) * advantages[..., None]
    per_head = -(torch.minimum(unclipped, clipped) * relevant).sum((0, 1)) / relevant.sum((0, 1)).clamp(min=1)
    return per_head.sum()


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, value_clip: float
) -> torch.Tensor:
    value_clipped = old_values + torch.clamp(values - old_values, -value_clip, value_clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (value_clipped - returns) ** 2).mean()


class PpoTrainer:
    def __init__(self, policy: LstmPolicy, config: PpoConfig, seed: int = 0) -> None:
        self.policy = policy
        self.config = config
        self.optimizer = torch.optim.Adam(policy.network.parameters(), lr=config.learning_rate, eps=1e-5)
        # Minibatch shuffles draw from their own generator, so every rank of a distributed run (same seed, same
        # gathered buffer) makes the same update whatever its environments did to the global RNG.
        self.generator = torch.Generator().manual_seed(seed)

    def update(self, buffer: RolloutBuffer, initial_state: LstmState, last_value: torch.Tensor) -> UpdateStats:
        prepared = self._prepare(buffer, initial_state, last_value)
        n_envs = buffer.n_envs
        per_batch = max(1, n_envs // self.config.minibatches)
        stats: list[dict[str, float]] = []
        for _ in range(self.config.update_epochs):
            order = torch.randperm(n_envs, generator=self.generator)
            for start in range(0, n_envs, per_batch):
                stats.append(self._minibatch(prepared, order[start : start + per_batch]))
        return self._summary(prepared, stats)

    def _prepare(self, buffer: RolloutBuffer, initial_state: LstmState, last_value: torch.Tensor) -> _Prepared:
        c = self.config
        if buffer.cursor != buffer.steps:
            raise ValueError(f"update needs a full buffer ({buffer.cursor}/{buffer.steps} steps)")
        advantages, returns = gae(buffer.rewards, buffer.values, buffer.dones, last_value, c.gamma, c.gae_lambda)
        ops = buffer.actions[..., HEAD_INDEX[ActionHead.OP]]
        floors = self.policy.entropy_floors
        return _Prepared(
            buffer=buffer,
            initial_state=initial_state,
            masks=ActionMasks.stack(buffer.masks, dim=1),
            advantages=advantages,
            returns=returns,
            relevant=RELEVANCE[ops].float(),
            floors=torch.tensor([floors[h] for h in HEADS]),
        )

    def _minibatch(self, p: _Prepared, idx: torch.Tensor) -> dict[str, float]:
        """One gradient step on the whole sequences of environments `idx`; returns its statistics."""
        buffer, masks = p.buffer, p.masks
        sub_masks = ActionMasks(masks.op[idx], masks.slot_by_op[idx], {h: m[idx] for h, m in masks.heads.items()})
        ev = self.policy.network.evaluate_actions(
            buffer.features[idx],
            buffer.blueprints[idx],
            sub_masks,
            buffer.actions[idx],
            (p.initial_state[0][:, idx], p.initial_state[1][:, idx]),
            self.policy.probability_floors,
        )
        losses = self._losses(p, idx, ev)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(losses.total)
        grad_norm = nn.utils.clip_grad_norm_(self.policy.network.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            log_ratio = (ev.log_probs - buffer.log_probs[idx]).sum(-1)
            joint = torch.exp(log_ratio)
            head_entropy = losses.head_entropy
            return {
                "policy_loss": float(losses.policy),
                "value_loss": float(losses.value),
                "entropy": float(head_entropy.mean()),
                "approx_kl": float(((joint - 1) - log_ratio).mean()),
                "clip_fraction": float(((joint - 1).abs() > self.config.clip_ratio).float().mean()),
                "grad_norm": float(grad_norm),
                **{f"entropy_{h.value}": float(head_entropy[HEAD_INDEX[h]]) for h in HEADS},
            }

    def _losses(self, p: _Prepared, idx: torch.Tensor, ev: Evaluation) -> _Losses:
        c = self.config
        adv = p.advantages[idx]
        adv = (adv - adv.mean()) / adv.std().clamp(min=0.1)
        rel = p.relevant[idx]
        ratio = torch.exp(ev.log_probs - p.buffer.log_probs[idx])  # [b, t, heads]; 1 where irrelevant
        policy_loss = clipped_policy_loss(ratio, adv, rel, c.clip_ratio)
        value_loss = clipped_value_loss(ev.values, p.buffer.values[idx], p.returns[idx], c.value_clip)
        head_entropy = (ev.entropies * rel).sum((0, 1)) / rel.sum((0, 1)).clamp(min=1)
        floor_penalty = (torch.clamp(p.floors - head_entropy, min=0.0) ** 2).sum()
        q_loss = 0.5 * ((ev.q_taken - p.returns[idx]) ** 2).mean()
        total = (
            policy_loss
            - c.entropy_coef * head_entropy.sum()
            + c.value_coef * value_loss
            + floor_penalty
            + 0.5 * c.value_coef * q_loss
        )
        return _Losses(policy_loss, value_loss, head_entropy, total)

    def _summary(self, p: _Prepared, stats: list[dict[str, float]]) -> UpdateStats:
        """Minibatch statistics averaged, plus the explained variance and Q(s, op) of the updated network."""
        net, buffer = self.policy.network, p.buffer
        with torch.no_grad():
            hidden, _ = net.trunk(buffer.features, buffer.blueprints, p.initial_state)
            values = net.value(hidden)
            q = net.q_values(hidden).mean((0, 1))
        variance = float(p.returns.var())
        explained = 1.0 - float((p.returns - values).var()) / variance if variance > 0 else 0.0

        def mean(key: str) -> float:
            return sum(s[key] for s in stats) / len(stats)

        return UpdateStats(
            policy_loss=mean("policy_loss"),
            value_loss=mean("value_loss"),
            entropy=mean("entropy"),
            approx_kl=mean("approx_kl"),
            clip_fraction=mean("clip_fraction"),
            explained_variance=explained,
            grad_norm=mean("grad_norm"),
            head_entropies={h: mean(f"entropy_{h.value}") for h in HEADS},
            op_q_values={op.name: float(q[op]) for op in LifecycleOp},
        )
