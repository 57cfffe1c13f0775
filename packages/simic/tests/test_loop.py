"""The one episode loop: every policy's run emits the same telemetry for the same levers (here the internal ops of
a ladder seed), on real training of the digits task."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from esper.leyline import (
    INTERNAL_OPS,
    BlueprintAction,
    LifecycleOp,
    ListSink,
    TelemetryHub,
    Topology,
    canonical_action,
    slot_config,
)
from esper.simic import EpisodeLoop, Episodes, LoopConfig, RewardConfig
from esper.tamiyo import (
    ActionMasks,
    HeuristicConfig,
    HeuristicPolicy,
    MaskConfig,
    Observation,
    Policy,
    PolicyOutput,
    RandomPolicy,
)
from esper.tolaria import Environment, get_task

TASK = get_task("digits")
DATA = TASK.load(None)
SLOTS = ("r0c0", "r0c1")
SLOT_CONFIG = slot_config(TASK.build_host().injection_specs(), SLOTS)
WAIT = canonical_action(LifecycleOp.WAIT)


def policy_named(name: str) -> Policy:
    return HeuristicPolicy(SLOTS, HeuristicConfig()) if name == "heuristic" else RandomPolicy(len(SLOTS))


@pytest.mark.parametrize("name", ["heuristic", "random"])
def test_every_policy_reports_internal_ops_like_ppo(name: str) -> None:
    sink = ListSink()
    hub = TelemetryHub("loop", sinks=(sink,))
    envs = [Environment(TASK, DATA, SLOTS, hub.emitter(i), seed=i, device=torch.device("cpu")) for i in range(2)]
    policy = policy_named(name)
    masks = MaskConfig(SLOTS, Topology.CNN, (BlueprintAction.CONV_LADDER,))
    loop = EpisodeLoop(LoopConfig(SLOT_CONFIG, masks, RewardConfig(), 0.99, 60), envs, policy)
    generator = torch.Generator().manual_seed(0)

    def act(observation: Observation, action_masks: ActionMasks, state: object) -> PolicyOutput:
        return policy.act(observation, action_masks, state, generator=generator, explain=True)

    episodes = loop.run(0, act)
    assert episodes is not None and len(episodes.outcomes) == 2
    events = sink.events
    kinds = Counter(e.event_type.name for e in events)
    assert kinds["ACTION_TAKEN"] == kinds["REWARD_COMPUTED"] == 2 * 60  # every step of both environments
    assert kinds["EPISODE_OUTCOME"] == 2
    grown = [
        e
        for e in events
        if e.event_type.name == "ACTION_TAKEN"
        and e.payload.action.op in INTERNAL_OPS  # type: ignore[union-attr]
        and e.payload.success  # type: ignore[union-attr]
    ]
    assert grown, f"the {name} policy made no internal op in 60 epochs: the test would prove nothing"
    for action in grown:
        key = (action.env_id, action.epoch, action.slot_id)
        at = Counter(e.event_type.name for e in events if (e.env_id, e.epoch, e.slot_id) == key)
        assert at["INTERNAL_OP_METRICS"] == 1 and at["COUNTERFACTUAL_DELTA"] == 1, (name, key, at)
    assert all(e.payload.policy.value == name for e in events if e.event_type.name == "ACTION_TAKEN")  # type: ignore[union-attr]
    # Rewards are computed for every policy: each episode's outcome carries its summed components.
    assert all(o.reward_components is not None for o in episodes.outcomes)


def _random_episode(reward: RewardConfig, epochs: int = 12) -> tuple[Episodes, list[float]]:
    env = Environment(TASK, DATA, SLOTS, TelemetryHub("twin").emitter(0), seed=5, device=torch.device("cpu"))
    policy = RandomPolicy(len(SLOTS))
    masks = MaskConfig(SLOTS, Topology.CNN, (BlueprintAction.CONV_LIGHT,))
    loop = EpisodeLoop(LoopConfig(SLOT_CONFIG, masks, reward, 0.99, epochs), [env], policy)
    generator = torch.Generator().manual_seed(3)

    def act(observation: Observation, action_masks: ActionMasks, state: object) -> PolicyOutput:
        return policy.act(observation, action_masks, state, generator=generator, explain=True)

    torch.manual_seed(11)
    episodes = loop.run(0, act)
    assert episodes is not None
    return episodes, [float(t.rewards[0]) for t in episodes.transitions]


def test_the_host_only_twin_measures_the_terminal_bonus_without_touching_the_run() -> None:
    absolute, _ = _random_episode(RewardConfig())
    relative, rewards = _random_episode(RewardConfig(terminal_over_host_only=True))
    # The twin's random streams are forked away: the episode is the same run, only its terminal bonus differs.
    assert [t.output.decisions for t in relative.transitions] == [t.output.decisions for t in absolute.transitions]
    (mine,), (theirs,) = relative.outcomes, absolute.outcomes
    assert mine.final_accuracy == theirs.final_accuracy and mine.added_params == theirs.added_params
    # The reference is the same host trained alone for the same epochs (what a run's host-only baseline trains).
    alone = Environment(TASK, DATA, SLOTS, TelemetryHub("alone").emitter(0), seed=5, device=torch.device("cpu"))
    alone.reset(0)
    for _ in range(12):
        host_only = alone.step(WAIT).validation.accuracy
    weight = RewardConfig().terminal_accuracy_weight
    terminal = relative.components[0][-1].terminal_bonus
    assert terminal == pytest.approx(weight * (mine.final_accuracy - host_only))
    assert absolute.components[0][-1].terminal_bonus == pytest.approx(weight * theirs.final_accuracy)
    assert rewards[-1] == pytest.approx(relative.components[0][-1].total)
