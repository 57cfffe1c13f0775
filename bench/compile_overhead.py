"""The compile path (esper.kasmina.compiled): a seeded epoch with the host's ops and head and every seed compiled by
torch.compile (inductor) vs the same epoch eager, and the graphs the compiled model needs as its seeds' lifecycle
moves on.

The epoch is live_seeds_overhead's: CNN host with base width 8 and 3 blocks on 32x32 RGB inputs, 20 training batches
of 128 (the model's forward with the incubation path, backward, SGD) and a fused validation of 1280 images, with
conv_light, conv_small and depthwise seeds blending at the first three points of the forward pass. Compiled and
eager twins start from the same weights and are timed alternately in one process (ratio of medians). The compile
time is reported on its own: the first compiled epoch (every graph compiled; inductor's on-disk cache of compiled
graphs, when warm from an earlier run, shortens it) minus a compiled epoch's median.

Then the compiled model's lifecycle, in short epochs (2 training batches and the same validation): a conv_ladder
germinates at the fourth point and incubates, blends, grows a level; every seed is fossilized; and the same
structure runs again, which must compile nothing. The graphs and recompilations of each step are counted
(CompileCounters)."""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import live_seeds_overhead  # this folder: python puts a script's own folder on the path
import torch

from esper.kasmina import (
    CNNHost,
    CompileCounters,
    MorphogeneticModel,
    SeedSlot,
    compile_model,
    cross_entropy,
)
from esper.leyline import BlueprintAction, GerminationStyle, LifecycleOp, SeedStage

Batches = list[tuple[torch.Tensor, torch.Tensor]]
Validation = tuple[torch.Tensor, torch.Tensor]


def build_seeded(host: CNNHost) -> MorphogeneticModel:
    """Three seeds blending at the first three points, as live_seeds_overhead builds them."""
    model, _ = live_seeds_overhead.build_seeded(host)
    return model


def epoch(model: MorphogeneticModel, batches: Batches, val: Validation) -> float:
    """Training (forward with the incubation path, backward, SGD) and a fused validation; seconds."""
    started = time.perf_counter()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    model.train()
    for i, (x, y) in enumerate(batches):
        optimizer.zero_grad(set_to_none=True)
        loss, total = model(x, incubate=True).losses(cross_entropy, y)
        total.backward()
        if i % live_seeds_overhead.GRADIENT_STRIDE == 0:
            model.record_gradients()
        optimizer.step()
        float(loss.detach())
    model.eval()
    model.record_validation(model.fused_validation(val[0], val[1]))
    return time.perf_counter() - started


def timings(
    compiled: MorphogeneticModel, eager: MorphogeneticModel, batches: Batches, val: Validation, repeats: int
) -> tuple[float, float, float]:
    """(first compiled epoch, median compiled epoch, median eager epoch), seconds."""
    first = epoch(compiled, batches, val)  # compiles every graph of this structure
    epoch(eager, batches, val)  # warm-up
    compiled_times, eager_times = [], []
    for _ in range(repeats):
        compiled_times.append(epoch(compiled, batches, val))
        eager_times.append(epoch(eager, batches, val))
    return first, statistics.median(compiled_times), statistics.median(eager_times)


def lifecycle(model: MorphogeneticModel, backend: str, short: Callable[[], None]) -> list[tuple[str, CompileCounters]]:
    """The compiled model's seeds move on; (step, graphs and recompilations it compiled), in order."""
    ladder = model.slot(model.execution[len(live_seeds_overhead.SEEDS)])
    steps: list[tuple[str, CompileCounters]] = []

    def step(name: str, action: Callable[[], object]) -> None:
        before = CompileCounters.read()
        action()
        compile_model(model, backend=backend)  # a germinated seed (only what is not compiled yet)
        short()
        short()
        steps.append((name, CompileCounters.read() - before))

    step("germinate + incubate conv_ladder", lambda: germinate_ladder(model, ladder))
    step("blend", lambda: advance(ladder))
    step("grow a level", lambda: grow(ladder))
    step("fossilize every seed", lambda: fossilize_all(model))
    step("same structure again", lambda: None)
    return steps


def germinate_ladder(model: MorphogeneticModel, slot: SeedSlot) -> None:
    slot.germinate(BlueprintAction.CONV_LADDER, "ladder", GerminationStyle.LINEAR_ADD, 1, 1.0, model.host_param_count())
    advance(slot)  # TRAINING: incubation


def advance(slot: SeedSlot) -> None:
    result = slot.advance()
    assert result.passed, f"{slot.slot_id}: {result.message}"


def grow(slot: SeedSlot) -> None:
    assert slot.change_internal_level(LifecycleOp.GROW_INTERNAL), f"{slot.slot_id}: at its top level"


def fossilize_all(model: MorphogeneticModel) -> None:
    for slot in (s for s in model.iter_slots() if s.seed is not None):
        if slot.stage is SeedStage.BLENDING:
            advance(slot)  # HOLDING: alpha is at 1 by now
        result = slot.fossilize()
        assert result.passed, f"{slot.slot_id}: {result.message}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = [(torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))) for _ in range(20)]
    val = (torch.randn(1280, 3, 32, 32), torch.randint(0, 10, (1280,)))
    host = CNNHost(live_seeds_overhead.CONFIG)
    torch.manual_seed(1)
    eager = build_seeded(copy.deepcopy(host))
    torch.manual_seed(1)
    compiled = build_seeded(host)
    start = CompileCounters.read()
    compile_model(compiled, backend=args.backend)
    first, c, e = timings(compiled, eager, batches, val, args.repeats)
    seeded = CompileCounters.read() - start

    def short() -> None:
        epoch(compiled, batches[:2], val)
        compiled.step_epoch()

    steps = lifecycle(compiled, args.backend, short)
    cache = torch._dynamo.utils.counters["inductor"]  # a warm on-disk cache (an earlier run) shortens compiling
    print(
        f"compile_overhead: {args.backend}, torch threads {torch.get_num_threads()}: eager {e * 1000:.0f} ms/epoch, "
        f"compiled {c * 1000:.0f} ms/epoch, first compiled epoch {first:.1f} s; {seeded.graphs} graphs "
        f"({seeded.recompiles} recompilations) for 3 blending seeds"
    )
    for name, counted in steps:
        print(f"  {name}: {counted.graphs} graphs ({counted.recompiles} recompilations)")
    print(
        f"  inductor's graph cache over the run: {cache['fxgraph_cache_hit']} hits, "
        f"{cache['fxgraph_cache_miss']} misses"
    )
    lifetime = sum((counted.graphs for _, counted in steps), seeded.graphs)
    print(f"BENCH seeded epoch compiled ({args.backend}) vs eager | {c / e:.2f}x | reported (< 1x: compile pays)")
    print(f"BENCH compile time of the seeded model (first epoch - median epoch) | {first - c:.1f} s | reported")
    print(f"BENCH graphs through germinate, blend, grow, fossilize | {lifetime} | bounded (compiled.py)")
    print(f"BENCH graphs compiled by a repeated epoch of the same structure | {steps[-1][1].graphs} | 0")


if __name__ == "__main__":
    main()
