"""The vectorized trainer: N environments per round, one batched policy forward per step, one PPO update per round.

A round is four small steps: collect (one episode in every environment through the shared EpisodeLoop, which
computes the rewards and emits the step telemetry), the rollout (the buffer, gathered over ranks), the PPO update,
and the summary (the round's outcomes). The run around it (checkpoints every K rounds, resume) is the caller's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from esper.leyline import (
    OBS_V3_SCHEMA_VERSION,
    CheckpointLoadedPayload,
    CheckpointSavedPayload,
    EpisodeOutcome,
    ParallelMode,
    PpoUpdateCompletedPayload,
    SlotConfig,
    TelemetryHub,
    obs_dim,
    slot_ids,
)
from esper.simic.checkpoint import load_latest, write_checkpoint
from esper.simic.contracts.ppo_config import PpoConfig
from esper.simic.contracts.reward_config import RewardConfig
from esper.simic.distributed import WorkerGroup
from esper.simic.loop import EpisodeLoop, Episodes, LoopConfig, NoopBaseline
from esper.simic.ppo import PpoTrainer, RolloutBuffer, RunningMeanStd, UpdateStats, concat_buffers
from esper.simic.rewards import check_reward_config
from esper.tamiyo import ActionMasks, LstmPolicy, LstmPolicyConfig, LstmState, MaskConfig, Observation, PolicyOutput
from esper.tolaria import Environment, TaskSpec, TensorData


@dataclass(frozen=True, slots=True)
class TrainerConfig:
    task: TaskSpec
    slots: SlotConfig  # the enabled slots in action order
    masks: MaskConfig
    n_envs: int
    episode_length: int
    seed: int
    device: torch.device
    ppo: PpoConfig
    reward: RewardConfig
    policy: LstmPolicyConfig
    compile_backend: str | None = None  # torch.compile the environments' hosts and seeds with it (None: eager)
    save_models: Path | None = None  # each episode's grown model is saved under it (None: none are)


@dataclass(frozen=True, slots=True)
class RoundResult:
    round: int
    mean_reward: float
    mean_accuracy: float  # mean final accuracy over every environment of the round
    update_seconds: float
    round_seconds: float
    outcomes: tuple[EpisodeOutcome, ...]  # every environment's episode, over every rank


def check_observation_version(payload: dict[str, Any], path: Path) -> None:
    """Whether a checkpoint's policy reads this code's observation (its input width follows the observation's
    fields). Raises ValueError naming the file and both versions."""
    # Checkpoints written before the version was recorded observed version 2.
    version = int(payload["obs_version"]) if "obs_version" in payload else 2
    if version != OBS_V3_SCHEMA_VERSION:
        raise ValueError(
            f"{path} holds a policy for observation version {version}; this code observes version "
            f"{OBS_V3_SCHEMA_VERSION} (another input width): start a new run"
        )


def check_resumable(payload: dict[str, Any], path: Path, world_size: int) -> None:
    """Whether a checkpoint's run can continue here: the same observation version (the policy's input width) and
    the same number of processes. Raises ValueError naming the file and what differs."""
    check_observation_version(payload, path)
    if int(payload["world_size"]) != world_size:
        raise ValueError(
            f"{path} was written by {payload['world_size']} process(es); resume it with the same number "
            f"(this run has {world_size})"
        )


def normalized(normalizer: RunningMeanStd, observation: Observation) -> Observation:
    """The observation as the policy reads it: features through the running normaliser, frozen between updates."""
    return Observation(observation.views, normalizer(observation.features), observation.blueprint_indices)


@dataclass(frozen=True, slots=True)
class TrainedPolicy:
    """A PPO run's policy as its checkpoint holds it, with the normaliser it was trained behind."""

    policy: LstmPolicy
    normalizer: RunningMeanStd
    round: int  # PPO rounds the policy was trained for
    path: Path  # the checkpoint file it came from (the previous one when the latest was damaged)

    def normalized(self, observation: Observation) -> Observation:
        return normalized(self.normalizer, observation)


def load_trained_policy(path: Path, n_slots: int, config: LstmPolicyConfig) -> TrainedPolicy:
    """The policy of the checkpoint at `path` (verified; its previous file when the latest is damaged). Raises
    CheckpointError for unusable files and ValueError for a policy of another observation version."""
    loaded = load_latest(path)
    check_observation_version(loaded.payload, loaded.path)
    policy = LstmPolicy(n_slots, config)
    policy.network.load_state_dict(loaded.payload["policy"])
    normalizer = RunningMeanStd(obs_dim(n_slots))
    normalizer.load_state_dict(loaded.payload["normalizer"])
    return TrainedPolicy(policy, normalizer, int(loaded.payload["round"]), loaded.path)


class VectorizedTrainer:
    """`group` (a torch.distributed WorkerGroup, see esper.simic.distributed) spreads the run over ranks: ENVS gives
    each rank its share of the environments (global ids, seeds and telemetry as in a single-process run) and
    gathers the rollouts for one identical update; DATA trains every environment's host data-parallel. Without a
    group the trainer is single-process."""

    def __init__(
        self, config: TrainerConfig, data: TensorData, hub: TelemetryHub, group: WorkerGroup | None = None
    ) -> None:
        self.config = config
        self.hub = hub
        self.group = group
        check_reward_config(config.reward)
        env_ids = range(config.n_envs) if group is None else group.local_envs(config.n_envs)
        data_parallel = group is not None and group.mode is ParallelMode.DATA
        self.envs = [
            Environment(
                config.task,
                data,
                slot_ids(config.slots),
                hub.emitter(i),
                config.seed + 1000 * i,
                config.device,
                data_parallel=data_parallel,
                max_seeds=config.masks.limits.max_seeds,
                compile_backend=config.compile_backend,
            )
            for i in env_ids
        ]
        torch.manual_seed(config.seed)
        self.policy = LstmPolicy(len(config.slots.slots), config.policy)
        if group is not None:  # the same policy everywhere, whatever each rank's RNG did before
            group.broadcast_module(self.policy.network)
        self.ppo = PpoTrainer(self.policy, config.ppo, seed=config.seed)
        self.normalizer = RunningMeanStd(obs_dim(len(config.slots.slots)))
        # Data-parallel ranks hold the same environments: rank 0 alone saves their grown models.
        saves = None if data_parallel and group is not None and group.rank != 0 else config.save_models
        loop = LoopConfig(config.slots, config.masks, config.reward, config.ppo.gamma, config.episode_length, saves)
        self.loop = EpisodeLoop(loop, self.envs, self.policy)
        # Action sampling: each environment-parallel rank draws its own stream (rank 0 keeps the single-process one).
        rank_offset = 0 if group is None or data_parallel else 7919 * group.rank
        self.generator = torch.Generator().manual_seed(config.seed + rank_offset)
        self.round = 0
        # This rank's state at the last round boundary: what a checkpoint stores, also after an abandoned round.
        self._boundary_state = self._rank_state()

    @property
    def is_main(self) -> bool:
        """Whether this process writes run-level telemetry and checkpoints."""
        return self.group is None or self.group.is_main

    # ------------------------------------------------------------------ one round
    def run_round(self, stop: Callable[[], bool] | None = None) -> RoundResult | None:
        """One round: collect an episode in every environment, update the policy, summarize. None when `stop`
        asked for it to end early (checked at every epoch boundary, agreed by every rank): the round is abandoned,
        and the policy and checkpoint state stay those of the last round boundary."""
        started = time.perf_counter()
        episodes = self._collect(stop)
        if episodes is None:
            if self.group is not None:
                self.group.relay(self.hub)  # the abandoned round's events of every rank, as far as they got
            return None
        buffer, raw, state0 = self._rollout(episodes)
        self.normalizer.update(raw)
        update_started = time.perf_counter()
        stats = self.ppo.update(buffer, state0, torch.zeros(buffer.n_envs))
        update_seconds = time.perf_counter() - update_started
        self.round += 1
        self._emit_main(self._update_payload(stats, update_seconds))
        result = self._summarize(episodes, buffer, update_seconds, time.perf_counter() - started)
        if self.group is not None:
            self.group.relay(self.hub)
        self._boundary_state = self._rank_state()
        return result

    def _collect(self, stop: Callable[[], bool] | None) -> Episodes | None:
        """This rank's environments, one episode each, with the round's policy (sampling, normalised features)."""

        def act(observation: Observation, masks: ActionMasks, state: LstmState) -> PolicyOutput:
            out = self.policy.act(observation, masks, state, generator=self.generator, explain=True)
            if self.group is not None and self.group.mode is ParallelMode.DATA:  # rank 0 decides for every rank
                decisions, actions, log_probs, values = self.group.broadcast(
                    (out.decisions, out.actions, out.log_probs, out.values)
                )
                out = dataclasses.replace(out, decisions=decisions, actions=actions, log_probs=log_probs, values=values)
            return out

        agreed = None if stop is None else (lambda: self._stop_agreed(stop()))
        return self.loop.run(self.round, act, prepare=self._normalized, stop=agreed)

    def _normalized(self, observation: Observation) -> Observation:
        return normalized(self.normalizer, observation)

    def _rollout(self, episodes: Episodes) -> tuple[RolloutBuffer, torch.Tensor, LstmState]:
        """The episodes as a rollout buffer; under ENVS every rank's, gathered in rank order."""
        c = self.config
        buffer = RolloutBuffer(len(self.envs), c.episode_length, len(c.slots.slots))
        for step in episodes.transitions:
            out = step.output
            assert out.log_probs is not None and out.values is not None
            buffer.add(
                step.observation.features,
                step.observation.blueprint_indices,
                step.masks,
                out.actions,
                out.log_probs,
                out.values,
                step.rewards,
                step.dones,
            )
        raw, state0 = episodes.raw_features, episodes.initial_state
        if self.group is not None and self.group.mode is ParallelMode.ENVS:  # every rank's rollout, in rank order
            parts = self.group.gather((buffer, raw))
            buffer = concat_buffers([part[0] for part in parts])
            raw = torch.cat([part[1] for part in parts])
            state0 = self.policy.initial_state(buffer.n_envs)
        return buffer, raw, state0

    def _update_payload(self, stats: UpdateStats, update_seconds: float) -> PpoUpdateCompletedPayload:
        return PpoUpdateCompletedPayload(
            round=self.round,
            policy_loss=stats.policy_loss,
            value_loss=stats.value_loss,
            entropy=stats.entropy,
            approx_kl=stats.approx_kl,
            clip_fraction=stats.clip_fraction,
            explained_variance=stats.explained_variance,
            grad_norm=stats.grad_norm,
            learning_rate=self.config.ppo.learning_rate,
            head_entropies=stats.head_entropies,
            op_q_values=stats.op_q_values,
            update_seconds=update_seconds,
        )

    def _summarize(
        self, episodes: Episodes, buffer: RolloutBuffer, update_seconds: float, round_seconds: float
    ) -> RoundResult:
        """The round's outcomes over every rank's environments."""
        outcomes: list[EpisodeOutcome] = list(episodes.outcomes)
        if self.group is not None and self.group.mode is ParallelMode.ENVS:
            outcomes = [o for part in self.group.gather(outcomes) for o in part]
        return RoundResult(
            round=self.round,
            mean_reward=float(buffer.rewards.sum(1).mean()),
            mean_accuracy=sum(o.final_accuracy for o in outcomes) / len(outcomes),
            update_seconds=update_seconds,
            round_seconds=round_seconds,
            outcomes=tuple(outcomes),
        )

    def _stop_agreed(self, local: bool) -> bool:
        """Whether any rank was asked to stop (every rank must leave the round at the same epoch)."""
        return local if self.group is None else self.group.any(local)

    def _emit_main(self, payload: PpoUpdateCompletedPayload | CheckpointSavedPayload | CheckpointLoadedPayload) -> None:
        """Run-level events come from rank 0 only."""
        if self.is_main:
            self.hub.emit(payload)

    # ------------------------------------------------------------------ checkpoints
    def _rank_state(self) -> dict[str, object]:
        """What differs between ranks: their RNG streams and their environments' NOOP baselines."""
        return {
            "torch_rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "baseline_delta": [b.delta for b in self.loop.baselines],
            "baseline_count": [b.count for b in self.loop.baselines],
        }

    def save(self, path: Path, log_position: int) -> None:
        """Every rank calls this (the per-rank state is gathered); rank 0 alone writes the file, keeping the previous
        one (esper.simic.checkpoint), then emits CHECKPOINT_SAVED. `log_position` is the event log's size at the
        round boundary being saved: resuming rewinds the log to it (see esper.karn.rewind_to_checkpoint)."""
        ranks = [self._boundary_state] if self.group is None else self.group.gather(self._boundary_state)
        if not self.is_main:
            return
        payload = {
            "round": self.round,
            "world_size": len(ranks),
            "policy": self.policy.network.state_dict(),
            "optimizer": self.ppo.optimizer.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "ppo_generator": self.ppo.generator.get_state(),
            "ranks": ranks,
            "events_bytes": log_position,
            "obs_version": OBS_V3_SCHEMA_VERSION,  # the policy's input width follows the observation's fields
        }
        write_checkpoint(path, payload)
        self._emit_main(CheckpointSavedPayload(path=str(path), round=self.round))

    def restore(self, payload: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint's payload (read and verified by esper.simic.checkpoint.load_latest; every rank
        reads the same file, on a shared filesystem under multi-node runs, and takes its own rank state)."""
        check_resumable(payload, path, 1 if self.group is None else self.group.world_size)
        self.policy.network.load_state_dict(payload["policy"])
        self.ppo.optimizer.load_state_dict(payload["optimizer"])
        self.normalizer.load_state_dict(payload["normalizer"])
        self.ppo.generator.set_state(payload["ppo_generator"])
        mine = payload["ranks"][0 if self.group is None else self.group.rank]
        torch.set_rng_state(mine["torch_rng"])
        self.generator.set_state(mine["generator"])
        self.loop.baselines = [
            NoopBaseline(delta, count)
            for delta, count in zip(mine["baseline_delta"], mine["baseline_count"], strict=True)
        ]
        self.round = int(payload["round"])
        self._boundary_state = self._rank_state()
        self._emit_main(CheckpointLoadedPayload(path=str(path), round=self.round))
