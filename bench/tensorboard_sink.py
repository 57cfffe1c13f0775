"""The opt-in `--tensorboard DIR` sink per environment-epoch: a real heuristic digits run's events replayed through
`TensorBoardSink` (the mapping the live sink and `esper karn export` share), timed per EPOCH_COMPLETED. The sink is
off unless asked for, so the number is reported, not held to the controller budget."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from esper.karn.sinks import read_events
from esper.karn.tensorboard import TensorBoardSink
from esper.leyline import TelemetryEventType


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train = ["train", "heuristic", "--task", "digits", "--episodes", "1", "--epochs", str(args.epochs)]
        subprocess.run([sys.executable, "-m", "esper.cli.main", *train, "--run-dir", str(run)], check=True)
        events = read_events(run / "events.jsonl")
        epochs = sum(e.event_type is TelemetryEventType.EPOCH_COMPLETED for e in events)
        sink = TensorBoardSink(Path(tmp) / "tb")
        started = time.perf_counter()
        for event in events:
            sink.write(event)
        sink.close()
        seconds = time.perf_counter() - started
    per_epoch = seconds / epochs * 1000
    print(f"tensorboard_sink: {len(events)} events ({epochs} env-epochs) in {seconds:.3f} s")
    print(f"BENCH --tensorboard sink per env-epoch (all its events) | {per_epoch:.2f} ms | reported (opt-in)")


if __name__ == "__main__":
    main()
