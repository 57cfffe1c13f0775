"""`make bench`: run every benchmark (each a script in this folder, in its own process), echo its report, and print
one table of the headline numbers: every script ends with lines `BENCH <what> | <measured> | <target>`. Also times
`make codegen-check`."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = (
    "dormant_overhead.py",
    "episode_overhead.py",
    "live_seeds_overhead.py",
    "counterfactual_noise.py",
    "incubation_overhead.py",
    "compile_overhead.py",
    "policy_step.py",
    "controller_step.py",
    "env_scaling.py",
    "env_batching.py",
    "distributed_throughput.py",
    "karn_store.py",
    "tensorboard_sink.py",
)


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script)], capture_output=True, text=True, timeout=1800)
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"bench: {script} failed with exit code {done.returncode}")
        found = [
            line.removeprefix("BENCH ").split(" | ") for line in done.stdout.splitlines() if line.startswith("BENCH ")
        ]
        if not found:
            raise SystemExit(f"bench: {script} printed no BENCH line")
        rows += [(what, measured, target) for what, measured, target in found]
    started = time.perf_counter()
    subprocess.run(["make", "-s", "codegen-check"], cwd=HERE.parent, check=True, capture_output=True)
    rows.append(("make codegen-check", f"{time.perf_counter() - started:.2f} s", "<= 5 s"))
    width = max(len(what) for what, _, _ in rows)
    print(f"\nbench summary ({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}):")
    print(f"  {'what'.ljust(width)}  {'measured':>12}  target")
    for what, measured, target in rows:
        print(f"  {what.ljust(width)}  {measured:>12}  {target}")


if __name__ == "__main__":
    main()
