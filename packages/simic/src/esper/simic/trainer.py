"""The vectorized trainer: N environments per round, one batched policy forward per step, one PPO update per round.

A round: reset every environment (a fresh host each) -> for each epoch of the episode: encode all environments into one
CPU tensor, normalise, one policy forward for all of them, apply each environment's action (the only per-environment
Python in the loop), compute rewards, store the step -> PPO update -> telemetry -> checkpoint every K rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from esper.leyline import (
    INTERNAL_OPS,
    ActionTakenPayload,
    CheckpointLoadedPayload,
    CheckpointSavedPayload,
    CounterfactualDeltaPayload,
    EpisodeOutcomePayload,
    FactoredAction,
    InternalOpMetricsPayload,
    LifecycleOp,
    ParallelMode,
    PpoUpdateCompletedPayload,
    RewardComponents,
    RewardComputedPayload,
    SeedStateReport,
    TelemetryHub,
    obs_dim,
)
from esper.simic.checkpoint import write_checkpoint
from esper.simic.contracts.ppo_config import PpoConfig
from esper.simic.contracts.reward_config import RewardConfig
from esper.simic.distributed import WorkerGroup
from esper.simic.ppo import PpoTrainer, RolloutBuffer, RunningMeanStd, concat_buffers
from esper.simic.rewards import InternalOpWindow, StepOutcome, check_reward_config, compute_reward
from esper.tamiyo import (
    EnvView,
    Explanation,
    FeatureExtractor,
    LstmPolicy,
    LstmPolicyConfig,
    MaskConfig,
    Observation,
    compute_masks,
    to_factored,
)
from esper.tolaria import Environment, TaskSpec, TensorData

BASELINE_SAMPLES = 10  # steps without an internal op before COUNTERFACTUAL_DELTA reports a baseline
BASELINE_RATE = 0.1


@dataclass(frozen=True, slots=True)
class TrainerConfig:
    task: TaskSpec
    slots: tuple[str, ...]
    masks: MaskConfig
    n_envs: int
    episode_length: int
    seed: int
    device: torch.device
    ppo: PpoConfig
    reward: RewardConfig
    policy: LstmPolicyConfig


@dataclass(frozen=True, slots=True)
class RoundResult:
    round: int
    mean_reward: float
    mean_accuracy: float
    update_seconds: float
    round_seconds: float
    tallies: tuple[dict[str, int], ...]  # per environment: seeds germinated/fossilized/pruned, level changes, ...
    added_params: tuple[int, ...]


def _sum_components(parts: list[RewardComponents]) -> RewardComponents:
    return RewardComponents(
        contribution=sum(p.contribution for p in parts),
        rent=sum(p.rent for p in parts),
        alpha_shock=sum(p.alpha_shock for p in parts),
        pbrs=sum(p.pbrs for p in parts),
        intervention_cost=sum(p.intervention_cost for p in parts),
        thrash_penalty=sum(p.thrash_penalty for p in parts),
        terminal_bonus=sum(p.terminal_bonus for p in parts),
        governor_penalty=sum(p.governor_penalty for p in parts),
        total=sum(p.total for p in parts),
    )


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
                config.slots,
                hub.emitter(i),
                config.seed + 1000 * i,
                config.device,
                data_parallel=data_parallel,
            )
            for i in env_ids
        ]
        torch.manual_seed(config.seed)
        self.policy = LstmPolicy(len(config.slots), config.policy)
        if group is not None:  # the same policy everywhere, whatever each rank's RNG did before
            group.broadcast_module(self.policy.network)
        self.ppo = PpoTrainer(self.policy, config.ppo, seed=config.seed)
        self.normalizer = RunningMeanStd(obs_dim(len(config.slots)))
        self.extractor = FeatureExtractor(config.slots, len(self.envs))
        # Action sampling: each environment-parallel rank draws its own stream (rank 0 keeps the single-process one).
        rank_offset = 0 if group is None or data_parallel else 7919 * group.rank
        self.generator = torch.Generator().manual_seed(config.seed + rank_offset)
        self.round = 0
        self._baseline_delta: list[float | None] = [None] * len(self.envs)
        self._baseline_count = [0] * len(self.envs)
        # This rank's state at the last round boundary: what a checkpoint stores, also after an abandoned round.
        self._boundary_state = self._rank_state()

    @property
    def is_main(self) -> bool:
        """Whether this process writes run-level telemetry and checkpoints."""
        return self.group is None or self.group.is_main

    # ------------------------------------------------------------------ one round
    def run_round(self, stop: Callable[[], bool] | None = None) -> RoundResult | None:
        """One round; None when `stop` asked for it to end early (checked at every epoch boundary, agreed by every
        rank): the round is abandoned, and the policy and checkpoint state stay those of the last round boundary."""
        c = self.config
        started = time.perf_counter()
        n, steps = len(self.envs), c.episode_length
        starts = [env.reset(self.round) for env in self.envs]
        signals = [s for s, _ in starts]
        reports: list[tuple[SeedStateReport, ...]] = [r for _, r in starts]
        for i in range(n):
            self.extractor.reset(i)
        windows = [{s: InternalOpWindow(c.reward.thrash_window) for s in c.slots} for _ in range(n)]
        components: list[list[RewardComponents]] = [[] for _ in range(n)]
        buffer = RolloutBuffer(n, steps, len(c.slots))
        state0 = self.policy.initial_state(n)
        state = state0
        raw_features = []
        previous = [(s.metrics.val_loss, s.metrics.val_accuracy) for s in signals]
        for t in range(steps):
            if stop is not None and self._stop_agreed(stop()):
                if self.group is not None:
                    self.group.relay(self.hub)  # the abandoned round's events of every rank, as far as they got
                return None
            views = [EnvView(signals[i], {r.slot_id: r for r in reports[i]}) for i in range(n)]
            observation = self.extractor.encode(views)
            masks = compute_masks(views, c.masks)
            raw_features.append(observation.features)
            normalized = Observation(
                observation.views, self.normalizer(observation.features), observation.blueprint_indices
            )
            out = self.policy.act(normalized, masks, state, generator=self.generator, explain=True)
            assert out.log_probs is not None and out.values is not None and out.explanations is not None
            actions, log_probs, values = out.actions, out.log_probs, out.values
            if self.group is not None and self.group.mode is ParallelMode.DATA:  # rank 0 decides for every rank
                actions, log_probs, values = self.group.broadcast((actions, log_probs, values))
            rewards, dones = torch.zeros(n), torch.zeros(n)
            for i, env in enumerate(self.envs):
                action = to_factored(actions[i])
                step = env.step(action)
                terminal = t == steps - 1
                slot_id = None if action.op is LifecycleOp.WAIT else c.slots[action.slot]
                if slot_id is not None:
                    windows[i][slot_id].record(action.op, step.action.success)
                window = windows[i][slot_id] if slot_id is not None else None
                reward = compute_reward(
                    c.reward,
                    c.ppo.gamma,
                    StepOutcome(
                        op=action.op,
                        success=step.action.success,
                        before=reports[i],
                        after=step.reports,
                        host_params=env.host_params,
                        val_accuracy=step.validation.accuracy,
                        terminal=terminal,
                        rolled_back=step.rolled_back,
                    ),
                    window,
                )
                components[i].append(reward)
                rewards[i], dones[i] = reward.total, float(terminal)
                explanation = out.explanations[i]
                env.emitter.emit(
                    self._action_payload(action, step.action.success, step.action.reason, explanation), slot_id=slot_id
                )
                env.emitter.emit(RewardComputedPayload(op=action.op, components=reward), slot_id=slot_id)
                if slot_id is not None and action.op in INTERNAL_OPS and step.action.success:
                    self._internal_op_telemetry(
                        i,
                        slot_id,
                        action.op,
                        reports[i],
                        step.reports,
                        previous[i],
                        (step.validation.loss, step.validation.accuracy),
                        windows[i][slot_id],
                    )
                else:
                    self._track_baseline(i, previous[i][1], step.validation.accuracy)
                previous[i] = (step.validation.loss, step.validation.accuracy)
                signals[i], reports[i] = step.signals, step.reports
            buffer.add(
                normalized.features,
                observation.blueprint_indices,
                masks,
                actions,
                log_probs,
                values,
                rewards,
                dones,
            )
            state = out.state
        raw = torch.cat(raw_features)
        if self.group is not None and self.group.mode is ParallelMode.ENVS:  # every rank's rollout, in rank order
            parts = self.group.gather((buffer, raw))
            buffer = concat_buffers([part[0] for part in parts])
            raw = torch.cat([part[1] for part in parts])
            state0 = self.policy.initial_state(buffer.n_envs)
        self.normalizer.update(raw)
        update_started = time.perf_counter()
        stats = self.ppo.update(buffer, state0, torch.zeros(buffer.n_envs))
        update_seconds = time.perf_counter() - update_started
        self.round += 1
        self._emit_main(
            PpoUpdateCompletedPayload(
                round=self.round,
                policy_loss=stats.policy_loss,
                value_loss=stats.value_loss,
                entropy=stats.entropy,
                approx_kl=stats.approx_kl,
                clip_fraction=stats.clip_fraction,
                explained_variance=stats.explained_variance,
                grad_norm=stats.grad_norm,
                learning_rate=c.ppo.learning_rate,
                head_entropies=stats.head_entropies,
                op_q_values=stats.op_q_values,
                update_seconds=update_seconds,
            )
        )
        accuracies, tallies, added_all = [], [], []
        for i, env in enumerate(self.envs):
            tally, summed = env.tally(), _sum_components(components[i])
            added = env.model.seed_param_count()
            accuracies.append(signals[i].metrics.val_accuracy)
            tallies.append(tally)
            added_all.append(added)
            env.emitter.emit(EpisodeOutcomePayload(outcome=env.outcome(reward_components=summed)))
        if self.group is not None and self.group.mode is ParallelMode.ENVS:
            parts = self.group.gather((accuracies, tallies, added_all))
            accuracies = [a for part in parts for a in part[0]]
            tallies = [t for part in parts for t in part[1]]
            added_all = [a for part in parts for a in part[2]]
        if self.group is not None:
            self.group.relay(self.hub)
        self._boundary_state = self._rank_state()
        return RoundResult(
            round=self.round,
            mean_reward=float(buffer.rewards.sum(1).mean()),
            mean_accuracy=sum(accuracies) / len(accuracies),
            update_seconds=update_seconds,
            round_seconds=time.perf_counter() - started,
            tallies=tuple(tallies),
            added_params=tuple(added_all),
        )

    def _stop_agreed(self, local: bool) -> bool:
        """Whether any rank was asked to stop (every rank must leave the round at the same epoch)."""
        return local if self.group is None else self.group.any(local)

    def _emit_main(self, payload: PpoUpdateCompletedPayload | CheckpointSavedPayload | CheckpointLoadedPayload) -> None:
        """Run-level events come from rank 0 only."""
        if self.is_main:
            self.hub.emit(payload)

    def _action_payload(
        self, action: FactoredAction, success: bool, reason: str | None, explanation: Explanation
    ) -> ActionTakenPayload:
        return ActionTakenPayload(
            policy="lstm",
            action=action,
            success=success,
            rejection_reason=reason,
            valid_ops=explanation.valid_ops,
            op_probabilities=explanation.op_probabilities,
        )

    def _track_baseline(self, env: int, before: float, after: float) -> None:
        delta = after - before
        current = self._baseline_delta[env]
        self._baseline_delta[env] = delta if current is None else (1 - BASELINE_RATE) * current + BASELINE_RATE * delta
        self._baseline_count[env] += 1

    def _internal_op_telemetry(
        self,
        env: int,
        slot_id: str,
        op: LifecycleOp,
        before: tuple[SeedStateReport, ...],
        after: tuple[SeedStateReport, ...],
        was: tuple[float, float],
        now: tuple[float, float],
        window: InternalOpWindow,
    ) -> None:
        old = next(r for r in before if r.slot_id == slot_id)
        new = next(r for r in after if r.slot_id == slot_id)
        emitter = self.envs[env].emitter
        emitter.emit(
            InternalOpMetricsPayload(
                window=window.window,
                op_count=window.op_count,
                internal_op_density=window.density,
                net_level_change=window.net_level_change,
                reversal_rate=window.reversal_rate,
            ),
            slot_id=slot_id,
        )
        baseline = self._baseline_delta[env] if self._baseline_count[env] >= BASELINE_SAMPLES else None
        emitter.emit(
            CounterfactualDeltaPayload(
                op=op,
                from_level=old.internal_level,
                to_level=new.internal_level,
                horizon_epochs=1,
                loss_before=was[0],
                loss_after=now[0],
                accuracy_before=was[1],
                accuracy_after=now[1],
                params_before=old.internal_active_params,
                params_after=new.internal_active_params,
                loss_delta=now[0] - was[0],
                accuracy_delta=now[1] - was[1],
                baseline_accuracy_delta=baseline,
            ),
            slot_id=slot_id,
        )

    # ------------------------------------------------------------------ checkpoints
    def _rank_state(self) -> dict[str, object]:
        """What differs between ranks: their RNG streams and their environments' NOOP baselines."""
        return {
            "torch_rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "baseline_delta": list(self._baseline_delta),
            "baseline_count": list(self._baseline_count),
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
        }
        write_checkpoint(path, payload)
        self._emit_main(CheckpointSavedPayload(path=str(path), round=self.round))

    def restore(self, payload: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint's payload (read and verified by esper.simic.checkpoint.load_latest; every rank
        reads the same file, on a shared filesystem under multi-node runs, and takes its own rank state)."""
        world_size = 1 if self.group is None else self.group.world_size
        if int(payload["world_size"]) != world_size:
            raise ValueError(
                f"{path} was written by {payload['world_size']} process(es); resume it with the same number "
                f"(this run has {world_size})"
            )
        self.policy.network.load_state_dict(payload["policy"])
        self.ppo.optimizer.load_state_dict(payload["optimizer"])
        self.normalizer.load_state_dict(payload["normalizer"])
        self.ppo.generator.set_state(payload["ppo_generator"])
        mine = payload["ranks"][0 if self.group is None else self.group.rank]
        torch.set_rng_state(mine["torch_rng"])
        self.generator.set_state(mine["generator"])
        self._baseline_delta = list(mine["baseline_delta"])
        self._baseline_count = list(mine["baseline_count"])
        self.round = int(payload["round"])
        self._boundary_state = self._rank_state()
        self._emit_main(CheckpointLoadedPayload(path=str(path), round=self.round))
