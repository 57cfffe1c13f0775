"""The episode loop every run goes through: observe -> mask -> act -> step -> reward -> telemetry.

The heuristic, random and learned policies, PPO's collection and the experiment packs all run episodes here, so
every run emits the same telemetry for the same levers: ACTION_TAKEN and REWARD_COMPUTED each step, and for each
successful internal op (GROW/SHRINK_INTERNAL) INTERNAL_OP_METRICS and COUNTERFACTUAL_DELTA, then EPISODE_OUTCOME.

One `EpisodeLoop` drives N environments in lock-step (N = 1 for a heuristic run): per epoch one feature fill and one
policy forward for all of them, then one `step_together` (each environment applies its FactoredAction, their hosts
train as one stacked computation where they can, each validates).
Rewards are computed for every policy: a heuristic run shows what PPO would have paid it. When the reward pays the
terminal bonus over the host-only accuracy, each environment has a twin that trains the same host alone in
lock-step (its random streams forked away, so the run itself is the same with or without it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from esper.leyline import (
    INTERNAL_OPS,
    ActionTakenPayload,
    CounterfactualDeltaPayload,
    EpisodeOutcome,
    EpisodeOutcomePayload,
    FactoredAction,
    InternalOpMetricsPayload,
    LifecycleOp,
    RewardComponents,
    RewardComputedPayload,
    SeedStateReport,
    SlotConfig,
    TelemetryHub,
    TrainingSignals,
    canonical_action,
    slot_ids,
)
from esper.simic.contracts.reward_config import RewardConfig
from esper.simic.rewards import InternalOpWindow, StepOutcome, compute_reward
from esper.tamiyo import (
    ActionMasks,
    EnvView,
    Explanation,
    FeatureExtractor,
    MaskConfig,
    Observation,
    Policy,
    PolicyOutput,
    compute_masks,
)
from esper.tolaria import Environment, StepResult, step_together

WAIT = canonical_action(LifecycleOp.WAIT)
BASELINE_SAMPLES = 10  # steps without an internal op before COUNTERFACTUAL_DELTA reports a baseline
BASELINE_RATE = 0.1


@dataclass(frozen=True, slots=True)
class LoopConfig:
    slots: SlotConfig  # the enabled slots in action order
    masks: MaskConfig
    reward: RewardConfig
    gamma: float  # PPO's discount, which the reward's potential-based shaping must use
    episode_length: int
    save_models: Path | None = None  # each episode's grown model is saved under it, one directory per episode


@dataclass(frozen=True, slots=True)
class Transition:
    """One epoch of all environments, as PPO stores it."""

    observation: Observation  # what the policy saw (normalised for PPO)
    masks: ActionMasks
    output: PolicyOutput
    rewards: torch.Tensor  # [n]
    dones: torch.Tensor  # [n]


@dataclass(frozen=True, slots=True)
class Episodes:
    """N environments' episodes: the transitions, the raw features (for the normaliser) and the outcomes."""

    transitions: tuple[Transition, ...]
    raw_features: torch.Tensor  # [steps * n, obs_dim]
    components: tuple[tuple[RewardComponents, ...], ...]  # [n][steps]
    outcomes: tuple[EpisodeOutcome, ...]
    initial_state: Any  # the policy state the episodes started from


@dataclass
class NoopBaseline:
    """A running mean of one environment's accuracy change over steps without an internal op: what an internal
    op's accuracy change is compared with in COUNTERFACTUAL_DELTA. Carried across episodes (and checkpoints)."""

    delta: float | None = None
    count: int = 0

    def record(self, before: float, after: float) -> None:
        change = after - before
        self.delta = change if self.delta is None else (1 - BASELINE_RATE) * self.delta + BASELINE_RATE * change
        self.count += 1

    @property
    def value(self) -> float | None:
        return self.delta if self.count >= BASELINE_SAMPLES else None


@dataclass
class _Lane:
    """One environment's state inside an episode."""

    env: Environment
    twin: Environment | None  # the same host trained alone, when the reward measures from it
    signals: TrainingSignals
    reports: tuple[SeedStateReport, ...]
    windows: dict[str, InternalOpWindow]
    last: tuple[float, float]  # validation (loss, accuracy) after the previous step
    components: list[RewardComponents] = field(default_factory=list)


Act = Callable[[Observation, ActionMasks, Any], PolicyOutput]
Prepare = Callable[[Observation], Observation]
StepHook = Callable[[int, Sequence[StepResult]], None]


class EpisodeLoop:
    def __init__(self, config: LoopConfig, envs: Sequence[Environment], policy: Policy) -> None:
        self.config = config
        self.envs = list(envs)
        self.policy = policy
        for env in self.envs:  # the masks and the observation must describe exactly what the environments run
            if env.limits != config.masks.limits:
                raise ValueError(f"environment limits {env.limits} differ from the masks' {config.masks.limits}")
            if tuple(env.slot_ids) != slot_ids(config.slots):
                raise ValueError(f"environment slots {env.slot_ids} differ from the loop's {slot_ids(config.slots)}")
        self.extractor = FeatureExtractor(config.slots, len(self.envs))
        self.baselines = [NoopBaseline() for _ in self.envs]
        self.twins = [_twin(env) if config.reward.terminal_over_host_only else None for env in self.envs]

    def run(
        self,
        episode: int,
        act: Act,
        prepare: Prepare | None = None,
        stop: Callable[[], bool] | None = None,
        on_step: StepHook | None = None,
    ) -> Episodes | None:
        """One episode in every environment. `act` turns (observation, masks, state) into the policy's output (a
        sampling policy's generator, a distributed broadcast); `prepare` normalises the observation the policy sees;
        `stop` is asked at every epoch boundary, and a yes abandons the episodes (None); `on_step(epoch, results)`
        follows progress."""
        lanes = [self._lane(i, env, episode) for i, env in enumerate(self.envs)]
        initial = state = self.policy.initial_state(len(lanes))
        transitions: list[Transition] = []
        raw: list[torch.Tensor] = []
        for t in range(self.config.episode_length):
            if stop is not None and stop():
                return None
            views = [EnvView(lane.signals, {r.slot_id: r for r in lane.reports}) for lane in lanes]
            observation = self.extractor.encode(views)
            masks = compute_masks(views, self.config.masks)
            raw.append(observation.features)
            seen = prepare(observation) if prepare is not None else observation
            out = act(seen, masks, state)
            terminal = t == self.config.episode_length - 1
            rewards, dones, results = self._step_all(lanes, out, terminal)
            transitions.append(Transition(seen, masks, out, rewards, dones))
            state = out.state
            if on_step is not None:
                on_step(t + 1, results)
        outcomes = tuple(self._finish(lane) for lane in lanes)
        components = tuple(tuple(lane.components) for lane in lanes)
        return Episodes(tuple(transitions), torch.cat(raw), components, outcomes, initial)

    def _lane(self, index: int, env: Environment, episode: int) -> _Lane:
        twin = self.twins[index]
        if twin is not None:
            with torch.random.fork_rng(devices=[]):
                twin.reset(episode)
        signals, reports = env.reset(episode)
        self.extractor.reset(index)
        windows = {s: InternalOpWindow(self.config.reward.thrash_window) for s in slot_ids(self.config.slots)}
        metrics = signals.metrics
        return _Lane(env, twin, signals, reports, windows, (metrics.val_loss, metrics.val_accuracy))

    def _step_all(
        self, lanes: list[_Lane], out: PolicyOutput, terminal: bool
    ) -> tuple[torch.Tensor, torch.Tensor, list[StepResult]]:
        n = len(lanes)
        rewards, dones = torch.zeros(n), torch.zeros(n)
        assert out.explanations is not None, "the loop asks every policy to explain its actions"
        results = step_together([lane.env for lane in lanes], out.decisions)
        for i, (lane, result) in enumerate(zip(lanes, results, strict=True)):
            action = out.decisions[i]
            host_only = None
            if lane.twin is not None:
                with torch.random.fork_rng(devices=[]):
                    host_only = lane.twin.step(WAIT).validation.accuracy
            reward = self._reward(lane, action, result, terminal, host_only)
            self._emit_step(i, lane, action, result, reward, out.explanations[i])
            rewards[i], dones[i] = reward.total, float(terminal)
            lane.signals, lane.reports = result.signals, result.reports
            lane.last = (result.validation.loss, result.validation.accuracy)
        return rewards, dones, results

    def _reward(
        self, lane: _Lane, action: FactoredAction, result: StepResult, terminal: bool, host_only: float | None
    ) -> RewardComponents:
        slot_id = self._slot_id(action)
        window = seed_window(lane.windows, slot_id, result.reports) if slot_id is not None else None
        if window is not None:
            window.record(action.op, result.action.success)
        outcome = StepOutcome(
            op=action.op,
            success=result.action.success,
            before=lane.reports,
            after=result.reports,
            host_params=lane.env.host_params,
            val_accuracy=result.validation.accuracy,
            terminal=terminal,
            rolled_back=result.rolled_back,
            host_only_accuracy=host_only,
        )
        reward = compute_reward(self.config.reward, self.config.gamma, outcome, window)
        lane.components.append(reward)
        return reward

    def _slot_id(self, action: FactoredAction) -> str | None:
        return None if action.op is LifecycleOp.WAIT else self.config.slots.slots[action.slot].slot_id

    def _emit_step(
        self,
        index: int,
        lane: _Lane,
        action: FactoredAction,
        result: StepResult,
        reward: RewardComponents,
        explanation: Explanation,
    ) -> None:
        slot_id = self._slot_id(action)
        emitter = lane.env.emitter
        emitter.emit(
            ActionTakenPayload(
                policy=self.policy.kind,
                action=action,
                success=result.action.success,
                rejection_reason=result.action.reason,
                gate_refused=result.action.gate_refused,
                valid_ops=explanation.valid_ops,
                op_probabilities=explanation.op_probabilities,
            ),
            slot_id=slot_id,
        )
        emitter.emit(RewardComputedPayload(op=action.op, components=reward), slot_id=slot_id)
        if slot_id is not None and action.op in INTERNAL_OPS and result.action.success:
            self._emit_internal_op(index, lane, slot_id, action.op, result)
        else:
            self.baselines[index].record(lane.last[1], result.validation.accuracy)

    def _emit_internal_op(self, index: int, lane: _Lane, slot_id: str, op: LifecycleOp, result: StepResult) -> None:
        old = next(r for r in lane.reports if r.slot_id == slot_id)
        new = next(r for r in result.reports if r.slot_id == slot_id)
        window = lane.windows[slot_id]
        emitter = lane.env.emitter
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
        (loss_before, accuracy_before), validation = lane.last, result.validation
        emitter.emit(
            CounterfactualDeltaPayload(
                op=op,
                from_level=old.internal_level,
                to_level=new.internal_level,
                horizon_epochs=1,
                loss_before=loss_before,
                loss_after=validation.loss,
                accuracy_before=accuracy_before,
                accuracy_after=validation.accuracy,
                params_before=old.internal_active_params,
                params_after=new.internal_active_params,
                loss_delta=validation.loss - loss_before,
                accuracy_delta=validation.accuracy - accuracy_before,
                baseline_accuracy_delta=self.baselines[index].value,
            ),
            slot_id=slot_id,
        )

    def _finish(self, lane: _Lane) -> EpisodeOutcome:
        env = lane.env
        outcome = env.outcome(reward_components=sum_components(lane.components))
        if self.config.save_models is not None:
            env.save_grown_model(self.config.save_models / grown_model_name(env.episode, env.emitter.env_id))
        lane.env.emitter.emit(EpisodeOutcomePayload(outcome=outcome))
        return outcome


def grown_model_name(episode: int, env_id: int) -> str:
    """The directory of one episode's grown model under the run's models directory."""
    return f"episode{episode:04d}-env{env_id:02d}"


def _twin(env: Environment) -> Environment:
    """A host-only twin of an environment: same task, data, slots, seed and device; its telemetry goes nowhere."""
    hub = TelemetryHub(f"host-only-twin-{env.emitter.env_id}")
    emitter = hub.emitter(env.emitter.env_id)
    return Environment(
        env.task, env.data, env.slot_ids, emitter, env.seed, env.device, compile_backend=env.compile_backend
    )


def seed_window(
    windows: dict[str, InternalOpWindow], slot_id: str, reports: Sequence[SeedStateReport]
) -> InternalOpWindow:
    """The slot's anti-thrash window, started afresh whenever another seed occupies the slot (or it empties): one
    seed's oscillation is never charged to the next."""
    seed_id = next((r.seed_id for r in reports if r.slot_id == slot_id), None)
    window = windows[slot_id]
    if window.seed_id != seed_id:
        window = windows[slot_id] = InternalOpWindow(window.window, seed_id)
    return window


def sum_components(parts: Sequence[RewardComponents]) -> RewardComponents:
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
