"""`esper train ppo`: learn Tamiyo with PPO (Simic's vectorized trainer), with checkpoints and `--resume`.

Flow: the flags (or, with --resume, the run's config.json) become a RunPlan -> rounds of the trainer (collect /
update / summarize) with a checkpoint every K rounds -> summary.json. Under torchrun (`--distributed`) every rank
runs this; rank 0 alone writes the run directory and prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from esper.cli.common import EXIT_INTERRUPTED, STOP, Interrupted, StopRequest, UsageError
from esper.cli.karn import train_with_tui
from esper.cli.plan import (
    RunPlan,
    default_run_dir,
    plan_from_flags,
    read_config,
    resolve,
    training_started,
    with_rounds,
    write_config,
)
from esper.cli.progress import Progress, progress_for
from esper.cli.record import summarize, summary_table, write_summary
from esper.cli.tensorboard import check_tensorboard_dir, tensorboard_sinks
from esper.karn import JsonlSink, read_events, rewind_to_checkpoint
from esper.karn.contracts.run_summary import RunSummary
from esper.leyline import (
    EpisodeOutcomePayload,
    ParallelMode,
    PolicyKind,
    TelemetryHub,
    TelemetrySink,
    TrainingCompletedPayload,
)
from esper.simic import (
    CheckpointError,
    DistributedError,
    LoadedCheckpoint,
    RoundResult,
    TrainerConfig,
    VectorizedTrainer,
    WorkerGroup,
    check_resumable,
    close_group,
    exit_rank,
    init_group,
    is_peer_failure,
    load_latest,
)
from esper.tolaria import DataError, TensorData

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True, slots=True)
class PpoStart:
    plan: RunPlan
    data: TensorData
    resume: bool
    group: WorkerGroup | None
    tensorboard: Path | None = None  # --tensorboard DIR: rank 0's live TensorBoard sink (not in the run's config)

    @property
    def main(self) -> bool:
        return self.group is None or self.group.is_main


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
        chosen = args.run_dir if args.run_dir is not None else default_run_dir(args.task, PolicyKind.PPO, args.seed)
        args.run_dir = group.broadcast(chosen)
    return group


def _plan(args: argparse.Namespace, group: WorkerGroup | None) -> RunPlan:
    if args.resume is None:
        parallel = (ParallelMode.NONE, 1) if group is None else (group.mode, group.world_size)
        return plan_from_flags(args, PolicyKind.PPO, parallel)
    run_dir: Path = args.resume
    if not (run_dir / CHECKPOINT).is_file():
        raise UsageError(f"--resume: {run_dir} has no {CHECKPOINT} to resume from")
    plan = resolve(read_config(run_dir), run_dir, f"--resume {run_dir}/config.json")
    if plan.config.policy is not PolicyKind.PPO:
        raise UsageError(f"--resume: {run_dir} is a {plan.config.policy.value} run; only PPO runs resume")
    return with_rounds(plan, args.rounds) if args.rounds is not None else plan


def _start(args: argparse.Namespace) -> PpoStart:
    """Everything checked before anything is written (a misuse leaves the process group too)."""
    group = None
    try:
        tensorboard = check_tensorboard_dir(args.tensorboard)
        group = _join_group(args) if args.distributed is not None else None
        plan = _plan(args, group)
        if group is not None:
            group.local_envs(plan.ppo.envs)  # environment-parallel: --envs must split evenly over the ranks
        return PpoStart(plan, plan.task.load(plan.data_dir), args.resume is not None, group, tensorboard)
    except (ValueError, DataError) as exc:  # misuse found below the CLI: exit 2, nothing written
        close_group()
        raise UsageError(str(exc)) from exc
    except UsageError:  # re-raised unchanged: only the process group must be left first
        close_group()
        raise


def cmd_train_ppo(args: argparse.Namespace) -> int:
    start = _start(args)
    if args.tui:
        return train_with_tui(args, start.plan.run_dir)
    if start.group is None:
        with STOP.armed(), progress_for(sys.stderr) as progress:
            return _finish(start, run_ppo(start, progress))
    with STOP.armed(), progress_for(sys.stderr if start.main else None) as progress:  # rank 0 alone shows it
        code = _finish(start, _run_distributed(start, start.group, progress))
    exit_rank(code)  # a rank of a torchrun job ends here, without the interpreter's teardown (exit_rank)


def _finish(start: PpoStart, result: RunSummary | Interrupted | int) -> int:
    """Say how the run ended (rank 0) and return the exit code."""
    if isinstance(result, int):
        return result
    if isinstance(result, Interrupted):
        if start.main:
            print(
                f"esper train: {result.reason} at {result.where}; checkpoint saved: continue with "
                f"`esper train ppo --resume {start.plan.run_dir}`",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    if start.main:
        print(summary_table(result, start.plan.run_dir))
    return 0


def _run_distributed(start: PpoStart, group: WorkerGroup, progress: Progress) -> RunSummary | Interrupted | int:
    """run_ppo on one rank of a torchrun job; a lost peer ends this rank with one line and exit 1. The process
    group is always torn down here, whatever happened."""
    try:
        group.barrier()  # every rank has validated before rank 0 creates the run directory
        result = run_ppo(start, progress)
        # Leave together: a rank that tears gloo down while its peer is still finishing a collective or its
        # teardown can abort at exit (seen once here as SIGABRT on rank 1 of a 2-rank run that had completed).
        group.barrier()
        return result
    except RuntimeError as exc:  # gloo reports a lost peer as a plain RuntimeError; anything else is re-raised
        if not is_peer_failure(exc):
            raise  # a bug, not a lost peer
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"esper train: error: rank {group.rank}/{group.world_size}: the process group failed ({first_line}); "
            f"another rank probably died. Checkpoints so far are in {start.plan.run_dir}: resume with the same "
            f"torchrun command and --resume {start.plan.run_dir}",
            file=sys.stderr,
        )
        return 1
    finally:
        close_group()


def _load_checkpoint(start: PpoStart, events: Path, progress: Progress) -> LoadedCheckpoint:
    """The run's latest usable checkpoint (the previous one when the latest is damaged, saying so), with the event
    log rewound to where that checkpoint was taken: the unfinished round's events go, and the resumed run writes
    them again. A checkpoint this run cannot continue is refused before anything is rewound."""
    try:
        loaded = load_latest(start.plan.run_dir / CHECKPOINT)
        check_resumable(loaded.payload, loaded.path, 1 if start.group is None else start.group.world_size)
    except (CheckpointError, ValueError) as exc:  # unusable or incompatible: one line naming it, exit 2
        raise UsageError(f"--resume: {exc}") from exc
    main = start.main
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


def _trainer(start: PpoStart, hub: TelemetryHub) -> VectorizedTrainer:
    plan, ppo = start.plan, start.plan.ppo
    config = TrainerConfig(
        task=plan.task,
        slots=plan.slot_config,
        masks=plan.masks,
        n_envs=ppo.envs,
        episode_length=plan.epochs,
        seed=plan.seed,
        device=plan.device,
        ppo=ppo.ppo,
        reward=plan.config.reward,
        policy=ppo.policy,
        compile_backend=plan.compile_backend,
        save_models=plan.models_dir,
    )
    return VectorizedTrainer(config, start.data, hub, start.group)


def _hub(start: PpoStart, events: Path) -> TelemetryHub:
    """Rank 0 writes events.jsonl (and, with --tensorboard, TensorBoard); the other ranks relay theirs to it (ENVS)
    or repeat its own (DATA: none)."""
    group = start.group
    sinks: tuple[TelemetrySink, ...] = (JsonlSink(events),)
    if group is not None and not group.is_main:
        sinks = (group.relay_sink,) if group.mode is ParallelMode.ENVS else ()
    else:
        sinks += tensorboard_sinks(start.tensorboard)
    return TelemetryHub(start.plan.config.run_id, sinks=sinks, rank=0 if group is None else group.rank)


def run_ppo(start: PpoStart, progress: Progress, stop: StopRequest = STOP) -> RunSummary | Interrupted:
    """One PPO run. A stop request ends it at the next epoch boundary (every rank agrees on which): the unfinished
    round is dropped, the checkpoint of the last finished round is written, the log closes with
    TRAINING_COMPLETED(interrupted) and no summary.json is written."""
    plan = start.plan
    events = plan.run_dir / "events.jsonl"
    loaded = _load_checkpoint(start, events, progress) if start.resume else None
    if start.main:
        write_config(plan)
    hub = _hub(start, events)
    trainer = _trainer(start, hub)
    if loaded is not None:
        trainer.restore(loaded.payload, loaded.path)
    if start.main:
        hub.emit(training_started(plan, n_envs=plan.ppo.envs))
    started = time.perf_counter()
    results = _rounds(start, trainer, events, progress, stop, saved_round=-1 if loaded is None else trainer.round)
    interrupted = trainer.round < plan.ppo.rounds
    if start.main:
        wall = time.perf_counter() - started
        completed = sum(len(r.outcomes) for r in results)
        hub.emit(TrainingCompletedPayload(episodes_completed=completed, wall_seconds=wall, interrupted=interrupted))
    hub.close()
    if interrupted:
        return Interrupted(stop.describe(), f"round {trainer.round + 1}/{plan.ppo.rounds}")
    outcomes = [o for r in results for o in r.outcomes]
    if start.resume and start.main:  # the rounds before the resume too: the rewound log holds each exactly once
        outcomes = [e.payload.outcome for e in read_events(events) if isinstance(e.payload, EpisodeOutcomePayload)]
    summary = summarize(plan, outcomes, results[-1].outcomes if results else (), None)
    if start.main:
        write_summary(plan, summary)
    return summary


def _rounds(
    start: PpoStart,
    trainer: VectorizedTrainer,
    events: Path,
    progress: Progress,
    stop: StopRequest,
    saved_round: int,
) -> list[RoundResult]:
    """Rounds until the plan's last or a stop request, a checkpoint every K rounds and at the end; a stop also
    checkpoints the last finished round (with the log's size at that round boundary, so resume drops the rest)."""
    ppo, checkpoint = start.plan.ppo, start.plan.run_dir / CHECKPOINT
    results: list[RoundResult] = []
    bar = progress.bar("rounds", ppo.rounds, completed=trainer.round)  # a resumed run starts at its checkpoint
    boundary = events.stat().st_size if start.main else 0  # the log's size at the last round boundary
    while trainer.round < ppo.rounds:
        result = trainer.run_round(stop=lambda: stop.requested)
        if result is None:  # stopped mid-round: the unfinished round is dropped
            break
        results.append(result)
        boundary = events.stat().st_size if start.main else 0
        steps = len(result.outcomes) * start.plan.epochs / result.round_seconds  # every rank's environments
        bar.update(  # rank 0 alone prints: the progress of the other ranks shows nothing
            result.round,
            f"{steps:,.1f} env-steps/s, mean reward {result.mean_reward:+.3f}",
            line=f"round {result.round}/{ppo.rounds}: reward {result.mean_reward:+.3f}, accuracy "
            f"{result.mean_accuracy:.1f}%, update {result.update_seconds:.2f}s of {result.round_seconds:.1f}s",
        )
        if result.round % ppo.checkpoint_every == 0 or result.round == ppo.rounds:
            trainer.save(checkpoint, boundary)
            saved_round = trainer.round
    if trainer.round < ppo.rounds and saved_round != trainer.round:
        trainer.save(checkpoint, boundary)  # stopped early: the last finished round is resumable
    bar.close()
    return results
