"""Ctrl-C and SIGTERM end a real run at an epoch boundary: exit 130, no traceback, TRAINING_COMPLETED(interrupted),
a log Karn loads; a PPO run also leaves a checkpoint that `--resume` continues from, and a damaged latest
checkpoint falls back to the previous one. Every wait is on a line of the run's event log, never on a sleep."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from esper.cli.main import main
from esper.karn import RunStore, read_events
from esper.karn.runs import describe_run
from esper.simic import previous_path, read_checkpoint, write_checkpoint

PPO_SMALL = ["--task", "digits", "--envs", "2", "--episode-length", "6"]
DEADLINE = 240.0  # seconds a run may take to reach the awaited line on a loaded machine


class Run:
    """A real `esper` command in a child process, whose stderr progress lines the test waits on (blocking reads,
    no sleeps). A watchdog kills a run that outlives DEADLINE, so a hang fails the test instead of stalling it."""

    def __init__(self, *argv: str) -> None:
        command = [sys.executable, "-m", "esper.cli.main", *argv]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.watchdog = threading.Timer(DEADLINE, self.process.kill)
        self.watchdog.start()
        self.seen: list[str] = []

    def wait_for_line(self, prefix: str) -> None:
        """Block until the run prints a stderr line starting with `prefix` (it must not end first)."""
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.seen.append(line)
            if line.startswith(prefix):
                return
        raise AssertionError(f"the run ended before printing {prefix!r}: {''.join(self.seen)}")

    def finish(self) -> tuple[int, str]:
        """Exit code and the whole stderr."""
        _, rest = self.process.communicate(timeout=DEADLINE)
        self.watchdog.cancel()
        return self.process.returncode, "".join(self.seen) + rest


def assert_ended_interrupted(run_dir: Path, err: str, signal_name: str) -> None:
    assert "Traceback" not in err, err
    assert f"interrupted ({signal_name})" in err
    last = read_events(run_dir / "events.jsonl")[-1]
    assert last.event_type.name == "TRAINING_COMPLETED" and last.payload.interrupted  # type: ignore[union-attr]
    assert RunStore(run_dir).one("SELECT interrupted FROM runs") == {"interrupted": True}
    assert describe_run(run_dir).status == "interrupted"
    assert not (run_dir / "summary.json").exists()


def test_ctrl_c_ends_a_heuristic_run_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run = Run("train", "heuristic", "--episodes", "50", "--epochs", "4", "--run-dir", str(run_dir))
    run.wait_for_line("episode 1/50:")  # printed once episode 1 and its host-only baseline are done
    run.process.send_signal(signal.SIGINT)
    code, err = run.finish()
    assert code == 130, err
    assert_ended_interrupted(run_dir, err, "SIGINT")
    assert "run the same command again" in err


def test_sigterm_ends_a_ppo_run_with_a_checkpoint_that_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    events = run_dir / "events.jsonl"
    run = Run("train", "ppo", *PPO_SMALL, "--rounds", "40", "--run-dir", str(run_dir))
    run.wait_for_line("round 1/40:")  # round 1 is finished: a stop from here on checkpoints at least round 1
    run.process.send_signal(signal.SIGTERM)
    code, err = run.finish()
    assert code == 130, err
    assert_ended_interrupted(run_dir, err, "SIGTERM")
    assert f"esper train ppo --resume {run_dir}" in err
    saved = int(read_checkpoint(run_dir / "checkpoint.pt")["round"])
    assert 1 <= saved < 40

    assert main(["train", "ppo", "--resume", str(run_dir), "--rounds", str(saved + 1)]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["episodes"] == (saved + 1) * 2
    # The unfinished round and the interrupted end were cut from the log: every round appears exactly once.
    rounds = [e.payload.round for e in read_events(events) if e.event_type.name == "PPO_UPDATE_COMPLETED"]  # type: ignore[union-attr]
    assert rounds == list(range(1, saved + 2))
    assert describe_run(run_dir).status == "finished"


def test_a_damaged_latest_checkpoint_resumes_from_the_previous_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "ppo", *PPO_SMALL, "--rounds", "2", "--run-dir", str(run_dir)]) == 0
    latest = run_dir / "checkpoint.pt"
    assert read_checkpoint(previous_path(latest))["round"] == 1
    with latest.open("r+b") as f:
        f.truncate(latest.stat().st_size // 3)
    capsys.readouterr()
    assert main(["train", "ppo", "--resume", str(run_dir), "--rounds", "3"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"resume: {latest}: damaged: truncated to" in err
    assert "using the previous checkpoint checkpoint.prev.pt instead" in err
    loaded = [
        e.payload.round for e in read_events(run_dir / "events.jsonl") if e.event_type.name == "CHECKPOINT_LOADED"
    ]  # type: ignore[union-attr]
    assert loaded == [1]  # it continued from round 1, and ran rounds 2 and 3 again
    rounds = [
        e.payload.round for e in read_events(run_dir / "events.jsonl") if e.event_type.name == "PPO_UPDATE_COMPLETED"
    ]  # type: ignore[union-attr]
    assert rounds == [1, 2, 3]
    assert json.loads((run_dir / "summary.json").read_text())["episodes"] == 6


def test_both_checkpoints_damaged_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "ppo", *PPO_SMALL, "--rounds", "2", "--run-dir", str(run_dir)]) == 0
    for path in (run_dir / "checkpoint.pt", run_dir / "checkpoint.prev.pt"):
        path.write_bytes(path.read_bytes()[:100])
    before = (run_dir / "events.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["train", "ppo", "--resume", str(run_dir), "--rounds", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint.pt: damaged" in err and "checkpoint.prev.pt: damaged" in err
    assert (run_dir / "events.jsonl").read_bytes() == before  # nothing written


def test_ctrl_c_ends_an_experiment_pack_after_closing_its_current_run(tmp_path: Path) -> None:
    out = tmp_path / "pack"
    run = Run("experiment", "run", "phase0", "--quick", "--out", str(out))
    first = out / "control-s0" / "events.jsonl"  # the pack's first run (the quick scale starts with control, seed 0)
    run.wait_for_line("episode 1/2:")  # the first run's first episode is done; its second is under way
    run.process.send_signal(signal.SIGINT)
    code, err = run.finish()
    assert code == 130, err
    assert_ended_interrupted(first.parent, err, "SIGINT")
    assert "0 of " in err and "no comparison was written" in err
    assert not (out / "comparison.html").exists() and not (out / "results.json").exists()


def test_a_checkpoint_of_another_observation_version_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose checkpoints hold a policy for another observation (here: written before the version was
    recorded, version 2) is refused by name, before the log is rewound: nothing written."""
    run_dir = tmp_path / "run"
    assert main(["train", "ppo", *PPO_SMALL, "--rounds", "1", "--run-dir", str(run_dir)]) == 0
    payload = read_checkpoint(run_dir / "checkpoint.pt")
    del payload["obs_version"]
    write_checkpoint(run_dir / "checkpoint.pt", payload)
    before = (run_dir / "events.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["train", "ppo", "--resume", str(run_dir), "--rounds", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a policy for observation version 2" in err and "Traceback" not in err
    assert (run_dir / "events.jsonl").read_bytes() == before
