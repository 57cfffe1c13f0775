"""An experiment kept runnable (not in `make bench`): the stacked hosts' convolution (kasmina.cohort) as oneDNN's
grouped convolution vs unfold + one batched matmul, forward + backward, at the digits host's conv shapes (8 hosts
side by side; 4, 8, 16 channels on 8x8, 4x4, 2x2; batch 64). Alternating repeats in one process, medians.
Verdict recorded in docs/performance.md: unfold + matmul is slower here, so the cohort keeps the grouped convolution.

    uv run python bench/conv_cohort.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

HOSTS = 8
BATCH = 64
LAYERS = [(1, 4, 8), (4, 8, 4), (8, 16, 2)]  # (in channels, out channels, height = width) per host
REPEATS = 7
ITERATIONS = 30
Conv = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def grouped(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, weight, padding=1, groups=HOSTS)


def unfolded(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = x.shape
    columns = F.unfold(x, 3, padding=1).view(batch, HOSTS, channels // HOSTS * 9, height * width)
    kernels = weight.view(HOSTS, weight.shape[0] // HOSTS, -1)
    out = torch.einsum("gok,bgkl->bgol", kernels, columns)
    return out.reshape(batch, weight.shape[0], height, width)


def seconds(conv: Conv) -> float:
    inputs = [torch.randn(BATCH, HOSTS * i, s, s, requires_grad=True) for i, _, s in LAYERS]
    weights = [torch.randn(HOSTS * o, i, 3, 3, requires_grad=True) for i, o, _ in LAYERS]
    started = time.perf_counter()
    for _ in range(ITERATIONS):
        for x, w in zip(inputs, weights, strict=True):
            conv(x, w).square().mean().backward()
    return time.perf_counter() - started


def main() -> None:
    torch.manual_seed(0)
    x, w = torch.randn(BATCH, HOSTS * 4, 4, 4), torch.randn(HOSTS * 8, 4, 3, 3)
    assert torch.allclose(grouped(x, w), unfolded(x, w), atol=1e-4)  # the same convolution
    times: dict[str, list[float]] = {"grouped": [], "unfold": []}
    for _ in range(REPEATS):
        times["grouped"].append(seconds(grouped))
        times["unfold"].append(seconds(unfolded))
    g, u = (statistics.median(t) / ITERATIONS * 1000 for t in times.values())
    print(f"conv_cohort digits: grouped conv {g:.2f} ms, unfold + matmul {u:.2f} ms per fwd+bwd pass ({u / g:.2f}x)")


if __name__ == "__main__":
    main()
