from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from esper.cli.flags import PACKAGES
from esper.cli.main import main
from esper.karn import JsonlSink
from esper.leyline import TelemetryHub, TrainingCompletedPayload


def test_contracts_lists_every_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contracts"]) == 0
    out = capsys.readouterr().out
    for package in ("leyline", "kasmina", "tolaria", "tamiyo", "simic", "karn"):
        assert f"esper.{package} (" in out
    assert "  SeedStateReport" in out and "  TaskConfig" in out


def test_check_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    hub = TelemetryHub("run", sinks=(JsonlSink(path),))
    for _ in range(3):
        hub.emit(TrainingCompletedPayload(episodes_completed=0, wall_seconds=0.0, interrupted=False))
    hub.close()
    assert main(["check-events", str(path)]) == 0
    assert "3 valid events" in capsys.readouterr().out
    with path.open("a") as f:
        f.write('{"event_id": 1}\n')
    assert main(["check-events", str(path)]) == 1
    assert "events.jsonl:4" in capsys.readouterr().err


def test_misuse_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["contracts", "--package", "nope"])
    assert caught.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["check-events", str(tmp_path / "missing.jsonl")]) == 2


TORCH_FREE_PROBE = """
import sys
from esper.cli.main import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit:  # argparse ends --help with SystemExit(0); the probe goes on to the next command
        pass
print("torch imported" if "torch" in sys.modules else "torch not imported")
"""


def test_commands_that_need_no_torch_do_not_import_it(tmp_path: Path) -> None:
    log = tmp_path / "run" / "events.jsonl"
    hub = TelemetryHub("run", sinks=(JsonlSink(log),))
    hub.emit(TrainingCompletedPayload(episodes_completed=0, wall_seconds=0.0, interrupted=False))
    hub.close()
    argvs = [
        ["--help"],
        ["--version"],
        ["train", "ppo", "--help"],
        ["contracts"],
        ["check-events", str(log)],
        ["karn", "runs", "--runs-dir", str(tmp_path)],
        ["karn", "views"],
        ["karn", "sql", str(log.parent), "SELECT count(*) FROM events"],
        ["gates", str(log.parent)],
    ]
    probe = TORCH_FREE_PROBE.format(argvs=argvs)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.rstrip().endswith("torch not imported"), done.stdout + done.stderr
    assert "esper.kasmina (" in done.stdout and "1 valid events" in done.stdout  # the commands really ran


def test_version_names_every_package_and_torch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == ["esper", *(f"esper-{p}" for p in PACKAGES), "torch"]
    assert all(len(line.split()) == 2 for line in lines)


def test_contracts_lists_the_contracts_not_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contracts", "--package", "kasmina"]) == 0
    out = capsys.readouterr().out
    assert "  CnnHostConfig" in out and "SeedSlot" not in out


def test_output_into_a_reader_that_closes_early_ends_quietly() -> None:
    command = f"{sys.executable} -m esper.cli.main contracts | head -n 1"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.startswith("esper.leyline (")
    assert done.stderr == ""


def test_a_broken_config_file_names_the_flag_the_file_and_the_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "config.json"
    bad.write_text('{"ppo": {\n  "gamma": 0.99,\n  oops\n}}\n')
    assert main(["train", "ppo", "--config-json", str(bad), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"esper train: error: --config-json: {bad}:3:3: invalid JSON: Expecting property name" in err
    assert not (tmp_path / "run").exists()
