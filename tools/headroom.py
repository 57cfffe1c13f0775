"""Headroom of a task: how far its host alone ends below the same host at twice the width, over seeds.

    uv run python tools/headroom.py --task digits_narrow --wide digits --seeds 0 1 2 3 4

Each run is the host-only baseline an Esper run trains beside its episodes (every slot dormant, the task's epochs,
the same seeding), so the numbers are those the experiment packs compare against. Prints a Markdown table with the
mean and 95 % CI of the final validation accuracy of each host and of the per-seed difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from esper.leyline import LifecycleOp, TelemetryHub, canonical_action
from esper.tolaria import Environment, TaskSpec, get_task

WAIT = canonical_action(LifecycleOp.WAIT)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def host_only(task: TaskSpec, seed: int) -> float:
    slots = tuple(task.config.default_slots)  # every slot dormant: exactly the baseline an Esper run trains
    env = Environment(task, task.load(None), slots, TelemetryHub("headroom").emitter(0), seed, torch.device("cpu"))
    env.reset(0)
    accuracy = 0.0
    for _ in range(task.config.episode_length):
        accuracy = env.step(WAIT).validation.accuracy
    return accuracy


def mean_ci(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.1f}"
    half = T_975[len(values) - 1] * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.1f} ± {half:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="the under-capacity task")
    parser.add_argument("--wide", required=True, help="the same task with the host at twice the width")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
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
        f"| {args.task} | {params[0]} (2x: {params[1]}) | {mean_ci(narrow)} | {mean_ci(wide)} | "
        f"{mean_ci([w - n for n, w in zip(narrow, wide, strict=True)])} |"
    )
    print("per seed:", [f"{n:.1f}/{w:.1f}" for n, w in zip(narrow, wide, strict=True)], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
