"""Controller hot path: Obs V3 features + action masks + one LSTM policy forward (sampling included) for
8 environments x 5 slots on the CPU (DESIGN.md section 7: <= 1 ms per environment-step).

Reports come from a real MorphogeneticModel whose slots hold seeds in several stages.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from esper.kasmina import CNNHost, GateThresholds, MorphogeneticModel, QualityGates
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.leyline import (
    BlueprintAction,
    GerminationStyle,
    LifecycleOp,
    TelemetryHub,
    Topology,
    TrainingMetrics,
    TrainingSignals,
    blueprints_for,
)
from esper.tamiyo import EnvView, FeatureExtractor, LstmPolicy, LstmPolicyConfig, MaskConfig, compute_masks

N_ENVS = 8


def build_views() -> tuple[tuple[str, ...], list[EnvView]]:
    torch.manual_seed(0)
    host = CNNHost(
        CnnHostConfig(in_channels=3, image_size=32, num_classes=10, base_channels=8, num_blocks=3, pool_layers=2)
    )
    slots = tuple(spec.slot_id for spec in host.injection_specs())
    model = MorphogeneticModel(
        host,
        slots,
        TelemetryHub("bench").emitter(0),
        gates=QualityGates(thresholds=GateThresholds(min_training_epochs=0)),
    )
    for slot_id, blueprint in ((slots[0], BlueprintAction.CONV_LADDER), (slots[2], BlueprintAction.CONV_HEAVY)):
        model.slot(slot_id).germinate(blueprint, slot_id, GerminationStyle.LINEAR_ADD, 3, 1.0, model.host_param_count())
        model.slot(slot_id).advance()
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    model(x, incubate=True).losses(torch.nn.functional.cross_entropy, y)[1].backward()  # the seeds learn (incubation)
    model.record_gradients()
    model.slot(slots[0]).advance()  # into BLENDING
    reports = {r.slot_id: r for r in model.reports()}
    metrics = TrainingMetrics(
        epoch=12,
        global_step=240,
        train_loss=0.9,
        val_loss=1.0,
        loss_delta=-0.02,
        train_accuracy=66.0,
        val_accuracy=64.0,
        accuracy_delta=0.4,
        plateau_epochs=1,
        host_stabilized=True,
        best_val_accuracy=64.0,
        best_val_loss=1.0,
    )
    signals = TrainingSignals(
        metrics=metrics,
        loss_history=(1.2, 1.1, 1.05, 1.02, 1.0),
        accuracy_history=(58.0, 60.0, 62.0, 63.5, 64.0),
        max_epochs=25,
        last_action_op=LifecycleOp.GROW_INTERNAL,
        last_action_success=True,
    )
    return slots, [EnvView(signals, reports) for _ in range(N_ENVS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    slots, views = build_views()
    extractor = FeatureExtractor(slots, N_ENVS)
    config = MaskConfig(slot_ids=slots, topology=Topology.CNN, blueprints=blueprints_for(Topology.CNN))
    policy = LstmPolicy(len(slots), LstmPolicyConfig())
    state = policy.initial_state(N_ENVS)
    generator = torch.Generator().manual_seed(0)
    parts: dict[str, list[float]] = {"features": [], "masks": [], "policy": [], "total": []}
    for step in range(args.steps + 20):
        t0 = time.perf_counter()
        observation = extractor.encode(views)
        t1 = time.perf_counter()
        masks = compute_masks(views, config)
        t2 = time.perf_counter()
        out = policy.act(observation, masks, state, generator=generator)
        t3 = time.perf_counter()
        state = out.state
        if step >= 20:  # warm-up
            for name, value in (("features", t1 - t0), ("masks", t2 - t1), ("policy", t3 - t2), ("total", t3 - t0)):
                parts[name].append(value)
    median = {name: statistics.median(values) * 1000 for name, values in parts.items()}
    print(
        f"policy_step: {N_ENVS} envs x {len(slots)} slots, torch threads {torch.get_num_threads()}: "
        f"features {median['features']:.3f} ms, masks {median['masks']:.3f} ms, policy {median['policy']:.3f} ms, "
        f"total {median['total']:.3f} ms per step = {median['total'] / N_ENVS:.3f} ms per environment-step "
        f"(target <= 1 ms)"
    )
    print(f"BENCH features + masks + policy forward per env-step | {median['total'] / N_ENVS:.3f} ms | <= 1 ms")


if __name__ == "__main__":
    main()
