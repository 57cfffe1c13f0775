"""DDP symmetry with a real torch.distributed group: 2 processes, gloo backend, CPU."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# (ladder, the seed's group size) on the CNN's 4-channel r0c0 or the transformer lattice's 8-wide r0c0
LADDERS = {"conv_ladder": 0, "lora_ladder": 0, "channel_ladder": 2}


@pytest.mark.parametrize("ladder", list(LADDERS))
def test_ranks_with_different_views_end_identical(tmp_path: Path, ladder: str) -> None:
    port = free_port()
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(r), "2", str(port), str(outs[r]), ladder],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, output
    rank0, rank1 = (json.loads(p.read_text()) for p in outs)
    assert rank0 == rank1
    assert rank0["log"] == [
        ["advance_to_blending", True, "BLENDING"],  # rank 0 passed G2; rank 1 adopted it
        ["grow", True, 2],  # rank 0's decision (1 -> 2), not rank 1's drifted 3 -> 4
        ["advance_to_holding", False, "BLENDING"],  # rank 0 failed G3; rank 1 did not advance alone
    ]
    group_size = LADDERS[ladder]
    assert rank0["level_events"] == [[2, group_size]]  # both ranks report rank 0's level and the group size
    assert rank0["report"][:2] == [2, group_size]
