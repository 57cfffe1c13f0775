"""Epoch cost of a MorphogeneticModel with every slot dormant vs the bare host (DESIGN.md section 7: <= 1.03x).

CNN host with base width 8 and 3 blocks on 32x32 RGB inputs, 20 batches of 128 per epoch. The two are timed
alternately in one process; the ratio of medians is reported.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from esper.kasmina import CNNHost, MorphogeneticModel
from esper.kasmina.contracts.cnn_host_config import CnnHostConfig
from esper.leyline import TelemetryHub

CONFIG = CnnHostConfig(in_channels=3, image_size=32, num_classes=10, base_channels=8, num_blocks=3, pool_layers=3)


def epoch(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    started = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    batches = [(torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))) for _ in range(args.batches)]
    bare = CNNHost(CONFIG)
    host = copy.deepcopy(bare)
    slots = [spec.slot_id for spec in host.injection_specs()]
    dormant = MorphogeneticModel(host, slots, TelemetryHub("bench").emitter(0))
    epoch(bare, batches[:2])  # warm-up
    epoch(dormant, batches[:2])
    bare_times, dormant_times = [], []
    for _ in range(args.repeats):
        bare_times.append(epoch(bare, batches))
        dormant_times.append(epoch(dormant, batches))
    bare_median, dormant_median = statistics.median(bare_times), statistics.median(dormant_times)
    print(
        f"dormant_overhead: {len(slots)} dormant slots, {args.batches}x128 batches, torch threads "
        f"{torch.get_num_threads()}: bare {bare_median * 1000:.0f} ms/epoch, dormant {dormant_median * 1000:.0f} "
        f"ms/epoch, ratio {dormant_median / bare_median:.3f} (target <= 1.03)"
    )
    print(f"BENCH epoch with every slot dormant vs bare host | {dormant_median / bare_median:.3f}x | <= 1.03x")


if __name__ == "__main__":
    main()
