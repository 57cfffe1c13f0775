"""Real heuristic and PPO runs (tiny, on digits) through every Karn view: store, gates, TUI, web API, report."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from esper.cli.main import main
from esper.karn import VIEWS, RunStore, evaluate
from esper.karn.report import write_report
from esper.karn.tui import KarnApp
from esper.karn.web import DashboardServer


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    heuristic = ["train", "heuristic", "--episodes", "1", "--epochs", "30", "--run-dir", str(root / "heuristic")]
    assert main([*heuristic, "--blueprints", "conv_ladder", "conv_heavy"]) == 0
    ppo = ["train", "ppo", "--rounds", "2", "--envs", "2", "--episode-length", "8", "--run-dir", str(root / "ppo")]
    assert main(ppo) == 0
    return root


@pytest.mark.parametrize("run", ["heuristic", "ppo"])
def test_every_view_answers_on_a_real_run(runs: Path, run: str) -> None:
    store = RunStore(runs / run)
    assert store.torn_tail is None
    for view in VIEWS:
        store.view(view)  # a view that fails on real data raises QueryError naming it
    # summary.json's final accuracy is the mean over the last round's episodes (the heuristic's: all of them)
    last = 1 if run == "heuristic" else 2
    outcome = store.one(
        "SELECT avg(final_accuracy) AS acc FROM "
        "(SELECT final_accuracy FROM episode_outcomes ORDER BY seq DESC LIMIT ?)",
        [last],
    )
    summary = json.loads((runs / run / "summary.json").read_text())
    assert outcome is not None and outcome["acc"] == pytest.approx(summary["final_accuracy"])
    decisions = store.one("SELECT count(*) AS n FROM actions")
    epochs = store.one("SELECT count(*) AS n FROM epochs")
    assert decisions is not None and epochs is not None and decisions["n"] == epochs["n"] > 0
    verdicts = {r.gate: r.verdict.value for r in evaluate(store).results}
    assert verdicts["heavy_blueprint"] == "skip"
    if run == "ppo":
        assert store.query("SELECT count(*) FROM ppo_updates").rows[0][0] == 2
        assert store.query("SELECT count(*) FROM rewards").rows[0][0] == decisions["n"]


@pytest.mark.parametrize("run", ["heuristic", "ppo"])
def test_a_real_run_in_the_tui_the_web_api_and_the_report(runs: Path, run: str, tmp_path: Path) -> None:
    async def drive() -> None:
        app = KarnApp(runs / run)
        async with app.run_test(size=(140, 48)) as pilot:
            await pilot.pause()
            header = str(app.query_one("#header", Static).render())
            policy = "heuristic" if run == "heuristic" else "ppo"
            assert f"{run} · digits / {policy} · finished" in header
            assert app.query_one("#envs", DataTable).row_count == (1 if run == "heuristic" else 2)

    asyncio.run(drive())

    server = DashboardServer(runs, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"{server.url}api/runs/{run}", timeout=10) as response:
            snapshot = json.loads(response.read())
    finally:
        server.shutdown()
        server.server_close()
    assert snapshot["status"] == "finished" and sum(snapshot["ops"].values()) > 0
    assert len(snapshot["episodes"]) == (1 if run == "heuristic" else 4)

    out = tmp_path / f"{run}.html"
    write_report(RunStore(runs / run), out)
    text = out.read_text()
    assert f"Run {run}" in text and text.count("<svg") >= 4
