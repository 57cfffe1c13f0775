"""Environment-steps per second of `esper train ppo` with 1 process vs 2 processes under torchrun (gloo, CPU):
environment-parallel (`--distributed envs`) and data-parallel hosts (`--distributed data`). Each configuration is
a real run (digits, 4 environments x 12 epochs x 3 rounds); its wall time is TRAINING_COMPLETED's, so process start
and imports are excluded. torchrun gives each process OMP_NUM_THREADS=1; the single process keeps torch's default
threads, and is also measured with one thread for the like-for-like comparison."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from esper.karn import RunStore


def run(run_dir: Path, launcher: list[str], extra: list[str], env: dict[str, str], args: argparse.Namespace) -> float:
    command = [
        *launcher,
        "-m",
        "esper.cli.main",
        "train",
        "ppo",
        "--rounds",
        str(args.rounds),
        "--envs",
        str(args.envs),
        "--episode-length",
        str(args.epochs),
        "--run-dir",
        str(run_dir),
        *extra,
    ]
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=1800)
    record = RunStore(run_dir).one("SELECT wall_seconds FROM runs")
    assert record is not None
    return float(record["wall_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    steps = args.envs * args.epochs * args.rounds
    python = [sys.executable]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    base = dict(os.environ)
    one_thread = {**base, "OMP_NUM_THREADS": "1"}
    configurations = [
        ("1 process (torch default threads)", python, [], base),
        ("1 process, 1 thread", python, [], one_thread),
        ("2 processes, --distributed envs", torchrun, ["--distributed", "envs"], base),
        ("2 processes, --distributed data", torchrun, ["--distributed", "data"], base),
    ]
    print(f"distributed throughput: {args.envs} envs x {args.epochs} epochs x {args.rounds} rounds = {steps} env-steps")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = None
        for index, (label, launcher, extra, env) in enumerate(configurations):
            seconds = run(Path(tmp) / f"run{index}", launcher, extra, env, args)
            rate = steps / seconds
            baseline = baseline or rate
            print(f"  {label:<36} {seconds:6.1f} s  {rate:6.1f} env-steps/s  x{rate / baseline:.2f}")
            print(f"BENCH env-steps/s, {label} | {rate:.1f} | 2 processes > 1")


if __name__ == "__main__":
    main()
