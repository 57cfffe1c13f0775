"""`esper evaluate`: a trained PPO policy acts deterministically on fresh seeds, in ordinary run directories; a
training seed, a run that is not PPO training, or a missing checkpoint is refused by name (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.cli.main import main
from esper.leyline import TelemetryEventType, loads
from esper.leyline.contracts.telemetry_event import TelemetryEvent


def _actions(run_dir: Path) -> list[tuple[int, object]]:
    events = [loads(TelemetryEvent, line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [(e.epoch, e.payload) for e in events if e.event_type is TelemetryEventType.ACTION_TAKEN]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ppo") / "trained"
    argv = ["train", "ppo", "--rounds", "1", "--envs", "2", "--episode-length", "4", "--seed", "0"]
    assert main([*argv, "--slots", "r0c0", "--run-dir", str(run)]) == 0
    return run


def test_a_trained_policy_acts_deterministically_on_fresh_seeds(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained), "--seeds", "3", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean ± 95 % CI" in printed and "difference from host-only" in printed
    for seed in (3, 4):
        config = json.loads((out / f"s{seed}" / "config.json").read_text())
        assert config["seed"] == seed and config["policy"] == "ppo" and config["episodes"] == 1
        assert config["evaluates"] == str(trained / "checkpoint.pt")
        summary = json.loads((out / f"s{seed}" / "summary.json").read_text())
        assert summary["baseline_accuracy"] is not None and summary["episodes"] == 1
    again = tmp_path / "again"
    assert main(["evaluate", str(trained), "--seeds", "3", "--out", str(again)]) == 0
    assert _actions(again / "s3") == _actions(out / "s3")  # no sampling: the same seed, the same decisions


def test_evaluation_refuses_training_seeds_and_other_runs(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Environment 1 of the run trained on seed 0 + 1000.
    assert main(["evaluate", str(trained), "--seeds", "5", "1000", "--out", str(tmp_path / "x")]) == 2
    assert "--seeds: [1000] trained the policy (training seeds [0, 1000])" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing half-written
    heuristic = tmp_path / "heuristic"
    argv = ["train", "heuristic", "--episodes", "1", "--epochs", "2", "--slots", "r0c0", "--run-dir", str(heuristic)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["evaluate", str(heuristic)]) == 2
    assert "is a heuristic run; evaluate a PPO training run" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((trained / "config.json").read_text())
    assert main(["evaluate", str(empty)]) == 2
    assert "checkpoint.pt" in capsys.readouterr().err
    assert main(["evaluate", str(trained), "--task", "charlm"]) == 2
    assert "--task: charlm is a transformer task; the policy was trained on cnn (digits)" in capsys.readouterr().err
