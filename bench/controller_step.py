"""Controller logic after validation, per environment-epoch (DESIGN.md section 7: <= 1 ms): turning the policy's
action into a FactoredAction, the reward with all its components, and the step's telemetry (ACTION_TAKEN,
REWARD_COMPUTED, EPOCH_COMPLETED with its system metrics read, validated and appended to events.jsonl). Host training
and validation excluded.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from esper.karn import JsonlSink
from esper.leyline import (
    ActionTakenPayload,
    BlueprintAction,
    EpochCompletedPayload,
    LifecycleOp,
    PolicyKind,
    RewardComputedPayload,
    TelemetryHub,
    Topology,
    slot_config,
)
from esper.simic import InternalOpWindow, RewardConfig, StepOutcome, compute_reward
from esper.tamiyo import EnvView, FeatureExtractor, MaskConfig, RandomPolicy, compute_masks
from esper.tolaria import Environment, get_task
from esper.tolaria.system import read_system_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    task = get_task("digits")
    slots = ("r0c0", "r0c1", "r0c2")
    with tempfile.TemporaryDirectory() as tmp:
        hub = TelemetryHub("bench", sinks=(JsonlSink(Path(tmp) / "events.jsonl"),))
        env = Environment(task, task.load(None), slots, hub.emitter(0), seed=0, device=torch.device("cpu"))
        signals, before = env.reset(0)
        policy = RandomPolicy(len(slots))
        config = MaskConfig(slots, Topology.CNN, (BlueprintAction.CONV_LADDER,))
        # A representative step: germinate and advance a ladder so the reports carry a live seed.
        views = [EnvView(signals, {})]
        out = policy.act(
            FeatureExtractor(slot_config(task.build_host().injection_specs(), slots), 1).encode(views),
            compute_masks(views, config),
            None,
            generator=torch.Generator().manual_seed(0),
            explain=True,
        )
        step = env.step(out.decisions[0])
        after = step.reports
        reward_config, window = RewardConfig(), InternalOpWindow(10)
        explanation = out.explanations[0]
        times = []
        for _ in range(args.steps):
            started = time.perf_counter()
            action = out.decisions[0]
            outcome = StepOutcome(
                op=action.op,
                success=True,
                before=before,
                after=after,
                host_params=env.host_params,
                val_accuracy=step.validation.accuracy,
                terminal=False,
                rolled_back=False,
            )
            window.record(action.op, True)
            reward = compute_reward(reward_config, 0.995, outcome, window)
            env.emitter.emit(
                ActionTakenPayload(
                    policy=PolicyKind.HEURISTIC,
                    action=action,
                    success=True,
                    rejection_reason=None,
                    gate_refused=False,
                    valid_ops=explanation.valid_ops,
                    op_probabilities=explanation.op_probabilities,
                )
            )
            env.emitter.emit(RewardComputedPayload(op=LifecycleOp(action.op), components=reward))
            env.emitter.emit(
                EpochCompletedPayload(
                    train_loss=0.5,
                    train_accuracy=80.0,
                    val_loss=0.6,
                    val_accuracy=79.0,
                    host_params=env.host_params,
                    seed_params=0,
                    live_seeds=1,
                    fossilized_seeds=0,
                    epoch_seconds=0.05,
                    governor_rollback=False,
                    seeds=(),
                    system=read_system_metrics(env.device),
                )
            )
            times.append(time.perf_counter() - started)
        hub.close()
    print(
        f"controller_step: reward + 3 validated events per env-epoch: median "
        f"{statistics.median(times) * 1000:.3f} ms (target <= 1 ms for all controller logic)"
    )
    print(f"BENCH controller logic per env-epoch | {statistics.median(times) * 1000:.3f} ms | <= 1 ms")


if __name__ == "__main__":
    main()
