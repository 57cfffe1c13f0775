"""`esper train ppo`: the run layout, a kill and `--resume`, and config-json validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esper.cli.main import main
from esper.karn import read_events

SMALL = ["--task", "digits", "--envs", "2", "--episode-length", "8", "--checkpoint-every", "1"]


def checkpoint_round(events: Path) -> int:
    if not events.is_file():
        return 0
    rounds = [
        json.loads(line)["payload"]["round"]
        for line in events.read_text().splitlines()
        if line.endswith("}") and '"event_type":"CHECKPOINT_SAVED"' in line
    ]
    return max(rounds, default=0)


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "esper.cli.main",
        "train",
        "ppo",
        *SMALL,
        "--rounds",
        "4",
        "--run-dir",
        str(run_dir),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while checkpoint_round(run_dir / "events.jsonl") < 1:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint within the deadline"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)  # mid-run, as a crash would
    process.wait()
    killed_at = checkpoint_round(run_dir / "events.jsonl")
    assert 1 <= killed_at < 4

    assert main(["train", "ppo", "--resume", str(run_dir)]) == 0
    events = list(read_events(run_dir / "events.jsonl"))
    loaded = [e.payload for e in events if e.event_type.name == "CHECKPOINT_LOADED"]
    assert len(loaded) == 1 and loaded[0].round >= killed_at
    after = events.index(next(e for e in events if e.event_type.name == "CHECKPOINT_LOADED"))
    rounds = [e.payload.round for e in events[after:] if e.event_type.name == "PPO_UPDATE_COMPLETED"]
    assert rounds == list(range(loaded[0].round + 1, 5))  # the round counter carries on
    assert checkpoint_round(run_dir / "events.jsonl") == 4
    assert json.loads((run_dir / "summary.json").read_text())["policy"] == "ppo"


def test_config_json_is_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"ppo": {"learning_rate": 1e-3, "lr_typo": 1}}))
    run_dir = tmp_path / "run"
    assert main(["train", "ppo", *SMALL, "--config-json", str(config), "--run-dir", str(run_dir)]) == 2
    assert "PpoConfig.lr_typo: Additional properties are not allowed" in capsys.readouterr().err
    config.write_text(json.dumps({"reward": {"intervention_costs": {"WAIT": 0.0}}}))
    assert main(["train", "ppo", *SMALL, "--config-json", str(config), "--run-dir", str(run_dir)]) == 2
    assert "intervention_costs: missing" in capsys.readouterr().err
    config.write_text(json.dumps({"rewards": {}}))
    assert main(["train", "ppo", *SMALL, "--config-json", str(config), "--run-dir", str(run_dir)]) == 2
    assert "unknown section(s) ['rewards']" in capsys.readouterr().err
    assert main(["train", "ppo", "--envs", "0", "--run-dir", str(run_dir)]) == 2
    assert main(["train", "ppo", "--resume", str(tmp_path / "nothing")]) == 2
    assert not run_dir.exists()


@pytest.mark.slow
def test_ppo_reward_rises_on_digits(tmp_path: Path) -> None:
    """A fixed-seed run (24 rounds x 4 environments x 16 epochs, lr 1e-3): the mean episode reward of the last six
    rounds beats the first six. Seen in this form: 1.98 -> 2.40 on the 2-core CPU machine (about 4 minutes)."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"ppo": {"learning_rate": 0.001}}))
    run_dir = tmp_path / "run"
    flags = ["--task", "digits", "--envs", "4", "--episode-length", "16", "--rounds", "24", "--checkpoint-every", "24"]
    assert main(["train", "ppo", *flags, "--seed", "0", "--config-json", str(config), "--run-dir", str(run_dir)]) == 0
    outcomes = [
        e.payload.outcome for e in read_events(run_dir / "events.jsonl") if e.event_type.name == "EPISODE_OUTCOME"
    ]
    rewards = [o.episode_reward for o in outcomes]
    assert len(rewards) == 96
    first, last = sum(rewards[:24]) / 24, sum(rewards[-24:]) / 24
    assert last > first, (first, last)
