"""What the training process uses, read when an epoch ends (EPOCH_COMPLETED's `system`)."""

from __future__ import annotations

import os
import time
from typing import Final

import psutil
import torch

from esper.leyline import SystemMetrics

MIB: Final = float(1 << 20)
_PROCESSES: dict[int, psutil.Process] = {}  # by pid: making one reads /proc, and a forked child has its own pid


def _this_process() -> psutil.Process:
    pid = os.getpid()
    if pid not in _PROCESSES:
        _PROCESSES[pid] = psutil.Process(pid)
    return _PROCESSES[pid]


def read_system_metrics(device: torch.device) -> SystemMetrics:
    """The process's resident memory and CPU time now; on CUDA, torch's peak allocation on `device` since the
    process started. CPU time is `time.process_time` (user + system, all threads): one clock read, where psutil's
    cpu_times parses /proc."""
    rss = _this_process().memory_info().rss
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    return SystemMetrics(rss_mb=rss / MIB, cpu_seconds=time.process_time(), cuda_peak_mb=peak)
