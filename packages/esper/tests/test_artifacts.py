"""What a real run records about itself and leaves behind: provenance in TRAINING_STARTED, system metrics in every
EPOCH_COMPLETED, and with --save-model the grown model of each episode, which `esper export` copies out and
`load_grown_model` reloads to the accuracy the run recorded."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esper.cli.main import main
from esper.karn import RunStore
from esper.karn.sinks import read_events
from esper.kasmina import evaluate, load_grown_model
from esper.leyline import EpochCompletedPayload, TelemetryEventType, TrainingStartedPayload
from esper.tolaria import get_task

REPO = Path(__file__).resolve().parents[3]
ARGS = ("train", "heuristic", "--task", "digits", "--episodes", "2", "--epochs", "12", "--save-model")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run, in its own process (the command line it records is its own)."""
    run = tmp_path_factory.mktemp("runs") / "grown"
    done = subprocess.run(
        [sys.executable, "-m", "esper.cli.main", *ARGS, "--run-dir", str(run)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return run


def test_training_started_records_the_provenance_of_the_run(run_dir: Path) -> None:
    (started,) = [
        e.payload for e in read_events(run_dir / "events.jsonl") if e.event_type is TelemetryEventType.TRAINING_STARTED
    ]
    assert isinstance(started, TrainingStartedPayload)
    prov = started.provenance
    assert prov.git_commit == git("rev-parse", "HEAD")
    assert prov.git_dirty == (git("status", "--porcelain", "--untracked-files=no") != "")
    assert Path(prov.command_line[0]).name == "main.py" and prov.command_line[1:] == (*ARGS, "--run-dir", str(run_dir))
    assert prov.torch_version == torch.__version__
    assert prov.python_version == platform.python_version()
    assert (prov.host_name, prov.platform) == (socket.gethostname(), platform.platform())
    assert prov.esper_version == "0.1.0" and started.device == "cpu"


def test_every_epoch_records_the_process_memory_and_cpu_time(run_dir: Path) -> None:
    epochs = [
        e.payload for e in read_events(run_dir / "events.jsonl") if e.event_type is TelemetryEventType.EPOCH_COMPLETED
    ]
    assert len(epochs) == 2 * 12
    systems = [p.system for p in epochs if isinstance(p, EpochCompletedPayload)]
    assert all(s.rss_mb > 50 and s.cuda_peak_mb is None for s in systems)  # torch alone holds more than 50 MiB
    cpu = [s.cpu_seconds for s in systems]
    assert cpu == sorted(cpu) and cpu[-1] > cpu[0]  # the process's CPU time only grows


def test_each_episode_saves_its_grown_model_and_export_copies_one_that_reloads(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = sorted(p.name for p in (run_dir / "models").iterdir())
    assert saved == ["episode0000-env00", "episode0001-env00"]
    assert main(["export", str(run_dir), "--out", str(tmp_path / "out"), "--episode", "0"]) == 0
    assert "exported grown episode 0 env 0" in capsys.readouterr().out
    model = load_grown_model(tmp_path / "out")
    record = model.record
    assert (record.run_id, record.episode, record.epoch) == ("grown", 0, 12)
    data = get_task("digits").load(None)
    loss, accuracy = evaluate(model, data.val_x, data.val_y)
    assert accuracy == record.val_accuracy and loss == pytest.approx(record.val_loss, abs=1e-6)
    # With no seed left live at the episode's end, the grown model is the network the episode last validated.
    with RunStore(run_dir) as store:
        last = store.one("SELECT val_accuracy FROM epochs WHERE episode = 0 ORDER BY epoch DESC LIMIT 1")
    if not record.live_seeds_left_out:
        assert accuracy == pytest.approx(last["val_accuracy"], abs=1e-9)
    # The default is the last episode; a second export into the same place is refused, nothing overwritten.
    assert main(["export", str(run_dir), "--out", str(tmp_path / "last")]) == 0
    assert json.loads((tmp_path / "last" / "model.json").read_text())["episode"] == 1
    assert main(["export", str(run_dir), "--out", str(tmp_path / "last")]) == 2
    assert "--out:" in capsys.readouterr().err


def test_export_names_what_is_missing(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run_dir), "--out", str(tmp_path / "a"), "--episode", "7"]) == 2
    assert "--episode: 7 has no saved model; saved episodes: 0, 1" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--out", str(tmp_path / "a"), "--env", "3"]) == 2
    assert "--env: episode 1 has no model of env 3" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "events.jsonl").write_text((run_dir / "events.jsonl").read_text())
    assert main(["export", str(bare), "--out", str(tmp_path / "a")]) == 2
    assert "saved no grown model (train it with --save-model)" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
