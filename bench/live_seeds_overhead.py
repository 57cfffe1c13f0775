"""An epoch with three live BLENDING seeds, including each seed's counterfactual contribution (the fused validation
with the seed's alpha forced to 0), vs the bare host's train + plain validation (DESIGN.md section 7: <= 2.0x).

CNN host with base width 8 and 3 blocks on 32x32 RGB inputs, 20 training batches of 128 and 10 validation batches
per epoch; seeds conv_light, conv_small, depthwise. Timed alternately in one process; ratio of medians."""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from esper.kasmina import CNNHost, GateThresholds, MorphogeneticModel, QualityGates
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.leyline import BlueprintAction, GerminationStyle, SeedStage, TelemetryHub

CONFIG = CnnHostConfig(in_channels=3, image_size=32, num_classes=10, base_channels=8, num_blocks=3, pool_layers=3)
SEEDS = (BlueprintAction.CONV_LIGHT, BlueprintAction.CONV_SMALL, BlueprintAction.DEPTHWISE)


def train(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    model.train()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def bare_epoch(host: torch.nn.Module, batches: list, val: tuple[torch.Tensor, torch.Tensor]) -> float:
    started = time.perf_counter()
    train(host, batches)
    host.eval()
    with torch.no_grad():
        float(torch.nn.functional.cross_entropy(host(val[0]), val[1]))
    return time.perf_counter() - started


def seeded_epoch(model: MorphogeneticModel, batches: list, val: tuple[torch.Tensor, torch.Tensor]) -> float:
    started = time.perf_counter()
    train(model, batches)
    model.eval()
    result = model.fused_validation(val[0], val[1])
    model.record_validation(result)
    elapsed = time.perf_counter() - started
    assert len(result.contributions) == len(SEEDS), "every blending seed's counterfactual must be measured"
    return elapsed


def build_seeded(host: CNNHost) -> MorphogeneticModel:
    slots = [spec.slot_id for spec in host.injection_specs()]
    model = MorphogeneticModel(
        host,
        slots,
        TelemetryHub("bench").emitter(0),
        gates=QualityGates(thresholds=GateThresholds(min_training_epochs=0)),
    )
    chosen = slots[:: max(1, len(slots) // len(SEEDS))][: len(SEEDS)]
    for slot_id, blueprint in zip(chosen, SEEDS, strict=True):
        model.slot(slot_id).germinate(blueprint, slot_id, GerminationStyle.LINEAR_ADD, 3, 1.0, model.host_param_count())
        model.slot(slot_id).advance()  # TRAINING
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    model(x, incubate=True).losses(torch.nn.functional.cross_entropy, y)[1].backward()  # the seeds learn (incubation)
    model.record_gradients()
    for slot_id in chosen:
        model.slot(slot_id).advance()  # BLENDING
    model.step_epoch()  # alpha > 0: the seeds now change the output, so counterfactuals are measured
    assert all(model.slot(s).stage is SeedStage.BLENDING for s in chosen)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    batches = [(torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))) for _ in range(20)]
    val = (torch.randn(1280, 3, 32, 32), torch.randint(0, 10, (1280,)))
    bare = CNNHost(CONFIG)
    seeded = build_seeded(copy.deepcopy(bare))
    bare_epoch(bare, batches[:2], (val[0][:128], val[1][:128]))  # warm-up
    seeded_epoch(seeded, batches[:2], (val[0][:128], val[1][:128]))
    bare_times, seeded_times = [], []
    for _ in range(args.repeats):
        bare_times.append(bare_epoch(bare, batches, val))
        seeded_times.append(seeded_epoch(seeded, batches, val))
    b, s = statistics.median(bare_times), statistics.median(seeded_times)
    print(
        f"live_seeds_overhead: 3 blending seeds + counterfactuals: bare {b * 1000:.0f} ms/epoch, seeded {s * 1000:.0f}"
    )
    print(f"BENCH epoch with 3 live seeds + counterfactuals vs bare host | {s / b:.2f}x | <= 2.0x")


if __name__ == "__main__":
    main()
