"""Policies: sampled actions satisfy the masks, canonical heads have log-prob 0, determinism, PPO replay agreement,
explanations, and the heuristic's decision paths."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tamiyo_inputs import SLOT_CONFIG, SLOTS, cnn_mask_config, env_views, make_report, make_signals

from esper.leyline import ActionHead, BlueprintAction, LifecycleOp, SeedStage, assert_covers
from esper.tamiyo import (
    CANONICAL,
    HEAD_INDEX,
    HEADS,
    HEURISTIC_OP_PATHS,
    NEVER,
    RELEVANCE,
    ActionMasks,
    EnvView,
    FeatureExtractor,
    HeuristicPolicy,
    LstmPolicy,
    LstmPolicyConfig,
    RandomPolicy,
    compute_masks,
    floored_probs,
    head_mask,
    to_factored,
)

OP = LifecycleOp
SMALL = LstmPolicyConfig(feature_dim=32, lstm_hidden_dim=32, head_hidden_dim=16)


def policies() -> dict[str, Any]:
    torch.manual_seed(0)
    return {
        "random": RandomPolicy(len(SLOTS)),
        "lstm": LstmPolicy(len(SLOTS), SMALL),
        "heuristic": HeuristicPolicy(SLOTS),
    }


POLICIES = policies()


def assert_valid(actions: torch.Tensor, masks: ActionMasks) -> None:
    ops = actions[:, HEAD_INDEX[ActionHead.OP]]
    assert masks.op.gather(1, ops[:, None]).all()
    for head in HEADS:
        column = HEAD_INDEX[head]
        relevant = RELEVANCE[ops, column]
        mask = head_mask(masks, head, ops)
        picked = mask.gather(1, actions[:, column : column + 1]).squeeze(1)
        assert (picked | ~relevant).all(), f"{head} outside its mask"
        assert (actions[:, column][~relevant] == CANONICAL[column]).all(), f"{head} not canonical"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(env_views(), min_size=1, max_size=5), st.sampled_from(sorted(POLICIES)), st.integers(0, 2**16))
def test_actions_satisfy_masks_and_canonical_heads_have_zero_log_prob(
    views: list[EnvView], kind: str, seed: int
) -> None:
    policy = POLICIES[kind]
    observation = FeatureExtractor(SLOT_CONFIG, len(views)).encode(views)
    masks = compute_masks(views, cnn_mask_config())
    out = policy.act(
        observation, masks, policy.initial_state(len(views)), generator=torch.Generator().manual_seed(seed)
    )
    assert out.actions.shape == (len(views), len(HEADS))
    assert_valid(out.actions, masks)
    for row in out.actions:
        to_factored(row)  # every action is a valid FactoredAction contract
    if out.log_probs is not None:
        relevant = RELEVANCE[out.actions[:, HEAD_INDEX[ActionHead.OP]]]
        assert (out.log_probs[~relevant] == 0).all()
        assert (out.log_probs[relevant] <= 0).all() and torch.isfinite(out.log_probs).all()


@pytest.mark.parametrize("kind", ["random", "lstm"])
def test_deterministic_under_a_fixed_seed(kind: str) -> None:
    views = [EnvView(make_signals(), {"r0c1": make_report("r0c1", SeedStage.BLENDING)}), EnvView(make_signals())] * 3
    observation = FeatureExtractor(SLOT_CONFIG, len(views)).encode(views)
    masks = compute_masks(views, cnn_mask_config())
    runs = []
    for _ in range(2):
        policy = policies()[kind]
        out = policy.act(
            observation, masks, policy.initial_state(len(views)), generator=torch.Generator().manual_seed(7)
        )
        runs.append(out.actions)
    assert torch.equal(runs[0], runs[1])
    other = policies()[kind].act(
        observation,
        masks,
        None if kind == "random" else POLICIES[kind].initial_state(6),
        generator=torch.Generator().manual_seed(8),
    )
    assert not torch.equal(other.actions, runs[0]) or kind == "lstm"


def test_lstm_replay_matches_rollout_log_probs() -> None:
    torch.manual_seed(3)
    policy = LstmPolicy(len(SLOTS), SMALL)
    extractor = FeatureExtractor(SLOT_CONFIG, 2)
    generator = torch.Generator().manual_seed(1)
    state0 = policy.initial_state(2)
    state = state0
    steps: list[tuple[Any, ActionMasks, Any]] = []
    for t in range(4):
        views = [
            EnvView(make_signals(epoch=t), {"r0c0": make_report("r0c0", SeedStage.HOLDING, level=t % 4)}),
            EnvView(make_signals(epoch=t)),
        ]
        observation = extractor.encode(views)
        masks = compute_masks(views, cnn_mask_config())
        out = policy.act(observation, masks, state, generator=generator)
        steps.append((observation, masks, out))
        state = out.state
    features = torch.stack([s[0].features for s in steps], 1)
    blueprints = torch.stack([s[0].blueprint_indices for s in steps], 1)
    masks = ActionMasks.stack([s[1] for s in steps])
    actions = torch.stack([s[2].actions for s in steps], 1)
    evaluation = policy.network.evaluate_actions(
        features, blueprints, masks, actions, state0, policy.probability_floors
    )
    rollout = torch.stack([s[2].log_probs for s in steps], 1)
    assert torch.allclose(evaluation.log_probs, rollout, atol=1e-5)
    assert torch.allclose(evaluation.values, torch.stack([s[2].values for s in steps], 1), atol=1e-5)
    relevant = RELEVANCE[actions[..., HEAD_INDEX[ActionHead.OP]]]
    assert (evaluation.entropies[~relevant] == 0).all() and (evaluation.entropies >= 0).all()
    policy.network.zero_grad(set_to_none=True)
    q = policy.network.q_values(policy.network.trunk(features, blueprints, state0)[0])
    assert q.shape == (2, 4, len(LifecycleOp))
    q.sum().backward()  # Q(s, op) trains its own head only: the trunk is detached
    assert all(p.grad is None for p in policy.network.lstm.parameters())
    assert all(p.grad is not None for p in policy.network.q_head.parameters())


def test_probability_floors_apply() -> None:
    policy = LstmPolicy(len(SLOTS), SMALL)
    views = [EnvView(make_signals(), {"r0c0": make_report("r0c0", SeedStage.HOLDING, level=2)})]
    out = policy.act(
        FeatureExtractor(SLOT_CONFIG, 1).encode(views),
        compute_masks(views, cnn_mask_config()),
        policy.initial_state(1),
        explain=True,
    )
    (explanation,) = out.explanations
    valid = {op.name for op in explanation.valid_ops}
    probs = explanation.op_probabilities
    assert abs(sum(probs.values()) - 1.0) < 1e-5
    floor = min(0.15, 0.99 / len(valid))
    assert all(probs[name] >= floor / (1 + len(valid) * floor) - 1e-6 for name in valid)  # see floored_probs
    assert all(probs[name] == 0.0 for name in probs if name not in valid)
    assert set(explanation.head_probabilities) <= set(ActionHead)


def test_heuristic_explains_its_rule() -> None:
    policy = HeuristicPolicy(SLOTS)
    views = [EnvView(make_signals(), {"r0c0": make_report("r0c0", SeedStage.GERMINATED)})]
    out = policy.act(
        FeatureExtractor(SLOT_CONFIG, 1).encode(views),
        compute_masks(views, cnn_mask_config()),
        policy.initial_state(1),
        explain=True,
    )
    assert out.explanations[0].reason == "germinated: start training"
    assert to_factored(out.actions[0]).op is OP.ADVANCE


# ---------------------------------------------------------------- heuristic decision paths
def decide(view: EnvView, policy: HeuristicPolicy | None = None, state: Any = None) -> tuple[LifecycleOp, Any]:
    policy = policy or HeuristicPolicy(SLOTS)
    state = state if state is not None else policy.initial_state(1)
    out = policy.act(FeatureExtractor(SLOT_CONFIG, 1).encode([view]), compute_masks([view], cnn_mask_config()), state)
    return LifecycleOp(int(out.actions[0, HEAD_INDEX[ActionHead.OP]])), out


def test_every_op_has_a_heuristic_path_or_is_never_chosen() -> None:
    assert_covers(LifecycleOp, HEURISTIC_OP_PATHS, consumer="tamiyo HEURISTIC_OP_PATHS")
    assert [op for op, path in HEURISTIC_OP_PATHS.items() if path.startswith(NEVER)] == [OP.SET_ALPHA_TARGET]


def test_heuristic_paths() -> None:
    h = SeedStage
    assert decide(EnvView(make_signals(stabilized=False)))[0] is OP.WAIT
    op, out = decide(EnvView(make_signals(stabilized=True, plateau=5)))
    assert op is OP.GERMINATE and to_factored(out.actions[0]).blueprint is BlueprintAction.CONV_LADDER
    assert decide(EnvView(make_signals(), {"r0c0": make_report("r0c0", h.GERMINATED)}))[0] is OP.ADVANCE
    assert (
        decide(EnvView(make_signals(), {"r0c0": make_report("r0c0", h.TRAINING, epochs_in_current_stage=12)}))[0]
        is OP.ADVANCE
    )
    hurting = make_report(
        "r0c0",
        h.BLENDING,
        BlueprintAction.NORM,
        epochs_in_current_stage=3,
        counterfactual_contribution=-3.0,
        epochs_since_counterfactual=0,
    )
    assert decide(EnvView(make_signals(), {"r0c0": hurting}))[0] is OP.PRUNE
    incubating = make_report("r0c0", h.TRAINING, epochs_in_current_stage=6, improvement_since_stage_start=-9.0)
    assert decide(EnvView(make_signals(), {"r0c0": incubating}))[0] is OP.WAIT  # cannot hurt the host yet
    good = make_report(
        "r0c0", h.HOLDING, BlueprintAction.CONV_HEAVY, counterfactual_contribution=2.0, epochs_since_counterfactual=0
    )
    assert decide(EnvView(make_signals(), {"r0c0": good}))[0] is OP.FOSSILIZE
    weak = make_report("r0c0", h.HOLDING, BlueprintAction.CONV_HEAVY, counterfactual_contribution=0.2)
    assert decide(EnvView(make_signals(), {"r0c0": weak}))[0] is OP.PRUNE
    ransom = make_report(
        "r0c0", h.HOLDING, BlueprintAction.NORM, counterfactual_contribution=3.0, total_improvement=-1.0
    )
    assert decide(EnvView(make_signals(), {"r0c0": ransom}))[0] is OP.PRUNE


def test_heuristic_grows_then_shrinks_a_ladder_by_contribution_per_level() -> None:
    policy = HeuristicPolicy(SLOTS)
    state = policy.initial_state(1)

    def step(level: int, contribution: float) -> LifecycleOp:
        report = make_report(
            "r0c0",
            SeedStage.HOLDING,
            level=level,
            counterfactual_contribution=contribution,
            epochs_since_counterfactual=0,
        )
        return decide(EnvView(make_signals(), {"r0c0": report}), policy, state)[0]

    assert step(1, 2.0) is OP.WAIT  # one measurement at level 1 is not enough to judge the ladder
    assert step(1, 2.0) is OP.GROW_INTERNAL  # helps, level 2 unexplored
    assert step(2, 2.5) is OP.WAIT  # measuring level 2 (no fossilize before the new level is judged)
    assert step(2, 2.5) is OP.SHRINK_INTERNAL  # 2.5 / 2 per level < 2.0 / 1
    assert step(1, 2.0) is OP.FOSSILIZE  # level 2 explored: settle and fossilize


def test_heuristic_penalises_pruned_blueprints() -> None:
    policy = HeuristicPolicy(SLOTS)
    state = policy.initial_state(1)
    hurting = make_report(
        "r0c0",
        SeedStage.BLENDING,
        BlueprintAction.CONV_LADDER,
        epochs_in_current_stage=6,
        counterfactual_contribution=-3.0,
        epochs_since_counterfactual=0,
    )
    assert decide(EnvView(make_signals(), {"r0c0": hurting}), policy, state)[0] is OP.PRUNE
    assert state[0].penalties[BlueprintAction.CONV_LADDER] == pytest.approx(2.0)
    blueprints = []
    for _ in range(8):  # germinate every step (decisions are independent of the result here)
        op, out = decide(EnvView(make_signals(plateau=5)), policy, state)
        assert op is OP.GERMINATE
        blueprints.append(to_factored(out.actions[0]).blueprint)
    # 2 * 0.9**k stays >= 1.0 for six epochs: the pruned ladder sits out, then rejoins the rotation
    assert BlueprintAction.CONV_LADDER not in blueprints[:6]
    assert state[0].penalties[BlueprintAction.CONV_LADDER] < policy.config.penalty_threshold  # eligible again


@settings(max_examples=200, deadline=None)
@given(
    logits=st.lists(st.floats(-30, 30), min_size=2, max_size=12),
    valid=st.lists(st.booleans(), min_size=12, max_size=12),
    floor=st.floats(0.0, 0.5),
)
def test_floored_probabilities_keep_every_valid_entry_above_the_floor(
    logits: list[float], valid: list[bool], floor: float
) -> None:
    mask = torch.tensor(valid[: len(logits)])
    if not bool(mask.any()):
        mask[0] = True
    probs = floored_probs(torch.tensor([logits]), mask.unsqueeze(0), floor)[0]
    n = int(mask.sum())
    minimum = min(floor, 0.99 / n)
    assert abs(float(probs.sum()) - 1.0) < 1e-5
    assert bool((probs[mask] >= minimum / (1 + n * minimum) - 1e-6).all())
    assert bool((probs[~mask] == 0.0).all())
