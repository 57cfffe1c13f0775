"""Controller hot path: Obs V3 features + action masks + one LSTM policy forward (sampling included) for
8 environments on the CPU (DESIGN.md section 7: <= 1 ms per environment-step), at three slot layouts: the CNN
host's 5 slots, and Phase 1's transformer lattice (charlm_layerwise) with 3 slots and with all 12, to show how the
step grows with the slot count.

Reports come from a real MorphogeneticModel whose slots hold seeds in several stages.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from esper.kasmina import CNNHost, GateThresholds, MorphogeneticModel, QualityGates
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.leyline import (
    BlueprintAction,
    GerminationStyle,
    LifecycleOp,
    SlotConfig,
    TelemetryHub,
    Topology,
    TrainingMetrics,
    TrainingSignals,
    blueprints_for,
    slot_config,
    slot_ids,
)
from esper.tamiyo import EnvView, FeatureExtractor, LstmPolicy, LstmPolicyConfig, MaskConfig, compute_masks
from esper.tolaria import get_task

N_ENVS = 8


@dataclass(frozen=True)
class Layout:
    name: str
    host: nn.Module
    slots: SlotConfig
    blueprints: tuple[BlueprintAction, BlueprintAction]  # a ladder (into BLENDING) and a fixed seed (TRAINING)
    inputs: torch.Tensor
    targets: torch.Tensor


def layouts() -> list[Layout]:
    torch.manual_seed(0)
    cnn = CNNHost(
        CnnHostConfig(in_channels=3, image_size=32, num_classes=10, base_channels=8, num_blocks=3, pool_layers=2)
    )
    lattice = get_task("charlm_layerwise")
    tokens = torch.randint(0, 40, (4, 32))
    transformer = (BlueprintAction.LORA_LADDER, BlueprintAction.LORA_LARGE)
    every_cnn_slot = [spec.slot_id for spec in cnn.injection_specs()]
    return [
        Layout(
            "cnn, 5 slots",
            cnn,
            slot_config(cnn.injection_specs(), every_cnn_slot),
            (BlueprintAction.CONV_LADDER, BlueprintAction.CONV_HEAVY),
            torch.randn(16, 3, 32, 32),
            torch.randint(0, 10, (16,)),
        ),
        *(
            Layout(
                f"transformer lattice, {len(enabled)} slots",
                lattice.build_host(),
                slot_config(lattice.build_host().injection_specs(), enabled),
                transformer,
                tokens,
                torch.randint(0, 40, (4, 32)),
            )
            for enabled in (("r1c1", "r1c3", "r1c5"), lattice.config.default_slots)
        ),
    ]


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def build_views(layout: Layout) -> list[EnvView]:
    slots = slot_ids(layout.slots)
    model = MorphogeneticModel(
        layout.host,
        slots,
        TelemetryHub("bench").emitter(0),
        gates=QualityGates(thresholds=GateThresholds(min_training_epochs=0)),
    )
    ladder, fixed = layout.blueprints
    for slot_id, blueprint in ((slots[0], ladder), (slots[-1], fixed)):
        model.slot(slot_id).germinate(blueprint, slot_id, GerminationStyle.LINEAR_ADD, 3, 1.0, model.host_param_count())
        model.slot(slot_id).advance()
    model(layout.inputs, incubate=True).losses(_loss, layout.targets)[1].backward()  # the seeds learn (incubation)
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
    return [EnvView(signals, reports) for _ in range(N_ENVS)]


def measure(layout: Layout, steps: int) -> dict[str, float]:
    """Median milliseconds per step of each part, for N_ENVS environments."""
    views = build_views(layout)
    slots = slot_ids(layout.slots)
    extractor = FeatureExtractor(layout.slots, N_ENVS)
    topology = Topology.CNN if isinstance(layout.host, CNNHost) else Topology.TRANSFORMER
    config = MaskConfig(slot_ids=slots, topology=topology, blueprints=blueprints_for(topology))
    policy = LstmPolicy(len(slots), LstmPolicyConfig())
    state = policy.initial_state(N_ENVS)
    generator = torch.Generator().manual_seed(0)
    parts: dict[str, list[float]] = {"features": [], "masks": [], "policy": [], "total": []}
    for step in range(steps + 20):
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
    return {name: statistics.median(values) * 1000 for name, values in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    per_step: dict[str, float] = {}
    for layout in layouts():
        median = measure(layout, args.steps)
        per_step[layout.name] = median["total"] / N_ENVS
        print(
            f"policy_step: {layout.name}, {N_ENVS} envs, torch threads {torch.get_num_threads()}: "
            f"features {median['features']:.3f} ms, masks {median['masks']:.3f} ms, policy {median['policy']:.3f} ms, "
            f"total {median['total']:.3f} ms per step = {per_step[layout.name]:.3f} ms per environment-step"
        )
        print(f"BENCH policy step per env-step ({layout.name}) | {per_step[layout.name]:.3f} ms | <= 1 ms")
    ratio = per_step["transformer lattice, 12 slots"] / per_step["transformer lattice, 3 slots"]
    print(f"BENCH policy step, 12 slots vs 3 slots (transformer lattice) | {ratio:.2f}x | reported")


if __name__ == "__main__":
    main()
