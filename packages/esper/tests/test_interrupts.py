"""Ctrl-C and SIGTERM end a real run at an epoch boundary: exit 130, no traceback, TRAINING_COMPLETED(interrupted),
a log Karn loads; a PPO run also leaves a checkpoint that `--resume` continues from, and a damaged latest
checkpoint falls back to the previous one. Every wait is on a line of the run's event log, never on a sleep."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from esper.cli.main import main
from esper.karn import RunStore, read_events
from esper.karn.runs import describe_run
from esper.simic import previous_path, read_checkpoint

PPO_SMALL = ["--task", "digits", "--envs", "2", "--episode-length", "6"]
DEADLINE = 240.0  # seconds a run may take to reach the awaited line on a loaded machine


def start(*argv: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "esper.cli.main", *argv]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_event(process: subprocess.Popen[str], events: Path, wanted: Callable[[dict[str, Any]], bool]) -> None:
    """Block until the run's log holds a complete line matching `wanted` (the run must still be alive)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        if events.is_file():
            lines = events.read_text(encoding="utf-8").split("\n")[:-1]  # complete lines only
            if any(wanted(json.loads(line)) for line in lines):
                return
        assert process.poll() is None, f"the run ended first: {process.communicate()}"
        assert time.monotonic() < deadline, "the awaited event never came"
        time.sleep(0.05)  # polling the file: the wait itself is on the event line above


def of_type(name: str, **payload: object) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event_type"] == name and all(e["payload"][k] == v for k, v in payload.items())


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=DEADLINE)
    return process.returncode, out, err


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
    process = start("train", "heuristic", "--episodes", "3", "--epochs", "400", "--run-dir", str(run_dir))
    wait_for_event(process, run_dir / "events.jsonl", of_type("ACTION_TAKEN"))
    process.send_signal(signal.SIGINT)
    code, _, err = finish(process)
    assert code == 130, err
    assert_ended_interrupted(run_dir, err, "SIGINT")
    assert "run the same command again" in err


def test_sigterm_ends_a_ppo_run_with_a_checkpoint_that_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    events = run_dir / "events.jsonl"
    process = start("train", "ppo", *PPO_SMALL, "--rounds", "40", "--run-dir", str(run_dir))
    wait_for_event(process, events, of_type("CHECKPOINT_SAVED", round=1))
    process.send_signal(signal.SIGTERM)
    code, _, err = finish(process)
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
    process = start("experiment", "run", "phase0", "--quick", "--out", str(out))
    first = out / "control-s0" / "events.jsonl"  # the pack's first run (the quick scale starts with control, seed 0)
    wait_for_event(process, first, of_type("ACTION_TAKEN"))
    process.send_signal(signal.SIGINT)
    code, _, err = finish(process)
    assert code == 130, err
    assert_ended_interrupted(first.parent, err, "SIGINT")
    assert "0 of " in err and "no comparison was written" in err
    assert not (out / "comparison.html").exists() and not (out / "results.json").exists()
