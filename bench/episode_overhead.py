"""Controller overhead of a whole Esper episode with every slot dormant vs a plain PyTorch loop training the same
host on the same data for the same epochs (digits task: its host, batches, optimizer and a validation pass per
epoch). The Esper side is the real thing: Environment.step (training, fused validation, governor, snapshots, slot
ticks, EPOCH_COMPLETED) plus the controller per epoch (features, masks, the heuristic's decision, ACTION_TAKEN to
events.jsonl); the decision is then replaced by WAIT so the slots stay dormant. The two are timed alternately in
one process and the ratio of medians is reported."""

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
    LifecycleOp,
    PolicyKind,
    TelemetryHub,
    blueprints_for,
    canonical_action,
    slot_config,
)
from esper.tamiyo import EnvView, FeatureExtractor, HeuristicPolicy, MaskConfig, compute_masks
from esper.tolaria import Environment, TaskSpec, TensorData, get_task

WAIT = canonical_action(LifecycleOp.WAIT)


def plain_episode(task: TaskSpec, data: TensorData, epochs: int, seed: int) -> float:
    """The same episode by hand: a fresh host (as an Esper episode builds one at reset), its optimizer, the epochs."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    host = task.build_host()
    c = task.config
    optimizer = torch.optim.SGD(host.parameters(), lr=c.learning_rate, momentum=0.9, weight_decay=5e-4, foreach=True)
    generator = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(len(data.train_x), generator=generator), 0
    for _ in range(epochs):
        host.train()
        for _ in range(c.batches_per_epoch):
            if cursor + c.batch_size > len(order):
                order, cursor = torch.randperm(len(data.train_x), generator=generator), 0
            index = order[cursor : cursor + c.batch_size]
            cursor += c.batch_size
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(host(data.train_x[index]), data.train_y[index]).backward()
            optimizer.step()
        host.eval()
        with torch.no_grad():
            logits = host(data.val_x)
            float(torch.nn.functional.cross_entropy(logits, data.val_y))
            float((logits.argmax(-1) == data.val_y).float().mean())
    return time.perf_counter() - started


def esper_episode(task: TaskSpec, data: TensorData, epochs: int, seed: int, events: Path) -> float:
    slots = tuple(task.config.default_slots)
    hub = TelemetryHub("bench", sinks=(JsonlSink(events),))
    env = Environment(task, data, slots, hub.emitter(0), seed, torch.device("cpu"))
    policy = HeuristicPolicy(slots)
    extractor = FeatureExtractor(slot_config(task.build_host().injection_specs(), slots), 1)
    masks_config = MaskConfig(slots, task.config.topology, blueprints_for(task.config.topology))
    started = time.perf_counter()
    signals, reports = env.reset(0)
    state = policy.initial_state(1)
    for _ in range(epochs):
        views = [EnvView(signals, {r.slot_id: r for r in reports})]
        masks = compute_masks(views, masks_config)
        out = policy.act(extractor.encode(views), masks, state, explain=True)
        state = out.state
        assert out.explanations is not None
        step = env.step(WAIT)  # the controller decided; the slots stay dormant
        env.emitter.emit(
            ActionTakenPayload(
                policy=PolicyKind.HEURISTIC,
                action=WAIT,
                success=step.action.success,
                rejection_reason=None,
                gate_refused=False,
                valid_ops=out.explanations[0].valid_ops,
                op_probabilities=None,
            )
        )
        signals, reports = step.signals, step.reports
    elapsed = time.perf_counter() - started
    hub.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    task = get_task("digits")
    data = task.load(None)
    plain_times, esper_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        plain_episode(task, data, 2, 0)  # warm-up
        esper_episode(task, data, 2, 0, Path(tmp) / "warm.jsonl")
        for repeat in range(args.repeats):
            plain_times.append(plain_episode(task, data, args.epochs, repeat))
            esper_times.append(esper_episode(task, data, args.epochs, repeat, Path(tmp) / f"{repeat}.jsonl"))
    plain, esper = statistics.median(plain_times), statistics.median(esper_times)
    print(
        f"episode_overhead: digits, {args.epochs} epochs, all slots dormant: plain loop {plain:.2f} s, Esper episode "
        f"(environment + controller + telemetry) {esper:.2f} s"
    )
    print(f"BENCH dormant episode (env + controller + telemetry) vs plain loop | {esper / plain:.2f}x | <= 1.10x")


if __name__ == "__main__":
    main()
