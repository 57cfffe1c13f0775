"""The vectorized trainer: a real round on digits, its telemetry, and checkpoint round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esper.leyline import (
    OBS_V3_SCHEMA_VERSION,
    BlueprintAction,
    LifecycleOp,
    ListSink,
    TelemetryHub,
    Topology,
    dumps,
    slot_config,
)
from esper.simic import PpoConfig, RewardConfig, TrainerConfig, VectorizedTrainer, read_checkpoint
from esper.tamiyo import LstmPolicyConfig, MaskConfig
from esper.tolaria import get_task

TASK = get_task("digits")
DATA = TASK.load(None)
SLOTS = ("r0c0", "r0c1")


def trainer(sink: ListSink, seed: int = 0) -> VectorizedTrainer:
    config = TrainerConfig(
        task=TASK,
        slots=slot_config(TASK.build_host().injection_specs(), SLOTS),
        masks=MaskConfig(SLOTS, Topology.CNN, (BlueprintAction.CONV_LADDER,)),
        n_envs=2,
        episode_length=20,
        seed=seed,
        device=torch.device("cpu"),
        ppo=PpoConfig(),
        reward=RewardConfig(),
        policy=LstmPolicyConfig(feature_dim=32, lstm_hidden_dim=32, head_hidden_dim=32),
    )
    return VectorizedTrainer(config, DATA, TelemetryHub("t", sinks=(sink,)))


def test_a_round_emits_every_kind_of_training_telemetry(tmp_path: Path) -> None:
    sink = ListSink()
    t = trainer(sink)
    result = t.run_round()
    assert result.round == 1 and len(result.outcomes) == 2 and result.update_seconds < result.round_seconds
    events = sink.events
    kinds = {e.event_type.name for e in events}
    assert {"ACTION_TAKEN", "REWARD_COMPUTED", "EPOCH_COMPLETED", "EPISODE_OUTCOME", "PPO_UPDATE_COMPLETED"} <= kinds
    for event in events:
        dumps(event)  # every event is valid wire data
    (update,) = [e.payload for e in events if e.event_type.name == "PPO_UPDATE_COMPLETED"]
    assert set(update.op_q_values) == {op.name for op in LifecycleOp}
    outcomes = [e.payload.outcome for e in events if e.event_type.name == "EPISODE_OUTCOME"]
    rewards = [e.payload.components.total for e in events if e.event_type.name == "REWARD_COMPUTED"]
    assert abs(sum(o.episode_reward for o in outcomes) - sum(rewards)) < 1e-6
    # Each successful internal op is followed by its anti-thrash metrics and its observed short-horizon effect.
    grown = [
        e
        for e in events
        if e.event_type.name == "ACTION_TAKEN"
        and e.payload.success
        and e.payload.action.op in (LifecycleOp.GROW_INTERNAL, LifecycleOp.SHRINK_INTERNAL)
    ]
    assert grown, "with conv_ladder only and floored op probabilities, the round grows or shrinks a ladder"
    for action in grown:
        key = (action.env_id, action.epoch, action.slot_id)
        metrics = [
            e for e in events if e.event_type.name == "INTERNAL_OP_METRICS" and (e.env_id, e.epoch, e.slot_id) == key
        ]
        deltas = [
            e for e in events if e.event_type.name == "COUNTERFACTUAL_DELTA" and (e.env_id, e.epoch, e.slot_id) == key
        ]
        assert len(metrics) == 1 and len(deltas) == 1
        assert deltas[0].payload.op is action.payload.action.op


def test_checkpoint_round_trip_restores_policy_and_counters(tmp_path: Path) -> None:
    first = trainer(ListSink())
    first.run_round()
    first.save(tmp_path / "ckpt.pt", 0)
    second = trainer(ListSink(), seed=5)
    second.restore(read_checkpoint(tmp_path / "ckpt.pt"), tmp_path / "ckpt.pt")
    assert second.round == 1
    for a, b in zip(
        first.policy.network.state_dict().values(), second.policy.network.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert torch.equal(first.normalizer.mean, second.normalizer.mean)
    assert torch.equal(first.generator.get_state(), second.generator.get_state())


def test_a_round_stopped_early_checkpoints_the_last_boundary_and_resumes_exactly(tmp_path: Path) -> None:
    """Stop in the middle of round 2, checkpoint, resume in a fresh trainer: its round 2 equals an uninterrupted
    trainer's round 2 (the abandoned epochs leave no trace in the policy, the RNG streams or the baselines)."""
    straight = trainer(ListSink())
    straight.run_round()
    expected = straight.run_round()
    assert expected is not None

    stopped = trainer(ListSink())
    stopped.run_round()
    epochs_seen: list[int] = []

    def stop_after_two_epochs() -> bool:
        epochs_seen.append(len(epochs_seen))
        return len(epochs_seen) > 2

    assert stopped.run_round(stop=stop_after_two_epochs) is None
    assert stopped.round == 1 and len(epochs_seen) == 3  # checked at every epoch boundary, stopped at the third
    stopped.save(tmp_path / "ckpt.pt", 0)
    torch.manual_seed(99)  # a fresh process's RNG: the checkpoint must bring back every stream
    resumed = trainer(ListSink())
    resumed.restore(read_checkpoint(tmp_path / "ckpt.pt"), tmp_path / "ckpt.pt")
    again = resumed.run_round()
    assert again is not None
    assert again.mean_reward == expected.mean_reward and again.mean_accuracy == expected.mean_accuracy
    for a, b in zip(
        straight.policy.network.state_dict().values(), resumed.policy.network.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_observation_version_is_refused_by_name(tmp_path: Path) -> None:
    """A policy trained on another observation (other fields, another input width) cannot continue: one message
    naming the file and both versions, before any weight is loaded."""
    first = trainer(ListSink())
    first.save(tmp_path / "ckpt.pt", 0)
    payload = read_checkpoint(tmp_path / "ckpt.pt")
    assert payload["obs_version"] == OBS_V3_SCHEMA_VERSION
    del payload["obs_version"]  # as written before the version was recorded: observation version 2
    expected = rf"ckpt.pt holds a policy for observation version 2; .* {OBS_V3_SCHEMA_VERSION}"
    with pytest.raises(ValueError, match=expected):
        trainer(ListSink()).restore(payload, tmp_path / "ckpt.pt")
