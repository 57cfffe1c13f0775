"""Karn on a PPO-sized event log: reading + validating it, loading it into DuckDB, the analytics views the gates
read, folding it for the live dashboards, and writing the report. A log of 4 envs x 25 episodes x 60 epochs with a
decision and a reward per epoch (18k events, about the size of a 25-round PPO run) is written by the real hub."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from esper.cli.provenance import provenance
from esper.karn import JsonlSink, RunStore, evaluate
from esper.karn.eventlog import read_event_log
from esper.karn.live import LiveRun
from esper.karn.report import build_report
from esper.leyline import (
    ActionTakenPayload,
    EpochCompletedPayload,
    InjectionSpec,
    LifecycleOp,
    ParallelMode,
    PolicyKind,
    RewardComponents,
    RewardComputedPayload,
    SurfaceType,
    SystemMetrics,
    TelemetryHub,
    Topology,
    TrainingStartedPayload,
    canonical_action,
    slot_config,
)

# The digits host's three block-end slots (channels 4, 8, 16).
SLOTS = slot_config(
    [
        InjectionSpec(slot_id=f"r0c{i}", channels=4 << i, surface=SurfaceType.BLOCK_END, order=i, position=(i + 1) / 3)
        for i in range(3)
    ],
    ("r0c0", "r0c1", "r0c2"),
)


def write_log(path: Path, envs: int, episodes: int, epochs: int) -> None:
    hub = TelemetryHub("bench", sinks=(JsonlSink(path),))
    hub.emit(
        TrainingStartedPayload(
            task="digits",
            policy=PolicyKind.PPO,
            topology=Topology.CNN,
            slot_config=SLOTS,
            blueprints=("conv_ladder",),
            n_envs=envs,
            episode_length=epochs,
            max_seeds=None,
            seed=0,
            device="cpu",
            host_params=1702,
            world_size=1,
            parallel_mode=ParallelMode.NONE,
            provenance=provenance(),
        )
    )
    action = canonical_action(LifecycleOp.WAIT)
    parts = dict.fromkeys(
        (
            "contribution",
            "rent",
            "alpha_shock",
            "pbrs",
            "intervention_cost",
            "thrash_penalty",
            "terminal_bonus",
            "governor_penalty",
            "total",
        ),
        0.0,
    )
    for episode in range(episodes):
        emitters = [hub.emitter(env) for env in range(envs)]
        for emitter in emitters:
            emitter.start_episode(episode)
        for epoch in range(1, epochs + 1):
            for emitter in emitters:
                emitter.set_epoch(epoch)
                emitter.emit(
                    EpochCompletedPayload(
                        train_loss=1.0,
                        train_accuracy=50.0,
                        val_loss=1.0,
                        val_accuracy=50.0,
                        host_params=1702,
                        seed_params=0,
                        live_seeds=0,
                        fossilized_seeds=0,
                        epoch_seconds=0.1,
                        governor_rollback=False,
                        seeds=(),
                        system=SystemMetrics(rss_mb=512.0, cpu_seconds=float(epoch), cuda_peak_mb=None),
                    )
                )
                emitter.emit(
                    ActionTakenPayload(
                        policy=PolicyKind.PPO,
                        action=action,
                        success=True,
                        rejection_reason=None,
                        gate_refused=False,
                        valid_ops=(LifecycleOp.WAIT,),
                        op_probabilities=None,
                    )
                )
                emitter.emit(RewardComputedPayload(op=LifecycleOp.WAIT, components=RewardComponents(**parts)))
    hub.close()


def timed(label: str, rows: list[tuple[str, float]], fn: object) -> object:
    start = time.perf_counter()
    result = fn()  # type: ignore[operator]
    rows.append((label, time.perf_counter() - start))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "bench"
        rows: list[tuple[str, float]] = []
        timed(
            "write (validate + append, real hub)",
            rows,
            lambda: write_log(run_dir / "events.jsonl", args.envs, args.episodes, args.epochs),
        )
        events = len(read_event_log(run_dir / "events.jsonl").events)
        timed("read + validate every line", rows, lambda: read_event_log(run_dir / "events.jsonl"))
        store = timed("RunStore: read + DuckDB load + views", rows, lambda: RunStore(run_dir))
        assert isinstance(store, RunStore)
        timed("evaluate all gates (no control)", rows, lambda: evaluate(store))
        timed("LiveRun: fold the whole log", rows, lambda: LiveRun(run_dir).refresh())
        timed("report HTML", rows, lambda: build_report(store))
    print(f"karn on {events} events ({args.envs} envs x {args.episodes} episodes x {args.epochs} epochs)")
    for label, seconds in rows:
        print(f"  {label:<40} {seconds:7.3f} s  {seconds / events * 1e6:7.1f} us/event")
    load = dict(rows)["RunStore: read + DuckDB load + views"]
    print(f"BENCH Karn RunStore load ({events} events) | {load:.2f} s | interactive")


if __name__ == "__main__":
    main()
