"""`esper karn ...` and `esper gates` on scripted runs, and `esper train ... --tui` end to end under tmux."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from karn_synthetic import OP, scripted_run

from esper.cli.main import main

LADDER = [(1, OP.GERMINATE), (3, OP.GROW_INTERNAL), (5, OP.GROW_INTERNAL)]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_runs_lists_runs_as_a_table_and_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scripted_run(tmp_path / "alpha", LADDER)
    code, out, _ = run_cli(["karn", "runs", "--runs-dir", str(tmp_path)], capsys)
    assert code == 0
    header, _, row = out.splitlines()
    assert header.split() == ["run", "task", "policy", "status", "episodes", "final", "acc", "%", "events", "started"]
    assert row.split()[:5] == ["alpha", "digits", "ppo", "finished", "1"]
    code, out, _ = run_cli(["karn", "runs", "--runs-dir", str(tmp_path), "--json"], capsys)
    listing = json.loads(out)
    assert listing[0]["run_id"] == "alpha" and listing[0]["events"] > 20


def test_sql_prints_rows_and_names_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scripted_run(tmp_path / "alpha", LADDER)
    query = "SELECT op, count(*) AS n FROM actions WHERE op <> 'WAIT' GROUP BY op ORDER BY op"
    code, out, _ = run_cli(["karn", "sql", "alpha", query, "--runs-dir", str(tmp_path), "--json"], capsys)
    assert code == 0 and json.loads(out) == [{"op": "GERMINATE", "n": 1}, {"op": "GROW_INTERNAL", "n": 2}]
    code, out, _ = run_cli(["karn", "sql", str(tmp_path / "alpha"), query], capsys)
    assert code == 0 and "GROW_INTERNAL  2" in out and "(2 rows)" in out
    code, _, err = run_cli(["karn", "sql", "alpha", "SELECT nope FROM actions", "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and "query:" in err and "nope" in err
    code, _, err = run_cli(["karn", "sql", "missing", "SELECT 1", "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and "'missing' is neither a run directory nor a run in" in err


def test_views_lists_every_view(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["karn", "views"], capsys)
    names = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and {"events", "actions", "anti_thrash", "roi", "internal_op_share"} <= set(names)


def test_gates_exit_code_is_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scripted_run(tmp_path / "treat", LADDER, op_entropies=(0.6, 0.5))
    scripted_run(tmp_path / "ctrl", [(1, OP.GERMINATE, "conv_heavy")], final_accuracy=88.0, added_params=2000)
    scripted_run(tmp_path / "flip", [(1, OP.GERMINATE), (2, OP.GROW_INTERNAL), (3, OP.SHRINK_INTERNAL)])
    base = ["--runs-dir", str(tmp_path)]
    code, out, _ = run_cli(["gates", "treat", "--control", "ctrl", *base], capsys)
    # 7 gates that apply pass (surface_preference does not apply: SKIP), plus the verdict line
    assert code == 0 and "ALL GATES PASS" in out and out.count("PASS") == 8
    code, out, _ = run_cli(["gates", "flip", "--control", "ctrl", *base, "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and not report["passed"]
    assert {g["gate"]: g["verdict"] for g in report["gates"]}["bounded_thrash"] == "fail"
    code, out, _ = run_cli(["gates", "treat", *base], capsys)  # no control: comparative gates skip, exit 1
    assert code == 1 and "SKIP" in out and "needs --control" in out
    # An evaluation run (no PPO update of its own) judged with the run that trained its policy: that run collapsed.
    scripted_run(tmp_path / "train", LADDER, op_entropies=(0.5, 0.05, 0.05, 0.05))
    code, out, _ = run_cli(["gates", "flip", "--control", "ctrl", "--training", "train", *base, "--json"], capsys)
    entropy = {g["gate"]: g for g in json.loads(out)["gates"]}["no_entropy_collapse"]
    assert code == 1 and entropy["verdict"] == "fail" and "read from the training run" in entropy["note"]


def test_gates_thresholds_file_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scripted_run(tmp_path / "treat", LADDER)
    bad = tmp_path / "thresholds.json"
    bad.write_text(json.dumps({"min_internal_op_share": 2}))
    code, _, err = run_cli(["gates", "treat", "--runs-dir", str(tmp_path), "--thresholds", str(bad)], capsys)
    assert code == 2 and "--thresholds: GateThresholds.min_internal_op_share" in err
    bad.write_text(json.dumps({"min_internal_op_sahre": 0.2}))
    code, _, err = run_cli(["gates", "treat", "--runs-dir", str(tmp_path), "--thresholds", str(bad)], capsys)
    assert code == 2 and "min_internal_op_sahre" in err


def test_report_writes_html_and_check_events_reports_a_torn_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = scripted_run(tmp_path / "alpha", LADDER)
    code, out, _ = run_cli(["karn", "report", str(run_dir)], capsys)
    assert code == 0 and (run_dir / "report.html").read_text().startswith("<!doctype html>")
    with (run_dir / "events.jsonl").open("a") as f:
        f.write('{"event_id": "x", "ev')
    code, out, err = run_cli(["check-events", str(run_dir / "events.jsonl")], capsys)
    assert code == 0 and "torn last line" in err and "valid events" in out
    code, _, err = run_cli(["karn", "sql", str(run_dir), "SELECT count(*) FROM events"], capsys)
    assert code == 0 and "torn last line" in err


def _pane(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def test_train_with_tui_shows_the_run_live_and_finishes(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed: .ci/run installs it")
        pytest.skip("tmux is not installed here")
    run_dir = tmp_path / "tui-run"
    session = f"esper-tui-{os.getpid()}"
    # pytest exports LINES/COLUMNS (24x80) and Rich, under Textual, prefers them to the pane's real size.
    command = (
        f"unset LINES COLUMNS; {sys.executable} -m esper.cli.main train heuristic --episodes 1 --epochs 6 --tui "
        f"--run-dir {run_dir}; "
        f"echo EXIT=$? > {tmp_path / 'exit'}; sleep 30"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "45", command], check=True)
    subprocess.run(["tmux", "resize-window", "-t", session, "-x", "140", "-y", "45"], check=True)
    try:
        # Wait for the screen to show the end of the run: the header's "finished" and the event log's last line are
        # drawn by different panels, so a capture can catch one without the other; wait for both. The deadline is
        # a watchdog for a hung run (generous: a loaded machine is slow), not the synchronisation.
        deadline = time.monotonic() + 600
        screen = ""
        while time.monotonic() < deadline:
            screen = _pane(session)
            if "tui-run · digits / heuristic · finished" in screen and "training completed" in screen:
                break
            time.sleep(0.5)
        assert "tui-run · digits / heuristic · finished" in screen, screen
        assert "training completed" in screen, screen
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        while time.monotonic() < deadline and not (tmp_path / "exit").exists():
            time.sleep(0.2)
        assert (tmp_path / "exit").read_text().strip() == "EXIT=0"
        assert (run_dir / "summary.json").is_file()
        assert "final accuracy" in (tmp_path / "tui-run.log").read_text()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
