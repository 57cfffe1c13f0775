"""The CUDA path, where torch sees a GPU (skipped elsewhere): a heuristic run and a PPO round on `--device cuda`
agree with the same runs on the CPU to within floating-point differences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from esper.cli.main import main
from esper.karn import read_events

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device here")


def summary(run_dir: Path) -> dict[str, float]:
    data: dict[str, float] = json.loads((run_dir / "summary.json").read_text())
    return data


def test_heuristic_run_on_cuda_matches_the_cpu(tmp_path: Path) -> None:
    flags = ["train", "heuristic", "--episodes", "1", "--epochs", "8"]
    assert main([*flags, "--device", "cuda", "--run-dir", str(tmp_path / "gpu")]) == 0
    assert main([*flags, "--device", "cpu", "--run-dir", str(tmp_path / "cpu")]) == 0
    started = read_events(tmp_path / "gpu" / "events.jsonl")[0]
    assert started.payload.device == "cuda"  # type: ignore[union-attr]
    gpu, cpu = summary(tmp_path / "gpu"), summary(tmp_path / "cpu")
    assert abs(gpu["baseline_accuracy"] - cpu["baseline_accuracy"]) < 3.0  # the same host, seeded alike


def test_ppo_round_on_cuda_writes_a_resumable_checkpoint(tmp_path: Path) -> None:
    flags = ["train", "ppo", "--envs", "2", "--episode-length", "6", "--device", "cuda"]
    assert main([*flags, "--rounds", "1", "--run-dir", str(tmp_path / "run")]) == 0
    assert main(["train", "ppo", "--resume", str(tmp_path / "run"), "--rounds", "2"]) == 0
    assert summary(tmp_path / "run")["episodes"] == 4
