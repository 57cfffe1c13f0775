"""`esper evaluate RUN [--seeds ...] [--task T] [--episodes N] [--epochs N] [--out DIR]`: a trained PPO policy,
judged on seeds it never trained on.

The policy of RUN's latest checkpoint acts deterministically (the most probable valid action, no learning) in one
ordinary run directory per seed (OUT/s<seed>/: config.json with `evaluates` naming the checkpoint, events.jsonl,
summary.json with the host-only baseline of the same seed), so evaluations are read, compared and gated like any
other run. A training environment i of RUN had seed `RUN's seed + 1000 * i`; an evaluation seed among those is
refused (exit 2): trained and evaluation seeds never mix.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path

from esper.cli.common import EXIT_INTERRUPTED, STOP, Interrupted, UsageError
from esper.cli.plan import RunPlan, read_config, resolve
from esper.cli.ppo import CHECKPOINT
from esper.cli.progress import progress_for
from esper.cli.train import run_policy
from esper.karn import format_mean_ci
from esper.karn.contracts.run_summary import RunSummary
from esper.leyline import PolicyKind
from esper.simic import CheckpointError, RunConfig, load_trained_policy
from esper.tolaria import TaskConfig, get_task

DEFAULT_SEEDS = 5
FIRST_DEFAULT_SEED = 10_000  # far from the small seeds training runs use


def training_seeds(config: RunConfig) -> frozenset[int]:
    """The environment seeds a PPO run trained on (environment i of the run has seed `seed + 1000 * i`)."""
    assert config.ppo is not None
    return frozenset(config.seed + 1000 * i for i in range(config.ppo.envs))


def evaluation_seeds(requested: list[int] | None, trained: frozenset[int]) -> tuple[int, ...]:
    if requested is None:
        seeds = [s for s in range(FIRST_DEFAULT_SEED, FIRST_DEFAULT_SEED + 2 * DEFAULT_SEEDS) if s not in trained]
        return tuple(seeds[:DEFAULT_SEEDS])
    if len(set(requested)) != len(requested) or any(s < 0 for s in requested):
        raise UsageError(f"--seeds: distinct non-negative integers, got {requested}")
    mixed = sorted(set(requested) & trained)
    if mixed:
        raise UsageError(
            f"--seeds: {mixed} trained the policy (training seeds {sorted(trained)}); evaluate on other seeds"
        )
    return tuple(requested)


def _trained_run(run: Path) -> RunConfig:
    config = read_config(run)
    if config.policy is not PolicyKind.PPO or config.evaluates is not None:
        what = "an evaluation" if config.evaluates is not None else f"a {config.policy.value} run"
        raise UsageError(f"RUN: {run} is {what}; evaluate a PPO training run (esper train ppo)")
    return config


def _task_config(trained: RunConfig, name: str | None) -> TaskConfig:
    """The trained run's task, or another task of the same topology whose host has the run's slots."""
    if name is None:
        return trained.task
    try:
        task = get_task(name)
    except ValueError as exc:  # unknown task name, with the list of tasks
        raise UsageError(f"--task: {exc}") from exc
    if task.config.topology is not trained.task.topology:
        raise UsageError(
            f"--task: {name} is a {task.config.topology.value} task; the policy was trained on "
            f"{trained.task.topology.value} ({trained.task.name})"
        )
    available = {spec.slot_id for spec in task.build_host().injection_specs()}
    missing = [s for s in trained.slots if s not in available]
    if missing:
        raise UsageError(f"--task: {name} has no slot(s) {missing}; the policy acts on {list(trained.slots)}")
    return task.config


def evaluation_config(
    trained: RunConfig,
    checkpoint: Path,
    seed: int,
    run_id: str,
    episodes: int,
    epochs: int | None = None,
    task: TaskConfig | None = None,
) -> RunConfig:
    """The RunConfig of one evaluation: the trained run's slots, blueprints, reward and policy section, on `seed`,
    with its policy taken from `checkpoint`."""
    return dataclasses.replace(
        trained,
        run_id=run_id,
        task=task if task is not None else trained.task,
        episodes=episodes,
        episode_length=epochs if epochs is not None else trained.episode_length,
        seed=seed,
        evaluates=str(checkpoint),
    )


def evaluation_plans(args: argparse.Namespace) -> list[RunPlan]:
    """One resolved RunPlan per evaluation seed (every flag and the checkpoint checked; nothing written)."""
    run: Path = args.run
    trained = _trained_run(run)
    assert trained.ppo is not None
    try:
        policy = load_trained_policy(run / CHECKPOINT, len(trained.slots), trained.ppo.policy)
    except (CheckpointError, ValueError) as exc:  # no usable checkpoint, or one of another observation version
        raise UsageError(f"RUN: {exc}") from exc
    for flag, value in (("--episodes", args.episodes), ("--epochs", args.epochs)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    seeds = evaluation_seeds(args.seeds, training_seeds(trained))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out: Path = args.out if args.out is not None else run.parent / f"{run.name}-eval-{stamp}"
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out: {out} exists and is not empty")
    task = _task_config(trained, args.task)
    plans = []
    for seed in seeds:
        config = evaluation_config(
            trained, policy.path, seed, f"{run.name}-eval-s{seed}", args.episodes, args.epochs, task
        )
        plans.append(resolve(config, out / f"s{seed}", f"evaluation of {run}"))
    return plans


def cmd_evaluate(args: argparse.Namespace) -> int:
    plans = evaluation_plans(args)
    summaries: list[RunSummary] = []
    with STOP.armed(), progress_for(sys.stderr) as progress:
        bar = progress.bar("seeds", len(plans))  # each seed's run opens its bars inside it
        for i, plan in enumerate(plans):
            bar.update(i, f"seed {plan.seed}", line=f"[{i + 1}/{len(plans)}] seed {plan.seed} -> {plan.run_dir}")
            result = run_policy(plan, progress)
            if isinstance(result, Interrupted):
                print(
                    f"esper evaluate: {result.reason} at seed {plan.seed}, {result.where}; {len(summaries)} of "
                    f"{len(plans)} seeds finished in {plan.run_dir.parent}",
                    file=sys.stderr,
                )
                return EXIT_INTERRUPTED
            summaries.append(result)
    print(f"{'seed':>6}  {'final acc':>9}  {'host-only':>9}  {'difference':>10}  {'added params':>12}")
    for plan, s in zip(plans, summaries, strict=True):
        assert s.baseline_accuracy is not None  # every finished evaluation episode trained its baseline
        print(
            f"{plan.seed:>6}  {s.final_accuracy:>8.2f}%  {s.baseline_accuracy:>8.2f}%  "
            f"{s.final_accuracy - s.baseline_accuracy:>+10.2f}  {s.added_params:>12,}"
        )
    differences = [s.final_accuracy - s.baseline_accuracy for s in summaries if s.baseline_accuracy is not None]
    print(f"mean ± 95 % CI: final accuracy {format_mean_ci([s.final_accuracy for s in summaries])}%, ", end="")
    print(f"difference from host-only {format_mean_ci(differences)} points")
    print(f"runs: {plans[0].run_dir.parent}")
    return 0
