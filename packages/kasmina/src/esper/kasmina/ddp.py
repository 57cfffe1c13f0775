"""Rank symmetry: lifecycle and internal-level decisions are taken on rank 0 and broadcast to every rank.

Every rank calls the same decision points in the same order (they are collectives); a rank whose local view
differs adopts rank 0's decision. Outside torch.distributed this is the identity.
"""

from __future__ import annotations

from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def decide_on_rank0(local_decision: T) -> T:
    if not (dist.is_available() and dist.is_initialized()):
        return local_decision
    box: list[object] = [local_decision]
    dist.broadcast_object_list(box, src=0)
    decided: T = box[0]  # type: ignore[assignment]
    return decided
