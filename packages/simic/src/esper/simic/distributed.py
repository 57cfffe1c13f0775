"""Scale-out on torch.distributed, for runs launched by `torchrun` (gloo on CPU, nccl on GPUs).

Two ways to spend W processes on one PPO run:
- ENVS (environment-parallel): rank r runs environments r*k .. r*k+k-1 of the n_envs = W*k. After each rollout the
  buffers are gathered in rank order, so every rank makes the same PPO update on the same data and holds the same
  policy; the other ranks' telemetry is relayed to rank 0, the only writer, with each event's rank in its envelope.
- DATA (data-parallel hosts): every rank runs every environment; each environment's host and seeds train through
  DistributedDataParallel on a shard of each batch, and every decision is made on rank 0 and broadcast (see
  tolaria's Environment(data_parallel=True)). Rank 0 alone writes telemetry: the other ranks' events repeat its own.

Every collective has the process group's timeout, so a rank that dies ends the run with an error on the others
instead of a hang.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NoReturn, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from esper.leyline import ParallelMode, TelemetryEvent, TelemetryHub

T = TypeVar("T")
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(RuntimeError):
    """torch.distributed could not be used as asked (not under torchrun, or a peer failed)."""


class EventRelay:
    """The telemetry sink of a rank other than 0 in ENVS mode: holds events until `WorkerGroup.relay` sends them."""

    def __init__(self) -> None:
        self.events: list[TelemetryEvent] = []

    def write(self, event: TelemetryEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        if self.events:
            raise DistributedError(f"{len(self.events)} telemetry event(s) were never relayed to rank 0")


@dataclass
class WorkerGroup:
    rank: int
    world_size: int
    mode: ParallelMode
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collectives' tensors live
    relay_sink: EventRelay = field(default_factory=EventRelay)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_envs(self, n_envs: int) -> range:
        """Global ids of the environments this rank runs."""
        if self.mode is ParallelMode.DATA:
            return range(n_envs)
        if n_envs % self.world_size:
            raise ValueError(
                f"--envs {n_envs} must be a multiple of the {self.world_size} ranks (environment-parallel)"
            )
        per_rank = n_envs // self.world_size
        return range(self.rank * per_rank, (self.rank + 1) * per_rank)

    def gather(self, local: T) -> list[T]:
        """Every rank's object, in rank order, on every rank."""
        found: list[object] = [None] * self.world_size
        dist.all_gather_object(found, local)
        return found  # type: ignore[return-value]

    def broadcast(self, value: T) -> T:
        """Rank 0's object on every rank."""
        box: list[object] = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers into every rank's module."""
        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def barrier(self) -> None:
        dist.barrier()

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank (a stop request reaches ranks at different moments)."""
        box = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        return bool(box.item())

    def relay(self, hub: TelemetryHub) -> None:
        """Send the events other ranks buffered to rank 0, which writes them in rank order (ENVS mode)."""
        if self.mode is not ParallelMode.ENVS:
            return
        batches = self.gather(self.relay_sink.events if not self.is_main else [])
        self.relay_sink.events = []
        if self.is_main:
            for batch in batches[1:]:
                for event in batch:
                    hub.forward(event)


# Gloo reports a dead or silent peer as a plain RuntimeError from its transport (not a DistError); these markers tell
# such an error from a bug, which must still propagate.
_PEER_FAILURE_MARKERS = ("gloo", "nccl", "NCCL", "Connection closed", "Connection reset", "timed out", "Timed out")


def is_peer_failure(error: BaseException) -> bool:
    """Whether an exception raised inside a collective means another rank died or went silent."""
    if isinstance(error, dist.DistError):
        return True
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in _PEER_FAILURE_MARKERS)


def under_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def init_group(mode: ParallelMode, device: torch.device, timeout_seconds: float) -> WorkerGroup:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...)."""
    if mode is ParallelMode.NONE:
        raise ValueError("init_group needs ParallelMode.ENVS or ParallelMode.DATA")
    if not under_torchrun():
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        raise DistributedError(
            f"--distributed needs torchrun (missing {', '.join(missing)}); e.g. "
            "`torchrun --nproc-per-node 2 -m esper.cli.main train ppo --distributed envs ...`"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds))
    # Tear the group down on every way out, an uncaught exception included: a process that exits with a live gloo
    # group can abort in its C++ destructors ("terminate called without an active exception").
    atexit.register(close_group)
    return WorkerGroup(dist.get_rank(), dist.get_world_size(), mode, device)


def close_group() -> None:
    """Leave the process group if this process is in one (safe to call more than once)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_rank(code: int) -> NoReturn:
    """End this rank of a torchrun job: leave the process group, flush what Python buffered, and exit without the
    interpreter's teardown. A rank that had run gloo could abort in C++ destructors at a normal exit ("terminate
    called without an active exception", SIGABRT) after a complete run, turning a good run into exit 1; nothing this
    process still needs happens after its files are closed and its streams flushed."""
    close_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
