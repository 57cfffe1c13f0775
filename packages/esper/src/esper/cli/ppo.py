"""`esper train ppo`: learn Tamiyo with PPO (Simic's vectorized trainer), with checkpoints and `--resume`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from esper.cli.common import EXIT_INTERRUPTED, STOP, Interrupted, Progress, StopRequest, UsageError, read_json_file
from esper.cli.karn import train_with_tui
from esper.cli.train import DEFAULT_ROUNDS, RunPlan, default_run_dir, plan_run, summary_table, training_started
from esper.karn import JsonlSink, rewind_to_checkpoint
from esper.karn.contracts.run_summary import RunSummary
from esper.leyline import (
    ParallelMode,
    TelemetryHub,
    TelemetrySink,
    TrainingCompletedPayload,
    WireError,
    dumps,
    from_wire,
    to_wire,
)
from esper.simic import (
    CheckpointError,
    DistributedError,
    LoadedCheckpoint,
    PpoConfig,
    RewardConfig,
    RoundResult,
    TrainerConfig,
    VectorizedTrainer,
    WorkerGroup,
    check_reward_config,
    close_group,
    init_group,
    is_peer_failure,
    load_latest,
)
from esper.tamiyo import LstmPolicyConfig, MaskConfig
from esper.tolaria import DataError

CHECKPOINT = "checkpoint.pt"
SECTIONS: dict[str, type] = {"ppo": PpoConfig, "reward": RewardConfig, "policy": LstmPolicyConfig}


def _sections(data: dict[str, Any], source: str) -> dict[str, Any]:
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise UsageError(f"{source}: unknown section(s) {unknown}; allowed: {sorted(SECTIONS)}")
    try:
        return {name: from_wire(cls, data[name] if name in data else {}) for name, cls in SECTIONS.items()}
    except WireError as exc:  # a config section breaks its contract: name the field, exit 2
        raise UsageError(f"{source}: {exc}") from exc


def _fresh(args: argparse.Namespace) -> tuple[RunPlan, dict[str, Any], int, int]:
    raw = read_json_file("--config-json", args.config_json) if args.config_json is not None else {}
    if not isinstance(raw, dict):
        raise UsageError(f"--config-json: {args.config_json} must hold a JSON object")
    sections = _sections(raw, f"--config-json {args.config_json}")
    return plan_run(args), sections, args.envs, args.checkpoint_every


def _resumed(args: argparse.Namespace) -> tuple[RunPlan, dict[str, Any], int, int]:
    run_dir: Path = args.resume
    if not (run_dir / "config.json").is_file() or not (run_dir / CHECKPOINT).is_file():
        raise UsageError(f"--resume: {run_dir} has no config.json and {CHECKPOINT} to resume from")
    config = read_json_file("--resume", run_dir / "config.json")
    stored = argparse.Namespace(
        policy="ppo",
        task=config["task"]["name"],
        slots=config["slots"],
        blueprints=config["blueprints"],
        max_seeds=config["max_seeds"],
        seed=config["seed"],
        device=config["device"],
        data_dir=None if config["data_dir"] is None else Path(config["data_dir"]),
        run_dir=run_dir / "__validation_only__",  # the real directory exists; only the other flags are checked
        rounds=args.rounds if args.rounds is not None else config["rounds"],
        episode_length=config["episode_length"],
    )
    plan = dataclasses.replace(plan_run(stored), run_dir=run_dir)
    sections = _sections({name: config[name] for name in SECTIONS}, f"{run_dir}/config.json")
    return plan, sections, config["envs"], config["checkpoint_every"]


def _join_group(args: argparse.Namespace) -> WorkerGroup:
    """Join torchrun's process group and agree on the run directory (rank 0's: the default name has a timestamp)."""
    if args.tui:
        raise UsageError(
            "--tui watches a single-process run; with --distributed use `esper karn tui RUN` on rank 0's run"
        )
    local_rank = os.environ["LOCAL_RANK"] if "LOCAL_RANK" in os.environ else "0"
    if args.device.startswith("cuda"):
        args.device = f"cuda:{local_rank}"  # one GPU per process
    try:
        group = init_group(ParallelMode(args.distributed), torch.device(args.device), args.dist_timeout)
    except DistributedError as exc:  # not under torchrun: misuse, exit 2
        raise UsageError(str(exc)) from exc
    if args.resume is None:
        chosen = args.run_dir if args.run_dir is not None else default_run_dir(args.task, "ppo", args.seed)
        args.run_dir = group.broadcast(chosen)
    return group


def cmd_train_ppo(args: argparse.Namespace) -> int:
    group: WorkerGroup | None = None
    try:
        if args.distributed is not None:
            group = _join_group(args)
        plan, sections, envs, every = _resumed(args) if args.resume is not None else _fresh(args)
        for name, value in (("--envs", envs), ("--checkpoint-every", every)):
            if value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        if group is not None:
            group.local_envs(envs)  # environment-parallel: --envs must split evenly over the ranks
        check_reward_config(sections["reward"])
        data = plan.task.load(plan.data_dir)
    except (ValueError, DataError) as exc:  # misuse found below the CLI: report, exit 2, write nothing
        close_group()
        raise UsageError(str(exc)) from exc
    except UsageError:
        close_group()
        raise
    if args.tui:
        return train_with_tui(args, plan.run_dir)
    result: RunSummary | Interrupted | int
    with STOP.armed():
        if group is None:
            result = run_ppo(plan, sections, envs, every, resume=args.resume is not None, data=data)
        else:
            result = _run_distributed(plan, sections, envs, every, args.resume is not None, data, group)
    if isinstance(result, int):
        return result
    if isinstance(result, Interrupted):
        if group is None or group.is_main:
            print(
                f"esper train: {result.reason} at {result.where}; checkpoint saved: continue with "
                f"`esper train ppo --resume {plan.run_dir}`",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    if group is None or group.is_main:
        print(summary_table(result, plan.run_dir))
    return 0


def _run_distributed(
    plan: RunPlan, sections: dict[str, Any], envs: int, every: int, resume: bool, data: Any, group: WorkerGroup
) -> RunSummary | Interrupted | int:
    """run_ppo on one rank of a torchrun job; a lost peer ends this rank with one line and exit 1. The process
    group is always torn down here, whatever happened."""
    try:
        group.barrier()  # every rank has validated before rank 0 creates the run directory
        return run_ppo(plan, sections, envs, every, resume=resume, data=data, group=group)
    except RuntimeError as exc:  # gloo reports a lost peer as a plain RuntimeError; anything else is re-raised
        if not is_peer_failure(exc):
            raise  # a bug, not a lost peer
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"esper train: error: rank {group.rank}/{group.world_size}: the process group failed ({first_line}); "
            f"another rank probably died. Checkpoints so far are in {plan.run_dir}: resume with the same torchrun "
            f"command and --resume {plan.run_dir}",
            file=sys.stderr,
        )
        return 1
    finally:
        close_group()


def _load_checkpoint(run_dir: Path, events: Path, progress: Progress, main: bool) -> LoadedCheckpoint:
    """The run's latest usable checkpoint (the previous one when the latest is damaged, saying so), with the event
    log rewound to where that checkpoint was taken: the unfinished round's events go, and the resumed run writes
    them again."""
    try:
        loaded = load_latest(run_dir / CHECKPOINT)
    except CheckpointError as exc:  # neither checkpoint can be used: one line naming them, exit 2
        raise UsageError(f"--resume: {exc}") from exc
    if not main:
        return loaded
    if loaded.skipped is not None:
        progress.done(f"resume: {loaded.skipped}; using the previous checkpoint {loaded.path.name} instead")
    round_ = loaded.payload["round"]
    try:
        dropped = rewind_to_checkpoint(events, loaded.payload["events_bytes"], round_) if events.is_file() else 0
    except ValueError as exc:  # the log is shorter than its checkpoint says: not this run's log
        raise UsageError(f"--resume: {exc}") from exc
    if dropped:
        progress.done(f"resume: rewound {events.name} to the checkpoint of round {round_} ({dropped} bytes dropped)")
    return loaded


def _write_config(plan: RunPlan, sections: dict[str, Any], envs: int, every: int, group: WorkerGroup | None) -> None:
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "run_id": plan.run_dir.name,
        "policy": "ppo",
        "task": to_wire(plan.task.config),
        "slots": list(plan.slots),
        "blueprints": [b.name.lower() for b in plan.blueprints],
        "rounds": plan.episodes,
        "envs": envs,
        "episode_length": plan.epochs,
        "max_seeds": plan.max_seeds,
        "seed": plan.seed,
        "device": str(plan.device),
        "data_dir": None if plan.data_dir is None else str(plan.data_dir),
        "checkpoint_every": every,
        "distributed": None if group is None else group.mode.value,
        "world_size": 1 if group is None else group.world_size,
        **{name: to_wire(value) for name, value in sections.items()},
    }
    (plan.run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def run_ppo(
    plan: RunPlan,
    sections: dict[str, Any],
    envs: int,
    every: int,
    resume: bool,
    data: Any,
    group: WorkerGroup | None = None,
    stop: StopRequest = STOP,
) -> RunSummary | Interrupted:
    """One PPO run. Under torch.distributed every rank calls this; rank 0 alone writes the run directory (config,
    events of every rank, checkpoints, summary) and prints progress. A stop request ends the run at the next epoch
    boundary (every rank agrees on which): the unfinished round is dropped, the checkpoint of the last finished
    round is written, the log closes with TRAINING_COMPLETED(interrupted) and no summary.json is written."""
    main = group is None or group.is_main
    run_id = plan.run_dir.name
    events = plan.run_dir / "events.jsonl"
    progress = Progress(sys.stderr)
    loaded = _load_checkpoint(plan.run_dir, events, progress, main) if resume else None
    if main and not resume:
        _write_config(plan, sections, envs, every, group)
    sinks: tuple[TelemetrySink, ...] = (JsonlSink(events),)
    if not main:
        assert group is not None
        sinks = (group.relay_sink,) if group.mode is ParallelMode.ENVS else ()  # data-parallel: rank 0's events
    hub = TelemetryHub(run_id, sinks=sinks, rank=0 if group is None else group.rank)
    masks = MaskConfig(plan.slots, plan.task.config.topology, plan.blueprints, plan.max_seeds)
    trainer = VectorizedTrainer(
        TrainerConfig(
            task=plan.task,
            slots=plan.slots,
            masks=masks,
            n_envs=envs,
            episode_length=plan.epochs,
            seed=plan.seed,
            device=plan.device,
            ppo=sections["ppo"],
            reward=sections["reward"],
            policy=sections["policy"],
        ),
        data,
        hub,
        group,
    )
    if loaded is not None:
        trainer.restore(loaded.payload, loaded.path)
    if main:
        world, mode = (1, ParallelMode.NONE) if group is None else (group.world_size, group.mode)
        hub.emit(training_started(plan, "lstm", n_envs=envs, world_size=world, parallel_mode=mode))
    started = time.perf_counter()
    results: list[RoundResult] = []
    checkpoint = plan.run_dir / CHECKPOINT
    saved_round = trainer.round if loaded is not None else -1
    boundary = events.stat().st_size if main else 0  # the log's size at the last round boundary
    while trainer.round < plan.episodes:
        result = trainer.run_round(stop=lambda: stop.requested)
        if result is None:  # stopped mid-round: the unfinished round is dropped
            break
        results.append(result)
        boundary = events.stat().st_size if main else 0
        if main:
            progress.done(
                f"round {result.round}/{plan.episodes}: reward {result.mean_reward:+.3f}, accuracy "
                f"{result.mean_accuracy:.1f}%, update {result.update_seconds:.2f}s of {result.round_seconds:.1f}s"
            )
        if result.round % every == 0 or result.round == plan.episodes:
            trainer.save(checkpoint, boundary)
            saved_round = trainer.round
    if trainer.round < plan.episodes and saved_round != trainer.round:
        trainer.save(checkpoint, boundary)  # stopped early: the last finished round is resumable
    interrupted = trainer.round < plan.episodes
    if main:
        hub.emit(
            TrainingCompletedPayload(
                episodes_completed=len(results) * envs,
                wall_seconds=time.perf_counter() - started,
                interrupted=interrupted,
            )
        )
    hub.close()
    if interrupted:
        return Interrupted(stop.describe(), f"round {trainer.round + 1}/{plan.episodes}")
    tallies = [t for r in results for t in r.tallies]
    last = results[-1] if results else None
    summary = RunSummary(
        run_id=run_id,
        task=plan.task.name,
        policy="ppo",
        episodes=trainer.round * envs,
        final_accuracy=last.mean_accuracy if last is not None else 0.0,
        baseline_accuracy=None,
        germinated=sum(t["germinated"] for t in tallies),
        fossilized=sum(t["fossilized"] for t in tallies),
        pruned=sum(t["pruned"] for t in tallies),
        internal_level_changes=sum(t["internal_level_changes"] for t in tallies),
        added_params=round(statistics.fmean(last.added_params)) if last is not None else 0,
        invalid_actions=sum(t["invalid_actions"] for t in tallies),
        governor_rollbacks=sum(t["governor_rollbacks"] for t in tallies),
        seed=plan.seed,
        epochs_per_episode=plan.epochs,
    )
    if main:
        (plan.run_dir / "summary.json").write_text(dumps(summary) + "\n")
    return summary


__all__ = ["CHECKPOINT", "DEFAULT_ROUNDS", "cmd_train_ppo", "run_ppo"]
