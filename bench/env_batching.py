"""Environments stepped together vs the same environments stepped one at a time, on identical workloads (issue 19:
8 environments >= 2.0x the env-steps/s of 1): the PPO numbers of env_scaling.py mix the batching with whatever each
environment's sampled actions grew, so here every environment follows a fixed script.

Two workloads on digits, 8 environments (seeds 0..7), 12 epochs: `dormant` (every slot empty: the stacked hosts
alone) and `seeded` (environment i germinates conv_light, conv_ladder, depthwise or channel_ladder at slot i % 3 in
epoch 1 and advances it every epoch: incubation, then blending). Together: one `step_together` over the 8. Alone:
each environment stepped by itself, one after the other, through the same function (a cohort of 1). Medians of
alternating repeats; the ratio is env-steps/s together over alone."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from esper.kasmina import GateThresholds, QualityGates
from esper.leyline import BlueprintAction, FactoredAction, LifecycleOp, TelemetryHub, canonical_action
from esper.tolaria import Environment, TaskSpec, TensorData, get_task, step_together

BLUEPRINTS = (
    BlueprintAction.CONV_LIGHT,
    BlueprintAction.CONV_LADDER,
    BlueprintAction.DEPTHWISE,
    BlueprintAction.CHANNEL_LADDER,
)
GATES = QualityGates(thresholds=GateThresholds(min_training_epochs=1, min_blending_epochs=1))


def action(workload: str, index: int, epoch: int) -> FactoredAction:
    if workload == "dormant":
        return canonical_action(LifecycleOp.WAIT)
    slot = index % 3
    if epoch == 1:
        return canonical_action(LifecycleOp.GERMINATE, slot, BLUEPRINTS[index % len(BLUEPRINTS)])
    return canonical_action(LifecycleOp.ADVANCE, slot)


def environments(task: TaskSpec, data: TensorData, n: int) -> list[Environment]:
    slots = tuple(task.config.default_slots)
    envs = [
        Environment(task, data, slots, TelemetryHub("b").emitter(i), i, torch.device("cpu"), gates=GATES)
        for i in range(n)
    ]
    for env in envs:
        env.reset(0)
    return envs


def run(task: TaskSpec, data: TensorData, workload: str, n: int, epochs: int, together: bool) -> float:
    """Env-steps per second of n environments over `epochs` epochs."""
    envs = environments(task, data, n)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        actions = [action(workload, i, epoch) for i in range(n)]
        if together:
            step_together(envs, actions)
        else:
            for env, chosen in zip(envs, actions, strict=True):
                step_together([env], [chosen])
    return n * epochs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    task = get_task("digits")
    data = task.load(None)
    run(task, data, "seeded", args.envs, 2, True)  # warm-up
    for workload in ("dormant", "seeded"):
        alone, together = [], []
        for _ in range(args.repeats):
            alone.append(run(task, data, workload, args.envs, args.epochs, together=False))
            together.append(run(task, data, workload, args.envs, args.epochs, together=True))
        a, t = statistics.median(alone), statistics.median(together)
        print(f"env_batching: {workload}, {args.envs} environments: alone {a:.1f}, together {t:.1f} env-steps/s")
        print(f"BENCH env-steps/s, {args.envs} envs together vs one at a time ({workload}) | {t / a:.2f}x | >= 2.0x")


if __name__ == "__main__":
    main()
