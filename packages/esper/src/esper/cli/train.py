"""`esper train heuristic` and `esper tasks`: a run of a policy that does not learn (the heuristic Tamiyo, the
random policy of the experiment packs, or a trained PPO policy under `esper evaluate`), and the list of tasks.

Flow: the flags become a RunConfig (every flag checked, nothing written) -> runs/<run_id>/config.json -> each
episode goes through Simic's EpisodeLoop (the same loop PPO collects with) with every event in events.jsonl, and is
followed by the host-only baseline (the same host, seeded alike, trained with every slot dormant) -> summary.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from esper.cli.common import EXIT_INTERRUPTED, STOP, Interrupted, StopRequest, UsageError
from esper.cli.karn import train_with_tui
from esper.cli.plan import RunPlan, plan_from_flags, training_started, write_config
from esper.cli.progress import Bar, Progress, progress_for
from esper.cli.record import summarize, summary_table, write_summary
from esper.cli.tensorboard import check_tensorboard_dir, tensorboard_sinks
from esper.karn import JsonlSink
from esper.karn.contracts.run_summary import RunSummary
from esper.leyline import (
    LIVE_STAGES,
    EpisodeOutcome,
    HostBaselineEpochPayload,
    LifecycleOp,
    PolicyKind,
    TelemetryHub,
    TrainingCompletedPayload,
    canonical_action,
)
from esper.simic import Act, EpisodeLoop, LoopConfig, PpoConfig, Prepare, StepHook, load_trained_policy
from esper.tamiyo import ActionMasks, HeuristicPolicy, Observation, Policy, PolicyOutput, RandomPolicy
from esper.tolaria import TASKS, DataError, Environment, StepResult, TensorData

WAIT = canonical_action(LifecycleOp.WAIT)
GAMMA = PpoConfig().gamma  # the discount a heuristic run's rewards are computed with: what PPO would use
# The part of an episode's time its host-only baseline takes, for the run's ETA: the host alone, without seeds, policy
# or counterfactual passes (measured on digits: 0.06-0.27; a larger host's own training weighs more).
BASELINE_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class Controller:
    """Who acts in a run that does not learn: the policy, how it acts, and what its observation goes through."""

    policy: Policy
    act: Act
    prepare: Prepare | None


def _controller(plan: RunPlan) -> Controller:
    """The heuristic, the random policy (sampling with the run's seed), or a trained PPO policy under evaluation
    (deterministic: the most probable action, behind the normaliser it was trained with)."""
    if plan.config.evaluates is not None:
        trained = load_trained_policy(Path(plan.config.evaluates), len(plan.slots), plan.ppo.policy)

        def act_trained(observation: Observation, masks: ActionMasks, state: object) -> PolicyOutput:
            return trained.policy.act(observation, masks, state, explain=True, deterministic=True)

        return Controller(trained.policy, act_trained, trained.normalized)
    policy: Policy = (
        HeuristicPolicy(plan.slots, plan.config.heuristic)
        if plan.config.heuristic is not None
        else RandomPolicy(len(plan.slots))
    )
    generator = torch.Generator().manual_seed(plan.seed)

    def act(observation: Observation, masks: ActionMasks, state: object) -> PolicyOutput:
        return policy.act(observation, masks, state, generator=generator, explain=True)

    return Controller(policy, act, None)


def _host_only(
    plan: RunPlan, data: TensorData, hub: TelemetryHub, episode: int, stop: StopRequest, bar: Bar
) -> float | None:
    """The host-only baseline of one episode: the same host, seeded alike, trained for the same epochs with every
    slot dormant. Each epoch goes into the run's log as HOST_BASELINE_EPOCH (env 0, this episode), so Karn can draw
    the host's own curve beside the grown one; the baseline environment's own events stay out of it; `bar` shows its
    epochs. Its final accuracy; None when a stop was requested first."""
    emitter = TelemetryHub(f"{plan.config.run_id}-baseline").emitter(0)
    env = Environment(
        plan.task, data, plan.slots, emitter, plan.seed, plan.device, compile_backend=plan.compile_backend
    )
    env.reset(episode)
    emitter = hub.emitter(0)
    emitter.start_episode(episode)
    accuracy = None
    for _ in range(plan.epochs):
        if stop.requested:
            return None
        metrics = env.step(WAIT).signals.metrics
        emitter.set_epoch(metrics.epoch)
        emitter.emit(
            HostBaselineEpochPayload(
                train_loss=metrics.train_loss,
                train_accuracy=metrics.train_accuracy,
                val_loss=metrics.val_loss,
                val_accuracy=metrics.val_accuracy,
            )
        )
        accuracy = metrics.val_accuracy
        bar.update(metrics.epoch, f"acc {accuracy:5.1f}%")
    return accuracy


def _progress_line(bar: Bar) -> StepHook:
    best = 0.0

    def show(epoch: int, results: Sequence[StepResult]) -> None:
        nonlocal best
        result = results[0]
        accuracy = result.signals.metrics.val_accuracy
        best = max(best, accuracy)
        live = sum(1 for r in result.reports if r.stage in LIVE_STAGES)
        bar.update(epoch, f"acc {accuracy:5.1f}% (best {best:5.1f}) seeds live {live}")

    return show


def run_policy(
    plan: RunPlan, progress: Progress, stop: StopRequest = STOP, tensorboard: Path | None = None
) -> RunSummary | Interrupted:
    """A heuristic or random run: config.json, the episodes through the EpisodeLoop with their host-only
    baselines, summary.json. A stop request ends it at the next epoch boundary: the log closes with
    TRAINING_COMPLETED(interrupted) and no summary.json is written. `tensorboard` (--tensorboard DIR, not part of
    the run's config) adds a live TensorBoard sink beside events.jsonl."""
    episodes = plan.config.episodes
    assert episodes is not None, "resolve() checked that a heuristic or random run has its episode count"
    torch.manual_seed(plan.seed)
    data = plan.task.load(plan.data_dir)
    write_config(plan)
    sinks = (JsonlSink(plan.run_dir / "events.jsonl"), *tensorboard_sinks(tensorboard))
    hub = TelemetryHub(plan.config.run_id, sinks=sinks)
    started = time.perf_counter()
    env = Environment(
        plan.task,
        data,
        plan.slots,
        hub.emitter(0),
        plan.seed,
        plan.device,
        max_seeds=plan.config.max_seeds,
        compile_backend=plan.compile_backend,
    )
    hub.emit(training_started(plan, n_envs=1))
    controller = _controller(plan)
    config = LoopConfig(plan.slot_config, plan.masks, plan.config.reward, GAMMA, plan.epochs, plan.models_dir)
    loop = EpisodeLoop(config, [env], controller.policy)

    outcomes: list[EpisodeOutcome] = []
    baselines: list[float] = []
    run_bar = progress.bar("episodes", episodes)
    for episode in range(episodes):
        name = f"episode {episode + 1}/{episodes}"
        # The episode's epochs and then its baseline's fill one unit of the run's bar, in proportion to their time.
        with progress.bar(f"{name} epoch", plan.epochs, share=1 - BASELINE_SHARE) as bar:
            ran = loop.run(
                episode,
                controller.act,
                prepare=controller.prepare,
                stop=lambda: stop.requested,
                on_step=_progress_line(bar),
            )
        with progress.bar(
            f"{name} host-only epoch", plan.epochs, share=BASELINE_SHARE, offset=1 - BASELINE_SHARE
        ) as bar:
            baseline = None if ran is None else _host_only(plan, data, hub, episode, stop, bar)
        if ran is None or baseline is None:
            break
        (outcome,) = ran.outcomes
        outcomes.append(outcome)
        baselines.append(baseline)
        run_bar.update(
            episode + 1,
            line=f"{name}: accuracy {outcome.final_accuracy:.1f}% (host-only {baseline:.1f}%), germinated "
            f"{outcome.germinated}, fossilized {outcome.fossilized}, pruned {outcome.pruned}, level changes "
            f"{outcome.internal_level_changes}",
        )
    hub.emit(
        TrainingCompletedPayload(
            episodes_completed=len(outcomes), wall_seconds=time.perf_counter() - started, interrupted=stop.requested
        )
    )
    hub.close()
    run_bar.close()
    if stop.requested:
        return Interrupted(stop.describe(), f"episode {len(outcomes) + 1}/{episodes}")
    summary = summarize(plan, outcomes, outcomes, baselines)
    write_summary(plan, summary)
    return summary


def cmd_train_heuristic(args: argparse.Namespace) -> int:
    plan = plan_from_flags(args, PolicyKind.HEURISTIC)
    tensorboard = check_tensorboard_dir(args.tensorboard)
    if args.tui:
        return train_with_tui(args, plan.run_dir)
    with STOP.armed(), progress_for(sys.stderr) as progress:
        try:
            result = run_policy(plan, progress, tensorboard=tensorboard)
        except DataError as exc:  # the data directory does not hold the task's files: a usage error (exit 2)
            raise UsageError(str(exc)) from exc
    if isinstance(result, Interrupted):
        print(
            f"esper train: {result.reason} at {result.where}; the events so far are in {plan.run_dir}. A heuristic "
            "run keeps no checkpoint: run the same command again to start over (the same --seed gives the same run)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(summary_table(result, plan.run_dir))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    print(f"{'task':<17} {'topology':<12} {'host params':>11}  {'epochs':>6}  {'seed width':>10}  description")
    for task in TASKS.values():
        host = task.build_host()
        params = sum(p.numel() for p in {id(p): p for p in host.parameters()}.values())
        width = "slot" if task.config.seed_width is None else str(task.config.seed_width)
        print(
            f"{task.name:<17} {task.config.topology.value:<12} {params:>11,}  {task.config.episode_length:>6}  "
            f"{width:>10}  {task.description}"
        )
        # Slots in action order (the host's injection order), each with its surface; * marks the default ones.
        slots = ", ".join(
            f"{s.slot_id} {s.surface.name.lower()}{'*' if s.slot_id in task.config.default_slots else ''}"
            for s in host.injection_specs()
        )
        print(f"{'':<17} slots: {slots}")
    return 0
