"""Headroom of a task: how far its host alone ends below the same host at twice the width, over seeds; and, given
an experiment pack run on the task (or any directory of runs named ARM-sSEED), how much of that headroom each arm
recovers.

    uv run python tools/headroom.py --task digits_narrow --wide digits --seeds 0 1 2 3 4
    uv run python tools/headroom.py --task digits_narrow --wide digits --pack runs/experiments/phase0_narrow-quick-...

Each run is the host-only baseline an Esper run trains beside its episodes (every slot dormant, the task's epochs,
the same seeding), so the numbers are those the experiment packs compare against. Prints a Markdown table with the
mean and 95 % CI of the final validation accuracy of each host and of the per-seed difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from esper.karn import RunStore, format_mean_ci
from esper.leyline import LifecycleOp, TelemetryHub, canonical_action
from esper.tolaria import Environment, TaskSpec, get_task

WAIT = canonical_action(LifecycleOp.WAIT)


def host_only(task: TaskSpec, seed: int) -> float:
    slots = tuple(task.config.default_slots)  # every slot dormant: exactly the baseline an Esper run trains
    env = Environment(task, task.load(None), slots, TelemetryHub("headroom").emitter(0), seed, torch.device("cpu"))
    env.reset(0)
    accuracy = 0.0
    for _ in range(task.config.episode_length):
        accuracy = env.step(WAIT).validation.accuracy
    return accuracy


def recovery(pack_dir: Path, narrow: dict[int, float], wide: dict[int, float], wide_added: int) -> None:
    """Per arm of the pack (its seeds must be among the measured ones): final accuracy, gain over host-only, share of
    the headroom recovered ((arm - host-only) / (2x host - host-only), per seed), parameters added, governor prunes
    of seeds whose counterfactual contribution was positive, rollbacks."""
    arms: dict[str, list[dict[str, Any]]] = {}  # arm -> the summary.json of each of its runs (`ARM-sSEED`)
    for run_dir in sorted(pack_dir.glob("*-s*")):
        arm = run_dir.name.rsplit("-s", 1)[0]
        arms.setdefault(arm, []).append(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
    print(f"\n2x-width host adds {wide_added} parameters.\n")
    print(
        "| arm | final accuracy (%) | gain over host-only (points) | headroom recovered per seed | mean gain / mean "
        "headroom | params added | governor prunes of helping seeds | rollbacks |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arm, rows in arms.items():
        seeds = [row["seed"] for row in rows]
        final = [row["final_accuracy"] for row in rows]
        gain = [row["final_accuracy"] - narrow[s] for row, s in zip(rows, seeds, strict=True)]
        share = [g / (wide[s] - narrow[s]) for g, s in zip(gain, seeds, strict=True)]
        added = [row["added_params"] for row in rows]
        prunes = rollbacks = 0
        for seed in seeds:
            store = RunStore(pack_dir / f"{arm}-s{seed}")
            prunes += store.query(
                "SELECT count(*) FROM seed_lifecycle WHERE event_type = 'SEED_PRUNED' "
                "AND prune_initiator = 'governor' AND counterfactual_contribution > 0"
            ).rows[0][0]
            rollbacks += store.query("SELECT count(*) FROM governor_rollbacks").rows[0][0]
        headroom = statistics.fmean(wide[s] - narrow[s] for s in seeds)
        print(
            f"| {arm} | {format_mean_ci(final, 1)} | {format_mean_ci(gain, 1)} | {format_mean_ci(share, 2)} "
            f"| {statistics.fmean(gain) / headroom:.2f} | {format_mean_ci(added, 0)} | {prunes} | {rollbacks} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="the under-capacity task")
    parser.add_argument("--wide", required=True, help="the same task with the host at twice the width")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--pack", type=Path, help="an experiment pack's output directory on --task: recovery per arm")
    args = parser.parse_args()
    narrow_task, wide_task = get_task(args.task), get_task(args.wide)
    narrow = [host_only(narrow_task, s) for s in args.seeds]
    wide = [host_only(wide_task, s) for s in args.seeds]
    params = [sum(p.numel() for p in t.build_host().parameters()) for t in (narrow_task, wide_task)]
    print(
        f"| task | host params | host-only accuracy (%), {len(args.seeds)} seeds | 2x-width host | headroom (points) |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {args.task} | {params[0]} (2x: {params[1]}) | {format_mean_ci(narrow, 1)} | {format_mean_ci(wide, 1)} | "
        f"{format_mean_ci([w - n for n, w in zip(narrow, wide, strict=True)], 1)} |"
    )
    print("per seed:", [f"{n:.1f}/{w:.1f}" for n, w in zip(narrow, wide, strict=True)], file=sys.stderr)
    if args.pack is not None:
        recovery(
            args.pack,
            dict(zip(args.seeds, narrow, strict=True)),
            dict(zip(args.seeds, wide, strict=True)),
            params[1] - params[0],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
