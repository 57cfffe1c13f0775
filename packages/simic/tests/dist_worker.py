"""One rank of the scale-out tests (run as a script by test_distributed.py, with torchrun's environment variables).

dist_worker.py envs OUT   environment-parallel: one PPO round with 2 envs over the ranks; dumps the policy
dist_worker.py data OUT   data-parallel: one environment whose ranks are handed different actions; dumps its
                          topology and weights
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch

from esper.leyline import (
    BlueprintAction,
    LifecycleOp,
    ListSink,
    ParallelMode,
    TelemetryHub,
    Topology,
    canonical_action,
    slot_config,
)
from esper.simic import PpoConfig, RewardConfig, TrainerConfig, VectorizedTrainer, close_group, exit_rank, init_group
from esper.tamiyo import LstmPolicyConfig, MaskConfig
from esper.tolaria import Environment, get_task

SLOTS = ("r0c0", "r0c1", "r0c2")


def digest(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def environment_parallel(out: str) -> None:
    group = init_group(ParallelMode.ENVS, torch.device("cpu"), timeout_seconds=60)
    task = get_task("digits")
    config = TrainerConfig(
        task=task,
        slots=slot_config(task.build_host().injection_specs(), SLOTS),
        masks=MaskConfig(SLOTS, Topology.CNN, (BlueprintAction.CONV_LADDER, BlueprintAction.CONV_LIGHT)),
        n_envs=2,
        episode_length=4,
        seed=3,
        device=torch.device("cpu"),
        ppo=PpoConfig(minibatches=2, update_epochs=2),
        reward=RewardConfig(),
        policy=LstmPolicyConfig(),
    )
    sink = ListSink()
    hub = TelemetryHub("dist", sinks=(sink,) if group.is_main else (group.relay_sink,), rank=group.rank)
    torch.manual_seed(100 + group.rank)  # different global RNG per rank: the trainer must not depend on it
    trainer = VectorizedTrainer(config, task.load(None), hub, group)
    before = digest(list(trainer.policy.network.parameters()))
    result = trainer.run_round()
    after = digest(list(trainer.policy.network.parameters()))
    normalizer = digest([trainer.normalizer.mean, trainer.normalizer.var])
    hub.close()
    report = {
        "rank": group.rank,
        "local_envs": [env.emitter.env_id for env in trainer.envs],
        "before": before,
        "after": after,
        "normalizer": normalizer,
        "accuracies": result.mean_accuracy,
        "events": [(e.rank, e.env_id, e.event_type.name) for e in sink.events],
    }
    close_group()
    with open(out, "w") as f:
        json.dump(report, f)


def data_parallel(out: str) -> None:
    group = init_group(ParallelMode.DATA, torch.device("cpu"), timeout_seconds=60)
    task = get_task("digits")
    env = Environment(
        task, task.load(None), SLOTS, TelemetryHub("dist").emitter(0), 5, torch.device("cpu"), data_parallel=True
    )
    env.reset(0)
    # Rank 0 germinates a ladder and grows it; rank 1 is handed WAITs and a different blueprint: rank 0's decisions
    # must win, and training on different batch shards must still leave identical weights.
    plans = {
        0: [(LifecycleOp.GERMINATE, BlueprintAction.CONV_LADDER)] + [(LifecycleOp.WAIT, BlueprintAction.NOOP)] * 3,
        1: [(LifecycleOp.GERMINATE, BlueprintAction.CONV_LIGHT)] + [(LifecycleOp.WAIT, BlueprintAction.NOOP)] * 3,
    }
    for op, blueprint in plans[group.rank]:
        env.step(canonical_action(op, 0, blueprint))
    env.step(canonical_action(LifecycleOp.ADVANCE if group.rank == 0 else LifecycleOp.WAIT, 0))  # to TRAINING
    grow = env.step(canonical_action(LifecycleOp.GROW_INTERNAL if group.rank == 0 else LifecycleOp.SHRINK_INTERNAL, 0))
    report = {
        "rank": group.rank,
        "stages": [r.stage.name for r in grow.reports],
        "blueprints": [r.blueprint_id for r in grow.reports],
        "levels": [r.internal_level for r in grow.reports],
        "weights": digest([t for t in env.model.state_dict().values() if isinstance(t, torch.Tensor)]),  # + buffers
        "train_loss": grow.signals.metrics.train_loss,
        "val_accuracy": grow.validation.accuracy,
    }
    close_group()
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    {"envs": environment_parallel, "data": data_parallel}[sys.argv[1]](sys.argv[2])
    exit_rank(0)  # as `esper train ppo --distributed` ends a rank
