"""Scale-out with a real torch.distributed group: 2 CPU processes, gloo. Each test launches the processes itself
with the environment torchrun would give them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esper.karn import RunStore
from esper.kasmina import data_parallel, read_record
from esper.leyline import ParallelMode
from esper.simic import DistributedError, WorkerGroup, init_group, is_peer_failure, read_checkpoint

WORKER = Path(__file__).with_name("dist_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    return env


def launch(command: list[str], world: int = 2) -> list[subprocess.Popen[str]]:
    """`command` once per rank; "{rank}" in an argument is replaced by the rank."""
    port = free_port()
    return [
        subprocess.Popen(
            [arg.replace("{rank}", str(r)) for arg in command],
            env=rank_env(r, world, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(world)
    ]


def finish(procs: list[subprocess.Popen[str]], timeout: float = 240) -> list[str]:
    outputs = []
    for proc in procs:
        output, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, output
        outputs.append(output)
    return outputs


def test_environment_parallel_ranks_hold_the_same_policy_after_an_update(tmp_path: Path) -> None:
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    finish(launch([sys.executable, str(WORKER), "envs", str(tmp_path / "rank{rank}.json")]))
    rank0, rank1 = (json.loads(p.read_text()) for p in outs)
    assert rank0["local_envs"] == [0] and rank1["local_envs"] == [1]  # each rank ran its own environment
    assert rank0["before"] == rank1["before"]  # same initial policy despite different global RNG states
    assert rank0["after"] == rank1["after"] != rank0["before"]  # one identical update from the gathered rollout
    assert rank0["normalizer"] == rank1["normalizer"]
    assert rank0["accuracies"] == rank1["accuracies"]  # both report the mean over all environments
    # One telemetry stream: rank 0's sink holds both environments' events, each stamped with its rank.
    sources = {(rank, env) for rank, env, _ in rank0["events"]}
    assert sources == {(0, 0), (1, 1), (0, None)}
    assert rank1["events"] == []
    assert [t for _, _, t in rank0["events"]].count("PPO_UPDATE_COMPLETED") == 1


def test_data_parallel_ranks_keep_one_topology_and_identical_weights(tmp_path: Path) -> None:
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    finish(launch([sys.executable, str(WORKER), "data", str(tmp_path / "rank{rank}.json")]))
    rank0, rank1 = (json.loads(p.read_text()) for p in outs)
    assert rank0 == {**rank1, "rank": 0}  # stages, blueprints, levels, weights, loss: all identical
    assert rank0["blueprints"][0] == "conv_ladder"  # rank 0's germination, not rank 1's conv_light
    assert rank0["levels"][0] == 2  # rank 0 grew 1 -> 2; rank 1's SHRINK was overruled
    assert rank0["stages"] == ["TRAINING"]  # rank 0's ADVANCE, not rank 1's WAIT (reports list live seeds)


PPO = [sys.executable, "-m", "esper.cli.main", "train", "ppo", "--distributed", "envs", "--dist-timeout", "30"]


def test_cli_writes_one_stream_and_a_dead_rank_stops_the_run_with_an_error(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # 1. Under torchrun itself, a 2-process run writes a single event stream with both ranks in it.
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
    ]
    command = [*torchrun, *PPO[1:], "--envs", "2", "--episode-length", "4", "--rounds", "1", "--save-model"]
    command += ["--run-dir", str(run_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("final accuracy (mean of episodes)") == 1  # rank 0 alone prints the summary
    store = RunStore(run_dir)
    ranks = dict(store.query("SELECT env_id, min(rank) FROM events WHERE env_id IS NOT NULL GROUP BY env_id").rows)
    assert ranks == {0: 0, 1: 1}
    assert store.one("SELECT world_size, parallel_mode FROM runs") == {"world_size": 2, "parallel_mode": "envs"}
    assert store.query("SELECT count(*) FROM events WHERE event_type = 'TRAINING_STARTED'").rows[0][0] == 1
    assert json.loads((run_dir / "summary.json").read_text())["episodes"] == 2
    # --save-model: each rank saves the grown models of its own environments, one directory each
    saved_models = [read_record(path) for path in sorted((run_dir / "models").iterdir())]
    assert sorted((r.env_id, r.episode) for r in saved_models) == [(0, 0), (1, 0)]

    # 2. Rank 1 dies during the resumed run: rank 0 stops with a clear error instead of hanging.
    procs = launch([*PPO, "--resume", str(run_dir), "--rounds", "30"])
    # Rank 0 prints "round 3/30" once round 3 is done, so round 2's checkpoint is on disk: rank 1 dies after that.
    await_output(procs[0], "round 3/30:")
    procs[1].send_signal(signal.SIGKILL)
    output, _ = procs[0].communicate(timeout=120)
    procs[1].communicate(timeout=10)
    assert procs[0].returncode == 1, output
    assert "esper train: error: rank 0/2: the process group failed" in output
    assert f"--resume {run_dir}" in output
    saved = int(read_checkpoint(run_dir / "checkpoint.pt")["round"])
    assert 2 <= saved < 30

    # 3. The same command resumes from the last checkpoint (rank 0 wrote it) and finishes one more round.
    finish(launch([*PPO, "--resume", str(run_dir), "--rounds", str(saved + 1)]))
    assert json.loads((run_dir / "summary.json").read_text())["episodes"] == (saved + 1) * 2  # 2 envs a round
    store = RunStore(run_dir)  # the event log is valid after the crash, and the rewind left each round once
    rounds = [r for (r,) in store.query("SELECT round FROM ppo_updates ORDER BY seq").rows]
    assert rounds == list(range(1, saved + 2))


def await_output(proc: subprocess.Popen[str], prefix: str) -> None:
    """Block on the process's own output until a line starts with `prefix` (no sleeps: the line is the event)."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(prefix):
            return
    raise AssertionError(f"the process ended before printing {prefix!r}: {''.join(seen)}")


def test_misuse_is_named() -> None:
    if any(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR")):
        pytest.skip("this test process itself runs under torchrun")
    with pytest.raises(DistributedError, match="--distributed needs torchrun"):
        init_group(ParallelMode.ENVS, torch.device("cpu"), 10)
    group = WorkerGroup(rank=0, world_size=2, mode=ParallelMode.ENVS)
    assert list(group.local_envs(4)) == [0, 1]
    with pytest.raises(ValueError, match="--envs 3 must be a multiple of the 2 ranks"):
        group.local_envs(3)
    assert list(WorkerGroup(rank=1, world_size=2, mode=ParallelMode.DATA).local_envs(3)) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="needs an initialised torch.distributed process group"):
        data_parallel()
    gloo = RuntimeError("[third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:1")
    assert is_peer_failure(gloo) and is_peer_failure(torch.distributed.DistBackendError("x"))
    assert not is_peer_failure(RuntimeError("shape mismatch")) and not is_peer_failure(ValueError("gloo"))
