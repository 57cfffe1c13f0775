"""What incubation costs: a training epoch with one incubating (TRAINING) seed, against the bare host's and against
the same seed blending at full amplitude (the seed's own cost, which incubation cannot avoid).

An incubating seed learns on the incubation path (kasmina.model): from its slot on, the network runs a second time
with frozen parameters. The seed sits at the first slot, the worst case (everything after the first block runs
twice). CNN host with base width 8 and 3 blocks on 32x32 RGB inputs, 20 training batches of 128, a conv_light seed.
Timed alternately in one process; ratios of medians. No target yet (issue 19 owns the seeded-epoch targets);
recorded in docs/performance.md."""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from esper.kasmina import CNNHost, GateThresholds, MorphogeneticModel, QualityGates
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.leyline import BlueprintAction, GerminationStyle, SeedStage, TelemetryHub

CONFIG = CnnHostConfig(in_channels=3, image_size=32, num_classes=10, base_channels=8, num_blocks=3, pool_layers=3)
Batches = list[tuple[torch.Tensor, torch.Tensor]]


Loss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def plain_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x), y)


def incubation_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The model's loss plus its incubation path's, as the environment trains."""
    return model(x, incubate=True).losses(torch.nn.functional.cross_entropy, y)[1]


def timed_epoch(model: torch.nn.Module, batches: Batches, loss: Loss) -> float:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    model.train()
    started = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss(model, x, y).backward()
        optimizer.step()
    return time.perf_counter() - started


def seeded(host: CNNHost, blend: bool) -> MorphogeneticModel:
    """One conv_light seed at r0c0: incubating (TRAINING), or blending at alpha 1."""
    gates = QualityGates(thresholds=GateThresholds(min_training_epochs=0))
    model = MorphogeneticModel(host, ["r0c0"], TelemetryHub("bench").emitter(0), gates=gates)
    slot = model.slot("r0c0")
    slot.germinate(BlueprintAction.CONV_LIGHT, "s", GerminationStyle.LINEAR_ADD, 1, 1.0, model.host_param_count())
    slot.advance()
    if blend:
        incubation_loss(model, torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))).backward()
        model.record_gradients()  # G2 wants measured gradients
        slot.advance()
        model.step_epoch()  # tempo 1: alpha reaches 1
        assert slot.stage is SeedStage.BLENDING and slot.alpha == 1.0
    else:
        assert slot.stage is SeedStage.TRAINING
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    batches = [(torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))) for _ in range(20)]
    bare = CNNHost(CONFIG)
    incubating, blending = seeded(copy.deepcopy(bare), blend=False), seeded(copy.deepcopy(bare), blend=True)
    cases: dict[str, tuple[torch.nn.Module, Loss]] = {
        "bare": (bare, plain_loss),
        "incubating": (incubating, incubation_loss),
        "blending": (blending, plain_loss),
    }
    for model, loss in cases.values():
        timed_epoch(model, batches[:2], loss)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (model, loss) in cases.items():
            times[name].append(timed_epoch(model, batches, loss))
    b, i, s = (statistics.median(times[k]) for k in ("bare", "incubating", "blending"))
    print(f"incubation_overhead: bare {b * 1000:.0f} ms/epoch, incubating {i * 1000:.0f}, blending {s * 1000:.0f}")
    print(f"BENCH training epoch, one seed incubating at the first slot vs bare host | {i / b:.2f}x | (recorded)")
    print(f"BENCH training epoch, one seed incubating vs the same seed blending | {i / s:.2f}x | (recorded)")


if __name__ == "__main__":
    main()
