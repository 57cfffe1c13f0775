"""What the training process uses, read when an epoch ends (EPOCH_COMPLETED's `system`)."""

from __future__ import annotations

from typing import Final

import psutil
import torch

from esper.leyline import SystemMetrics

MIB: Final = float(1 << 20)
_PROCESS: Final = psutil.Process()


def read_system_metrics(device: torch.device) -> SystemMetrics:
    """The process's resident memory and CPU time (all threads) now; on CUDA, torch's peak allocation on `device`
    since the process started."""
    times = _PROCESS.cpu_times()
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    return SystemMetrics(
        rss_mb=_PROCESS.memory_info().rss / MIB, cpu_seconds=times.user + times.system, cuda_peak_mb=peak
    )
