"""An epoch with three live BLENDING seeds, four ways, timed alternately in one process (ratios of medians):

- counterfactual: the environment's training step + the fused validation with every seed's counterfactual on the
  task's default subset (esper.tolaria.COUNTERFACTUAL_SAMPLES rows)  -> vs plain seeded: <= 1.3x
- plain seeded: the same training + one plain validation pass            -> vs static: <= 1.05x, vs bare: reported
- static: the same host and seeds written as a plain PyTorch module (same blend, same isolation: each seed sees
  detached host features), trained with the same optimizers and validated the same way
- bare: the host alone.

CNN host with base width 8 and 3 blocks on 32x32 RGB inputs, 20 training batches of 128 and 1280 validation images
per epoch; seeds conv_light, conv_small, depthwise at the first three points of the forward pass (r0c0, r1c0, r0c1:
the dearest place for counterfactuals, which rerun the network after their slot)."""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from esper.kasmina import CNNHost, GateThresholds, MorphogeneticModel, QualityGates, cross_entropy
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.leyline import BlueprintAction, GerminationStyle, SeedStage, TelemetryHub
from esper.tolaria import COUNTERFACTUAL_SAMPLES

CONFIG = CnnHostConfig(in_channels=3, image_size=32, num_classes=10, base_channels=8, num_blocks=3, pool_layers=3)
SEEDS = (BlueprintAction.CONV_LIGHT, BlueprintAction.CONV_SMALL, BlueprintAction.DEPTHWISE)
GRADIENT_STRIDE = 4  # as esper.tolaria's environment: seed gradient statistics every 4th batch
Batches = list[tuple[torch.Tensor, torch.Tensor]]


class StaticSeeded(nn.Module):
    """The host with its seeds hard-wired: after op `position - 1`, x + alpha * (seed(x') - x') with x' = x detached."""

    def __init__(self, host: CNNHost, seeds: dict[int, tuple[nn.Module, float]]) -> None:
        super().__init__()
        self.host = host
        self.positions = sorted(seeds)
        self.seeds = nn.ModuleList(seeds[p][0] for p in self.positions)
        self.alphas = [seeds[p][1] for p in self.positions]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.host.embed(inputs)
        blends = dict(zip(self.positions, zip(self.seeds, self.alphas, strict=True), strict=True))
        for position, op in enumerate(self.host.ops):
            if position in blends:
                seed, alpha = blends[position]
                detached = x.detach()
                x = x + alpha * (seed(detached) - detached)
            x = op(x)
        logits: torch.Tensor = self.host.head(x)
        return logits


def optimizers(host: nn.Module, seeds: list[nn.Module]) -> list[torch.optim.Optimizer]:
    """One optimizer for the host and one per seed, as the environment has."""
    return [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4) for m in (host, *seeds)]


def train(step: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor], batches: Batches) -> None:
    for i, (x, y) in enumerate(batches):
        logits = step(i, x, y)
        float((logits.argmax(-1) == y).float().sum())  # the per-batch statistics the environment records


def framework_step(model: MorphogeneticModel, opts: list[torch.optim.Optimizer]) -> Callable[..., torch.Tensor]:
    def step(i: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = model(x, incubate=True)
        loss, total = out.losses(cross_entropy, y)
        for optimizer in opts:
            optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(total)
        if i % GRADIENT_STRIDE == 0:
            model.record_gradients()
        for optimizer in opts:
            optimizer.step()
        float(loss.detach())
        return out.logits

    return step


def plain_step(module: nn.Module, opts: list[torch.optim.Optimizer]) -> Callable[..., torch.Tensor]:
    def step(i: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = module(x)
        loss = cross_entropy(logits, y)
        for optimizer in opts:
            optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        for optimizer in opts:
            optimizer.step()
        float(loss.detach())
        return logits

    return step


def plain_validation(module: nn.Module, val: tuple[torch.Tensor, torch.Tensor]) -> None:
    module.eval()
    with torch.no_grad():
        logits = module(val[0])
        float(cross_entropy(logits, val[1]))
        float((logits.argmax(-1) == val[1]).float().mean())


def build_seeded(host: CNNHost) -> tuple[MorphogeneticModel, list[str]]:
    slots = [spec.slot_id for spec in host.injection_specs()]
    model = MorphogeneticModel(
        host,
        slots,
        TelemetryHub("bench").emitter(0),
        gates=QualityGates(thresholds=GateThresholds(min_training_epochs=0)),
    )
    chosen = list(model.execution[: len(SEEDS)])
    for slot_id, blueprint in zip(chosen, SEEDS, strict=True):
        model.slot(slot_id).germinate(blueprint, slot_id, GerminationStyle.LINEAR_ADD, 3, 1.0, model.host_param_count())
        model.slot(slot_id).advance()  # TRAINING
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    model(x, incubate=True).losses(cross_entropy, y)[1].backward()  # the seeds learn (incubation)
    model.record_gradients()
    for slot_id in chosen:
        model.slot(slot_id).advance()  # BLENDING
    model.step_epoch()  # alpha > 0: the seeds now change the output, so counterfactuals are measured
    assert all(model.slot(s).stage is SeedStage.BLENDING for s in chosen)
    return model, chosen


def static_twin(model: MorphogeneticModel, chosen: list[str]) -> StaticSeeded:
    host = copy.deepcopy(model.host)
    assert isinstance(host, CNNHost)
    seeds = {}
    for slot_id in chosen:
        slot = model.slot(slot_id)
        assert slot.seed is not None
        seeds[host.position(slot_id)] = (copy.deepcopy(slot.seed), slot.alpha)
    return StaticSeeded(host, seeds)


def timed(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--subset", type=int, default=COUNTERFACTUAL_SAMPLES)
    args = parser.parse_args()
    torch.manual_seed(0)
    batches = [(torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))) for _ in range(20)]
    val = (torch.randn(1280, 3, 32, 32), torch.randint(0, 10, (1280,)))
    bare = CNNHost(CONFIG)
    model, chosen = build_seeded(copy.deepcopy(bare))
    static = static_twin(model, chosen)
    seed_modules = [m for s in chosen if (m := model.slot(s).seed) is not None]
    framework = framework_step(model, optimizers(model.host, seed_modules))
    static_train = plain_step(static, optimizers(static.host, list(static.seeds)))
    bare_train = plain_step(bare, optimizers(bare, []))

    def counterfactual() -> None:
        model.train()
        train(framework, batches)
        model.eval()
        result = model.fused_validation(val[0], val[1], counterfactual_samples=args.subset)
        assert len(result.contributions) == len(SEEDS), "every blending seed's counterfactual must be measured"

    def plain_seeded() -> None:
        model.train()
        train(framework, batches)
        plain_validation(model, val)

    def static_epoch() -> None:
        static.train()
        train(static_train, batches)
        plain_validation(static, val)

    def bare_epoch() -> None:
        bare.train()
        train(bare_train, batches)
        plain_validation(bare, val)

    runs = {"counterfactual": counterfactual, "plain seeded": plain_seeded, "static": static_epoch, "bare": bare_epoch}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up
        run()
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(timed(run))
    m = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"live_seeds_overhead: 3 blending seeds at {', '.join(chosen)}, counterfactual subset {args.subset} of "
        f"{len(val[0])}, torch threads {torch.get_num_threads()}: "
        + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in m.items())
        + " per epoch"
    )
    counterfactual = m["counterfactual"] / m["plain seeded"]
    print(f"BENCH seeded epoch with 3 counterfactuals vs plain seeded epoch | {counterfactual:.2f}x | <= 1.3x")
    print(f"BENCH seeded epoch vs the static-equivalent module | {m['plain seeded'] / m['static']:.3f}x | <= 1.05x")
    print(f"BENCH seeded epoch vs bare host (upstream: 2.32x) | {m['plain seeded'] / m['bare']:.2f}x | reported")


if __name__ == "__main__":
    main()
