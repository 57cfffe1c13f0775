"""`esper train heuristic`: a morphogenetic run driven by the heuristic Tamiyo, and `esper tasks`.

Flow: validate every flag (exit 2, nothing written) -> create runs/<run_id>/ with config.json -> for each episode:
the environment (Tolaria) trains epoch by epoch, Tamiyo sees features and masks and picks an action, every event
goes to events.jsonl -> the same host, seeded alike, is trained without seeds for the baseline -> summary.json and
a summary table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from esper.cli.common import EXIT_INTERRUPTED, STOP, Interrupted, Progress, StopRequest, UsageError
from esper.cli.karn import train_with_tui
from esper.karn import JsonlSink
from esper.karn.contracts.run_summary import RunSummary
from esper.leyline import (
    ActionTakenPayload,
    BlueprintAction,
    EpisodeOutcome,
    EpisodeOutcomePayload,
    LifecycleOp,
    ParallelMode,
    SeedStage,
    TelemetryHub,
    TrainingCompletedPayload,
    TrainingStartedPayload,
    blueprint_from_id,
    blueprints_for,
    canonical_action,
    dumps,
    to_wire,
    validate_slot_ids,
)
from esper.tamiyo import (
    EnvView,
    FeatureExtractor,
    HeuristicConfig,
    HeuristicPolicy,
    MaskConfig,
    RandomPolicy,
    compute_masks,
    to_factored,
)
from esper.tolaria import TASKS, DataError, Environment, TaskSpec, get_task

WAIT = canonical_action(LifecycleOp.WAIT)


DEFAULT_ROUNDS = 10


@dataclass(frozen=True, slots=True)
class RunPlan:
    task: TaskSpec
    slots: tuple[str, ...]
    blueprints: tuple[BlueprintAction, ...]
    episodes: int
    epochs: int
    max_seeds: int | None
    seed: int
    device: torch.device
    run_dir: Path
    data_dir: Path | None


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be >= 1, got {value}")


def parse_device(text: str) -> torch.device:
    """--device: cpu, cuda[:index] where torch sees a CUDA device, mps where torch reports Apple's GPU available."""
    try:
        device = torch.device(text)
    except RuntimeError as exc:  # torch's parse error for a malformed device string; a usage error (exit 2)
        raise UsageError(f"--device: {exc}; use cpu, cuda[:index] or mps") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device: CUDA is not available on this machine (torch sees no CUDA device); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device: {text} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError("--device: mps is not available (torch reports no Apple GPU here); use cpu")
    elif device.type != "cpu":
        raise UsageError(f"--device: {device.type} is not supported; use cpu, cuda[:index] or mps")
    return device


def default_run_dir(task: str, policy: str, seed: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}-{policy}-s{seed}-{stamp}"


def plan_run(args: argparse.Namespace) -> RunPlan:
    """Validate the flags both policies share (and the heuristic's own)."""
    try:
        task = get_task(args.task)
    except ValueError as exc:  # unknown task name, with the list of tasks: a usage error (exit 2)
        raise UsageError(f"--task: {exc}") from exc
    if args.policy == "heuristic":
        _positive("--episodes", args.episodes)
        _positive("--epochs", args.epochs)
    _positive("--max-seeds", args.max_seeds)
    host_slots = [spec.slot_id for spec in task.build_host().injection_specs()]
    try:
        slots = validate_slot_ids(args.slots if args.slots else task.config.default_slots)
    except ValueError as exc:  # SlotIdError names the bad id; reported as a usage error (exit 2)
        raise UsageError(f"--slots: {exc}") from exc
    unknown = [s for s in slots if s not in host_slots]
    if unknown:
        raise UsageError(f"--slots: {unknown} not in task {task.name}; available: {' '.join(host_slots)}")
    allowed = blueprints_for(task.config.topology)
    if args.blueprints:
        try:
            blueprints = tuple(blueprint_from_id(b) for b in args.blueprints)
        except ValueError as exc:  # unknown blueprint id, with the allowed list; a usage error (exit 2)
            raise UsageError(f"--blueprints: {exc}") from exc
        wrong = [b.name.lower() for b in blueprints if b not in allowed]
        if wrong:
            raise UsageError(
                f"--blueprints: {wrong} do not apply to {task.name} ({task.config.topology.value}); "
                f"allowed: {' '.join(b.name.lower() for b in allowed)}"
            )
    else:
        blueprints = allowed
    device = parse_device(args.device)
    if task.needs_data_dir and (args.data_dir is None or not args.data_dir.is_dir()):
        raise UsageError(f"--data-dir: task {task.name} needs an existing data directory, got {args.data_dir}")
    run_dir = args.run_dir if args.run_dir is not None else default_run_dir(task.name, args.policy, args.seed)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"--run-dir: {run_dir} exists and is not empty")
    heuristic = args.policy == "heuristic"
    episodes = args.episodes if heuristic else (args.rounds or DEFAULT_ROUNDS)
    epochs = args.epochs if heuristic else args.episode_length
    if not heuristic:
        _positive("--rounds", episodes)
        _positive("--episode-length", epochs)
    return RunPlan(
        task,
        slots,
        blueprints,
        episodes,
        epochs or task.config.episode_length,
        args.max_seeds,
        args.seed,
        device,
        run_dir,
        args.data_dir,
    )


def training_started(
    plan: RunPlan, policy: str, n_envs: int, world_size: int = 1, parallel_mode: ParallelMode = ParallelMode.NONE
) -> TrainingStartedPayload:
    """The TRAINING_STARTED payload both training commands emit."""
    return TrainingStartedPayload(
        task=plan.task.name,
        policy=policy,
        topology=plan.task.config.topology,
        slot_ids=plan.slots,
        blueprints=tuple(b.name.lower() for b in plan.blueprints),
        n_envs=n_envs,
        episode_length=plan.epochs,
        max_seeds=plan.max_seeds,
        seed=plan.seed,
        device=str(plan.device),
        host_params=sum(p.numel() for p in plan.task.build_host().parameters()),
        world_size=world_size,
        parallel_mode=parallel_mode,
    )


def _host_only(env: Environment, epochs: int, stop: StopRequest) -> float | None:
    """The host-only baseline's final accuracy; None when a stop was requested first."""
    accuracy = None
    for _ in range(epochs):
        if stop.requested:
            return None
        accuracy = env.step(WAIT).validation.accuracy
    return accuracy


def run_heuristic(
    plan: RunPlan, progress: Progress, policy_kind: str = "heuristic", stop: StopRequest = STOP
) -> RunSummary | Interrupted:
    """A run of a policy that needs no training: the heuristic, or the random policy ("random", a baseline of the
    experiment packs). Each episode is followed by the host-only baseline: the same host, seeded alike, trained
    for the same epochs with every slot dormant. A stop request ends the run at the next epoch boundary: the log
    closes with TRAINING_COMPLETED(interrupted) and no summary.json is written."""
    if policy_kind not in ("heuristic", "random"):
        raise ValueError(f"policy_kind must be heuristic or random, got {policy_kind!r}")
    torch.manual_seed(plan.seed)
    data = plan.task.load(plan.data_dir)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    run_id = plan.run_dir.name
    heuristic_config = HeuristicConfig()
    config = {
        "run_id": run_id,
        "policy": policy_kind,
        "task": to_wire(plan.task.config),
        "slots": list(plan.slots),
        "blueprints": [b.name.lower() for b in plan.blueprints],
        "episodes": plan.episodes,
        "epochs_per_episode": plan.epochs,
        "max_seeds": plan.max_seeds,
        "seed": plan.seed,
        "device": str(plan.device),
        "data_dir": None if plan.data_dir is None else str(plan.data_dir),
        "heuristic": to_wire(heuristic_config),
    }
    (plan.run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    hub = TelemetryHub(run_id, sinks=(JsonlSink(plan.run_dir / "events.jsonl"),))
    started = time.perf_counter()
    env = Environment(plan.task, data, plan.slots, hub.emitter(0), plan.seed, plan.device)
    hub.emit(training_started(plan, policy_kind, n_envs=1))
    policy: HeuristicPolicy | RandomPolicy = (
        HeuristicPolicy(plan.slots, heuristic_config) if policy_kind == "heuristic" else RandomPolicy(len(plan.slots))
    )
    generator = torch.Generator().manual_seed(plan.seed)
    extractor = FeatureExtractor(plan.slots, 1)
    masks_config = MaskConfig(plan.slots, plan.task.config.topology, plan.blueprints, plan.max_seeds)
    outcomes: list[EpisodeOutcome] = []
    baselines: list[float] = []
    for episode in range(plan.episodes):
        signals, reports = env.reset(episode)
        extractor.reset(0)
        state = policy.initial_state(1)
        best = signals.metrics.val_accuracy
        for epoch in range(1, plan.epochs + 1):
            views = [EnvView(signals, {r.slot_id: r for r in reports})]
            masks = compute_masks(views, masks_config)
            out = policy.act(extractor.encode(views), masks, state, generator=generator, explain=True)
            state = out.state
            action = to_factored(out.actions[0])
            step = env.step(action)
            assert out.explanations is not None
            hub_slot = None if action.op is LifecycleOp.WAIT else plan.slots[action.slot]
            env.emitter.emit(
                ActionTakenPayload(
                    policy=policy_kind,
                    action=action,
                    success=step.action.success,
                    rejection_reason=step.action.reason,
                    valid_ops=out.explanations[0].valid_ops,
                    op_probabilities=None,
                ),
                slot_id=hub_slot,
            )
            signals, reports = step.signals, step.reports
            best = max(best, signals.metrics.val_accuracy)
            live = sum(
                1
                for r in reports
                if r.stage in (SeedStage.GERMINATED, SeedStage.TRAINING, SeedStage.BLENDING, SeedStage.HOLDING)
            )
            tally = env.tally()
            progress.update(
                f"episode {episode + 1}/{plan.episodes} epoch {epoch}/{plan.epochs} "
                f"acc {signals.metrics.val_accuracy:5.1f}% (best {best:5.1f}) seeds live {live} "
                f"fossilized {tally['fossilized']} pruned {tally['pruned']}"
            )
            if stop.requested:
                break
        if stop.requested:
            break
        outcome = env.outcome(reward_components=None)
        env.emitter.emit(EpisodeOutcomePayload(outcome=outcome))
        outcomes.append(outcome)
        # Host-only baseline: the same host, seeded alike, trained for the same epochs with every slot dormant.
        baseline_env = Environment(
            plan.task, data, plan.slots, TelemetryHub(f"{run_id}-baseline").emitter(0), plan.seed, plan.device
        )
        baseline_env.reset(episode)
        baseline = _host_only(baseline_env, plan.epochs, stop)
        if baseline is None:
            break
        baselines.append(baseline)
        progress.done(
            f"episode {episode + 1}/{plan.episodes}: accuracy {outcome.final_accuracy:.1f}% "
            f"(host-only {baselines[-1]:.1f}%), germinated {outcome.germinated}, fossilized "
            f"{outcome.fossilized}, pruned {outcome.pruned}, level changes {outcome.internal_level_changes}"
        )
    hub.emit(
        TrainingCompletedPayload(
            episodes_completed=len(baselines), wall_seconds=time.perf_counter() - started, interrupted=stop.requested
        )
    )
    hub.close()
    if stop.requested:
        progress.done("")
        return Interrupted(stop.describe(), f"episode {len(baselines) + 1}/{plan.episodes}")
    summary = RunSummary(
        run_id=run_id,
        task=plan.task.name,
        policy=policy_kind,
        episodes=plan.episodes,
        final_accuracy=statistics.fmean(o.final_accuracy for o in outcomes),
        baseline_accuracy=statistics.fmean(baselines),
        germinated=sum(o.germinated for o in outcomes),
        fossilized=sum(o.fossilized for o in outcomes),
        pruned=sum(o.pruned for o in outcomes),
        internal_level_changes=sum(o.internal_level_changes for o in outcomes),
        added_params=round(statistics.fmean(o.added_params for o in outcomes)),
        invalid_actions=sum(o.invalid_actions for o in outcomes),
        governor_rollbacks=sum(o.governor_rollbacks for o in outcomes),
        seed=plan.seed,
        epochs_per_episode=plan.epochs,
    )
    (plan.run_dir / "summary.json").write_text(dumps(summary) + "\n")
    return summary


def summary_table(summary: RunSummary, run_dir: Path) -> str:
    baseline = summary.baseline_accuracy
    rows = [
        ("final accuracy (mean of episodes)", f"{summary.final_accuracy:.2f}%"),
        ("host-only baseline, same epochs", "-" if baseline is None else f"{baseline:.2f}%"),
        ("difference", "-" if baseline is None else f"{summary.final_accuracy - baseline:+.2f} points"),
        ("seeds germinated / fossilized / pruned", f"{summary.germinated} / {summary.fossilized} / {summary.pruned}"),
        ("internal level changes", str(summary.internal_level_changes)),
        ("parameters added (mean per episode)", f"{summary.added_params:,}"),
        ("invalid actions / governor rollbacks", f"{summary.invalid_actions} / {summary.governor_rollbacks}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [
        f"run {summary.run_id}: {summary.task}, {summary.policy}, {summary.episodes} episode(s) x "
        f"{summary.epochs_per_episode} epochs, seed {summary.seed}"
    ]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    lines.append(f"  written: {run_dir}/config.json, events.jsonl, summary.json")
    return "\n".join(lines)


def cmd_train_heuristic(args: argparse.Namespace) -> int:
    plan = plan_run(args)
    if args.tui:
        return train_with_tui(args, plan.run_dir)
    with STOP.armed():
        try:
            result = run_heuristic(plan, Progress(sys.stderr))
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
    print(f"{'task':<12} {'topology':<12} {'host params':>11}  {'epochs':>6}  slots (default marked *)  description")
    for task in TASKS.values():
        host = task.build_host()
        params = sum(p.numel() for p in {id(p): p for p in host.parameters()}.values())
        slots = " ".join(
            f"{s.slot_id}{'*' if s.slot_id in task.config.default_slots else ''}" for s in host.injection_specs()
        )
        print(
            f"{task.name:<12} {task.config.topology.value:<12} {params:>11,}  {task.config.episode_length:>6}  "
            f"{slots:<24}  {task.description}"
        )
    return 0
