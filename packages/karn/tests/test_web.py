"""The web dashboard: its JSON API over a real server, and the page end to end in headless Chromium (Debian's
`chromium` package; .ci/run installs it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from karn_synthetic import HEURISTIC_SEED_MARKS, OP, SyntheticRun, channel_run, heuristic_run, lattice_run

from esper.karn.web import Dashboard, DashboardServer


def ladder_run(run_dir: Path, *, finish: bool = True) -> SyntheticRun:
    run = SyntheticRun(run_dir, episode_length=8, n_envs=2)
    for env in (0, 1):
        run.start_episode(env, 0)
    run.decide(0, 1, OP.GERMINATE, blueprint="conv_ladder")
    run.decide(1, 1, OP.GERMINATE, slot="r0c1", blueprint="conv_heavy")
    run.decide(0, 2, OP.GROW_INTERNAL)
    run.decide(1, 2, OP.WAIT)
    run.decide(0, 3, OP.ADVANCE, success=False)
    run.ppo_update(1, 0.4)
    if finish:
        run.outcome(0, 91.0, 120)
        run.outcome(1, 89.0, 800, rollbacks=1)
        run.finish(baseline_accuracy=90.0)
    return run


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DashboardServer]:
    srv = DashboardServer(tmp_path, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get(srv: DashboardServer, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(srv.url.rstrip("/") + path, timeout=10) as response:
            body = response.read()
            kind = response.headers["Content-Type"]
            return response.status, json.loads(body) if kind.startswith("application/json") else body.decode()
    except urllib.error.HTTPError as exc:  # an error status is an answer under test: return it with its JSON body
        return exc.code, json.loads(exc.read())


def test_api_lists_runs_and_serves_incremental_snapshots(tmp_path: Path, server: DashboardServer) -> None:
    ladder_run(tmp_path / "a")
    assert server.url.startswith("http://127.0.0.1:")
    status, runs = get(server, "/api/runs")
    assert status == 200 and [r["run_id"] for r in runs] == ["a"] and runs[0]["status"] == "finished"
    status, snap = get(server, "/api/runs/a")
    assert status == 200 and snap["status"] == "finished" and snap["ops"]["GROW_INTERNAL"] == 1
    assert snap["envs"][0]["slots"]["r0c0"]["level"] == 2 and snap["governor_rollbacks"] == 1
    # The slots of the slot config, in action order, each with its surface (lower-case), in the state and the lanes.
    assert snap["slot_ids"] == ["r0c0", "r0c1", "r0c2"]
    assert snap["surfaces"] == dict.fromkeys(snap["slot_ids"], "block_end")
    assert [lane["surface"] for lane in snap["envs"][0]["slots"].values()] == ["block_end"] * 3
    # |delta| / |x| (karn_synthetic: 0.1 n + 0.01 k for seed n at the k-th epoch it is reported in), per env.
    assert [lane["delta_ratio"] for lane in snap["envs"][0]["slots"].values()] == [0.12, None, None]
    assert snap["envs"][0]["delta_ratios"] == [
        {"seed_id": "env0-seed1", "slot": "r0c0", "blueprint": "conv_ladder", "points": [[2, 0.11], [3, 0.12]]}
    ]
    assert snap["envs"][1]["delta_ratios"] == [
        {"seed_id": "env1-seed2", "slot": "r0c1", "blueprint": "conv_heavy", "points": [[2, 0.21]]}
    ]
    # A PPO run has no host-only baseline; the seed events of each env's episode are marked at their epochs.
    assert [env["baseline"] for env in snap["envs"]] == [[], []]
    assert [(m["epoch"], m["kind"]) for m in snap["envs"][0]["seed_marks"]] == [(1, "germinate"), (2, "level")]
    assert [o["baseline_accuracy"] for o in snap["episodes"]] == [None, None]
    last = snap["log"][-1]["seq"]
    status, again = get(server, f"/api/runs/a?log_after={last - 2}")
    assert [e["seq"] for e in again["log"]] == [last - 1, last]


def test_api_errors_name_the_problem(tmp_path: Path, server: DashboardServer) -> None:
    ladder_run(tmp_path / "a")
    assert get(server, "/api/runs/nope") == (404, {"error": f"no run 'nope' in {tmp_path}"})
    status, body = get(server, "/api/runs/a?log_after=x")
    assert status == 400 and "log_after" in body["error"]
    assert get(server, "/static/..%2Fweb.py")[0] == 404
    assert get(server, "/static/missing.js")[0] == 404
    events = tmp_path / "a" / "events.jsonl"
    lines = events.read_text().splitlines()
    lines[1] = "{broken"
    events.write_text("\n".join(lines) + "\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "events.jsonl").write_text("\n".join(lines) + "\n")
    status, body = get(server, "/api/runs/b")
    assert status == 422 and "events.jsonl:2: not JSON" in body["error"]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium)")
    return found


def browse(url: str, *, budget_ms: int, screenshot: Path | None = None) -> str:
    """The page's DOM after `budget_ms` of virtual time in headless Chromium (optionally also a screenshot)."""
    base = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--virtual-time-budget={budget_ms}",
        "--window-size=1300,1700",
    ]
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", url], check=True, capture_output=True, timeout=120)
    done = subprocess.run([*base, "--dump-dom", url], check=True, capture_output=True, timeout=120, text=True)
    return done.stdout


def test_the_page_renders_a_finished_run_in_headless_chromium(tmp_path: Path, server: DashboardServer) -> None:
    ladder_run(tmp_path / "a")
    shot = tmp_path / "dashboard.png"
    dom = browse(server.url + "#run=a", budget_ms=3000, screenshot=shot)
    assert 'data-status="finished"' in dom
    assert re.search(r'id="status" class="status finished">finished<', dom)
    assert dom.count('class="bar-row"') == 4  # GERMINATE, WAIT, GROW_INTERNAL, ADVANCE
    assert 'data-op="GROW_INTERNAL"' in dom
    assert re.search(r'data-slot="r0c0".*?r0c0 block_end conv_ladder L2/4', dom)
    assert re.search(r'data-slot="r0c0"><span>[^<]*</span><span class="ratio">0\.120</span>', dom)
    assert re.search(r'data-slot="r0c1"><span>r0c1 block_end -</span><span class="ratio">-</span>', dom)
    # The |delta|/|x| chart: env 0's one seed (env 1's seed, at 0.21, is not in it), both epochs, on a log scale.
    delta = delta_chart(dom)
    assert delta == {
        "points": "2",
        "counts": "2",
        "scale": "log",
        "series": "r0c0 conv_ladder (env0-seed1)",
        "marks": "0",
        "mark-kinds": "",
        "ymin": "0.11",
        "ymax": "0.12",
    }
    # Accuracy: the selected env's (env 0) epochs, no host-only baseline (a PPO run), its two seed events marked.
    accuracy = chart_data(dom, "accuracy")
    assert (accuracy["series"], accuracy["counts"]) == ("env 0 val acc", "3")
    assert (accuracy["marks"], accuracy["mark-kinds"]) == ("2", "germinate, level")
    assert chart_data(dom, "episodes")["series"] == "final val acc"
    assert '<span id="delta-env">env 0</span>' in dom
    for chart in ("accuracy", "episodes", "losses"):
        points = re.search(rf'id="chart-{chart}"[^>]*data-points="(\d+)"', dom)
        assert points is not None and int(points.group(1)) > 0, chart
    assert "GOVERNOR ROLLBACK (divergence)" in dom and "internal grow 1 -&gt; 2" in dom
    assert shot.stat().st_size > 20_000


def test_the_page_shows_each_lanes_surface_on_a_lattice_run(tmp_path: Path, server: DashboardServer) -> None:
    lattice_run(tmp_path / "l")
    status, snap = get(server, "/api/runs/l")
    assert status == 200 and snap["slot_ids"] == ["r0c0", "r1c0", "r0c1", "r1c1"]
    assert snap["surfaces"] == {"r0c0": "post_attn", "r1c0": "post_mlp", "r0c1": "post_attn", "r1c1": "post_mlp"}
    dom = browse(server.url + "#run=l", budget_ms=3000)
    assert 'data-status="finished"' in dom
    lanes = re.findall(r'<div class="lane" data-slot="(\w+)"><span>([^<]*)</span>', dom)
    assert lanes == [
        ("r0c0", "r0c0 post_attn lora_ladder L3/4"),
        ("r1c0", "r1c0 post_mlp lora_large"),
        ("r0c1", "r0c1 post_attn lora"),
        ("r1c1", "r1c1 post_mlp -"),
    ]
    assert "germinated lora_large on post_mlp" in dom


def test_the_page_names_a_channel_ladders_channels_per_group(tmp_path: Path, server: DashboardServer) -> None:
    # karn_synthetic.channel_run: a channel_ladder (2 channels per group) in the pre-pool r0c1 grown to level 2, a
    # conv_heavy (no groups) in the post-pool r1c0.
    channel_run(tmp_path / "c")
    status, snap = get(server, "/api/runs/c")
    assert status == 200
    lanes = snap["envs"][0]["slots"]
    assert {slot: lane["group_size"] for slot, lane in lanes.items()} == {
        "r0c0": 0,
        "r1c0": 0,
        "r0c1": 2,
        "r1c1": 0,
        "r0c2": 0,
    }
    dom = browse(server.url + "#run=c", budget_ms=3000)
    assert 'data-status="finished"' in dom
    labels = re.findall(r'<div class="lane" data-slot="(\w+)"><span>([^<]*)</span>', dom)
    assert labels == [
        ("r0c0", "r0c0 pre_pool -"),
        ("r1c0", "r1c0 post_pool conv_heavy"),
        ("r0c1", "r0c1 pre_pool channel_ladder L2/4 x2ch"),
        ("r1c1", "r1c1 post_pool -"),
        ("r0c2", "r0c2 pre_pool -"),
    ]
    assert "germinated channel_ladder on pre_pool (env0-seed1, 100 params, level 1/4, 2 channels per group)" in dom


def chart_data(dom: str, name: str) -> dict[str, str]:
    """The data-* attributes the page's chart `chart-<name>` records about what it drew."""
    canvas = re.search(rf'<canvas id="chart-{name}"([^>]*)>', dom)
    assert canvas is not None, f"no chart {name}"
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', canvas.group(1)))


def delta_chart(dom: str) -> dict[str, str]:
    """The data-* attributes the page's |delta|/|x| chart records about what it drew."""
    return chart_data(dom, "delta-ratio")


def test_the_page_overlays_the_host_only_baseline_and_marks_seed_events(
    tmp_path: Path, server: DashboardServer
) -> None:
    heuristic_run(tmp_path / "h", episodes=2)
    dom = browse(server.url + "#run=h", budget_ms=3000)
    assert 'data-status="finished"' in dom
    # Env 0's current (last) episode: its 6 epochs (53.5..56), its baseline's 6 (karn_synthetic: 51..56) and its
    # five seed events.
    accuracy = chart_data(dom, "accuracy")
    assert accuracy["series"] == "env 0 val acc, host-only baseline" and accuracy["counts"] == "6, 6"
    assert (accuracy["points"], accuracy["ymin"], accuracy["ymax"]) == ("12", "51", "56")
    assert accuracy["marks"] == str(len(HEURISTIC_SEED_MARKS)) == "5"
    assert accuracy["mark-kinds"] == "germinate, level, fossilize, prune"
    assert '<span id="accuracy-env">env 0 · episode 1</span>' in dom
    # Per episode: the final accuracies (60, 61) and the host-only finals (46, 56).
    episodes = chart_data(dom, "episodes")
    assert episodes["series"] == "final val acc, host-only final val acc" and episodes["counts"] == "2, 2"
    assert (episodes["ymin"], episodes["ymax"]) == ("46", "61")
    assert dom.count('data-type="HOST_BASELINE_EPOCH"') == 12


class AppendingDashboard(Dashboard):
    """Writes the rest of the run right after serving the page its first snapshot: the page must pick it up."""

    def __init__(self, runs_dir: Path, run: SyntheticRun) -> None:
        super().__init__(runs_dir)
        self.run = run

    def snapshot(self, run_id: str, log_after: int) -> dict[str, Any] | None:
        snap = super().snapshot(run_id, log_after)
        if self.snapshots_served == 1:
            self.run.decide(0, 4, OP.SHRINK_INTERNAL)
            self.run.outcome(0, 92.0, 80)
            self.run.outcome(1, 88.0, 800)
            self.run.finish()
        return snap


def test_the_page_updates_while_the_run_is_in_progress(tmp_path: Path, server: DashboardServer) -> None:
    run = ladder_run(tmp_path / "live", finish=False)
    server.dashboard = AppendingDashboard(tmp_path, run)
    dom = browse(server.url + "#run=live", budget_ms=4000)
    assert server.dashboard.snapshots_served >= 2  # the page polled again after the first snapshot
    assert 'data-status="finished"' in dom
    assert "internal shrink 2 -&gt; 1" in dom  # an event written after the page loaded
    assert "germinated conv_ladder" in dom  # and the events from before, each once
    assert dom.count("germinated conv_ladder") == 1
    assert re.search(r'data-slot="r0c0"><span>[^<]*</span><span class="ratio">0\.130</span>', dom)  # epoch 4
    assert delta_chart(dom)["points"] == "3" and delta_chart(dom)["ymax"] == "0.13"
