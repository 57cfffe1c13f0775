from __future__ import annotations

from pathlib import Path

import pytest

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
