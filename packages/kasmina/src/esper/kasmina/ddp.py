"""Rank symmetry: where a model's lifecycle and internal-level decisions are made.

Under data-parallel training every rank holds a replica of the same model and must keep the same topology (the
DDP symmetry invariant), so gate verdicts and internal-level changes are decided on rank 0 and broadcast: every rank
calls the same decision points in the same order (they are collectives) and a rank whose local view differs adopts
rank 0's. `LOCAL` decides in-process: single-process runs, and environment-parallel PPO, where each rank owns
different environments and must not synchronise their decisions.
"""

from __future__ import annotations

from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


class RankSymmetry:
    def __init__(self, broadcast: bool) -> None:
        if broadcast and not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("data-parallel rank symmetry needs an initialised torch.distributed process group")
        self.broadcast = broadcast

    def decide(self, local_decision: T) -> T:
        """Rank 0's decision on every rank (the local one when decisions are local)."""
        if not self.broadcast:
            return local_decision
        box: list[object] = [local_decision]
        dist.broadcast_object_list(box, src=0)
        decided: T = box[0]  # type: ignore[assignment]
        return decided

    def __repr__(self) -> str:
        return "RankSymmetry(data_parallel)" if self.broadcast else "RankSymmetry(local)"


LOCAL = RankSymmetry(broadcast=False)


def data_parallel() -> RankSymmetry:
    """Decisions on rank 0 of the default process group, broadcast to every rank."""
    return RankSymmetry(broadcast=True)
