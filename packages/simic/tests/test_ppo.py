"""GAE, the rollout buffer's shape checks, the normalizer, and a PPO update that learns."""

from __future__ import annotations

import pytest
import torch
from tamiyo_inputs import SLOT_CONFIG, SLOTS, cnn_mask_config, make_report, make_signals

from esper.leyline import ActionHead, LifecycleOp, SeedStage
from esper.simic import PpoConfig, PpoTrainer, RolloutBuffer, RunningMeanStd, gae
from esper.tamiyo import HEAD_INDEX, EnvView, FeatureExtractor, LstmPolicy, LstmPolicyConfig, compute_masks


def test_gae_matches_a_hand_computation() -> None:
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 0.4, 0.3]])
    dones = torch.tensor([[0.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, dones, torch.tensor([1.0]), gamma=0.9, lam=0.8)
    a2 = 2.0 + 0.9 * 1.0 - 0.3
    a1 = 0.0 - 0.4  # episode ends after step 1: no bootstrap, no carry
    a0 = (1.0 + 0.9 * 0.4 - 0.5) + 0.9 * 0.8 * a1
    assert torch.allclose(advantages, torch.tensor([[a0, a1, a2]]))
    assert torch.allclose(returns, advantages + values)


def test_normalizer_tracks_mean_and_std() -> None:
    norm = RunningMeanStd(3)
    data = torch.randn(2000, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([3.0, -1.0, 0.0])
    for chunk in data.split(500):
        norm.update(chunk)
    out = norm(data)
    assert torch.allclose(out.mean(0), torch.zeros(3), atol=0.05) and torch.allclose(
        out.std(0), torch.ones(3), atol=0.05
    )


def views() -> list[EnvView]:
    return [EnvView(make_signals(), {"r0c0": make_report("r0c0", SeedStage.HOLDING, level=2)}), EnvView(make_signals())]


def test_buffer_asserts_shapes() -> None:
    buffer = RolloutBuffer(n_envs=2, steps=1, n_slots=len(SLOTS))
    obs = FeatureExtractor(SLOT_CONFIG, 2).encode(views())
    masks = compute_masks(views(), cnn_mask_config())
    actions = torch.zeros(2, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"features has shape \(2, 3\)"):
        buffer.add(
            torch.zeros(2, 3),
            obs.blueprint_indices,
            masks,
            actions,
            torch.zeros(2, 8),
            torch.zeros(2),
            torch.zeros(2),
            torch.zeros(2),
        )
    buffer.add(
        obs.features,
        obs.blueprint_indices,
        masks,
        actions,
        torch.zeros(2, 8),
        torch.zeros(2),
        torch.zeros(2),
        torch.zeros(2),
    )
    with pytest.raises(IndexError, match="full"):
        buffer.add(
            obs.features,
            obs.blueprint_indices,
            masks,
            actions,
            torch.zeros(2, 8),
            torch.zeros(2),
            torch.zeros(2),
            torch.zeros(2),
        )


def test_ppo_learns_to_prefer_a_rewarded_op() -> None:
    """A contextual bandit over the real action space: +1 whenever the op is GROW_INTERNAL. PPO must raise its
    probability (the policy starts near uniform over the valid ops)."""
    torch.manual_seed(0)
    policy = LstmPolicy(len(SLOTS), LstmPolicyConfig(feature_dim=32, lstm_hidden_dim=32, head_hidden_dim=32))
    trainer = PpoTrainer(policy, PpoConfig(learning_rate=1e-2, update_epochs=4, minibatches=1, entropy_coef=0.0))
    env_views = views() * 4
    extractor = FeatureExtractor(SLOT_CONFIG, len(env_views))
    observation = extractor.encode(env_views)
    masks = compute_masks(env_views, cnn_mask_config())
    generator = torch.Generator().manual_seed(0)
    grow = int(LifecycleOp.GROW_INTERNAL)
    rates = []
    for _ in range(20):
        state0 = policy.initial_state(len(env_views))
        state, buffer = state0, RolloutBuffer(len(env_views), 8, len(SLOTS))
        chosen = 0.0
        for _ in range(8):
            out = policy.act(observation, masks, state, generator=generator)
            ops = out.actions[:, HEAD_INDEX[ActionHead.OP]]
            reward = (ops == grow).float()
            chosen += float(reward[0::2].mean())  # even envs hold a ladder that can grow
            buffer.add(
                observation.features,
                observation.blueprint_indices,
                masks,
                out.actions,
                out.log_probs,
                out.values,
                reward,
                torch.zeros(len(env_views)),
            )
            state = out.state
        rates.append(chosen / 8)
        stats = trainer.update(buffer, state0, torch.zeros(len(env_views)))
    # The probability floors cap the op at about 0.55 among six valid ops; it starts near 1/6.
    assert sum(rates[-5:]) / 5 > sum(rates[:2]) / 2 + 0.15, rates
    assert set(stats.op_q_values) == {op.name for op in LifecycleOp}
    assert set(stats.head_entropies) == set(ActionHead)
    assert stats.grad_norm >= 0 and 0.0 <= stats.clip_fraction <= 1.0
