"""The web dashboard: its JSON API over a real server, and the page end to end in headless Chromium (Debian's
`chromium` package; .ci/run installs it)."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from karn_synthetic import (
    HEURISTIC_SEED_MARKS,
    OP,
    PROVENANCE,
    SyntheticRun,
    channel_run,
    heuristic_run,
    lattice_run,
)

from esper.karn.web import MAX_COMPARED, Dashboard, DashboardHandler, DashboardServer, static_file


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
    assert get(server, "/static/..%2F..%2F..%2F..%2Fpyproject.txt")[0] == 404  # .txt is served, traversal is not
    events = tmp_path / "a" / "events.jsonl"
    lines = events.read_text().splitlines()
    lines[1] = "{broken"
    events.write_text("\n".join(lines) + "\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "events.jsonl").write_text("\n".join(lines) + "\n")
    status, body = get(server, "/api/runs/b")
    assert status == 422 and "events.jsonl:2: not JSON" in body["error"]


# The vendored uPlot 1.6.32 (npm's uplot@1.6.32 tarball, unchanged; docs/karn.md): an edit to it fails here.
UPLOT_SHA256 = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "uPlot.LICENSE.txt": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}


def test_the_vendored_chart_library_and_its_licence_are_served(server: DashboardServer) -> None:
    for name, digest in UPLOT_SHA256.items():
        found = static_file(name)
        assert found is not None and hashlib.sha256(found[0]).hexdigest() == digest, name
    status, script = get(server, "/static/uPlot.iife.min.js")
    assert status == 200 and script.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    status, licence = get(server, "/static/uPlot.LICENSE.txt")
    assert status == 200 and licence.startswith("The MIT License (MIT)") and "Leon Sorokin" in licence
    assert get(server, "/static/uPlot.min.css")[0] == 200
    status, page = get(server, "/")
    assert '<script src="/static/uPlot.iife.min.js">' in page and 'href="/static/uPlot.LICENSE.txt"' in page
    assert "http" not in re.sub(r'href="/static/[^"]+"', "", page).replace("http-equiv", "")  # no CDN, nothing remote
    for name in ("../web.py", "..", ".hidden.txt", "static/app.js", "web.py", "uPlot.LICENSE"):
        assert static_file(name) is None, name


def test_api_compare_returns_each_runs_series_in_the_order_named(tmp_path: Path, server: DashboardServer) -> None:
    heuristic_run(tmp_path / "h", episodes=2)
    ladder_run(tmp_path / "p")
    status, body = get(server, "/api/compare?runs=p,h")
    assert status == 200 and [run["run_id"] for run in body["runs"]] == ["p", "h"]
    ppo, heuristic = body["runs"]
    # The heuristic run: both outcomes with their host-only finals (karn_synthetic: 46, 56), env 0's two episodes
    # end to end (each with its baseline), and where it came from.
    assert [(o["episode"], o["final_accuracy"], o["baseline_accuracy"]) for o in heuristic["episodes"]] == [
        (0, 60.0, 46.0),
        (1, 61.0, 56.0),
    ]
    assert [trace["episode"] for trace in heuristic["accuracy"]] == [0, 1]
    assert [len(trace["accuracy"]) for trace in heuristic["accuracy"]] == [6, 6]
    assert heuristic["accuracy"][1]["baseline"][-1] == [6, 56.0]
    assert heuristic["started"]["provenance"]["git_commit"] == PROVENANCE.git_commit
    assert heuristic["started"]["policy"] == "heuristic" and heuristic["status"] == "finished"
    # The PPO run: an outcome per env, params and reward included; env 0's one episode, no baseline.
    assert [(o["env"], o["final_accuracy"], o["added_params"], o["reward"]) for o in ppo["episodes"]] == [
        (0, 91.0, 120, 1.0),
        (1, 89.0, 800, 1.0),
    ]
    assert [(trace["episode"], len(trace["accuracy"]), trace["baseline"]) for trace in ppo["accuracy"]] == [(0, 3, [])]


def test_api_compare_refuses_bad_requests_naming_the_problem(tmp_path: Path, server: DashboardServer) -> None:
    ladder_run(tmp_path / "a")
    ladder_run(tmp_path / "b")
    assert get(server, "/api/compare?runs=a,nope") == (404, {"error": f"no run 'nope' in {tmp_path}"})
    bad = {
        "": "give the runs to compare once",
        "?runs=a&runs=b": "give the runs to compare once",
        "?runs=": "not a run id: ''",
        "?runs=a,": "not a run id: ''",
        "?runs=a,..%2Fb": "not a run id: '../b'",
        "?runs=a,b,a": "a run is named twice",
        "?runs=" + ",".join(f"r{i}" for i in range(MAX_COMPARED + 1)): f"at most {MAX_COMPARED} runs",
    }
    for query, error in bad.items():
        status, body = get(server, "/api/compare" + query)
        assert status == 400 and error in body["error"], query
    events = tmp_path / "b" / "events.jsonl"
    lines = events.read_text().splitlines()
    lines[2] = "{broken"
    events.write_text("\n".join(lines) + "\n")
    status, body = get(server, "/api/compare?runs=a,b")
    assert status == 422 and "events.jsonl:3: not JSON" in body["error"]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium)")
    return found


def browse(url: str, *, budget_ms: int, screenshot: Path | None = None, pixel_ratio: int = 1) -> str:
    """The page's DOM after `budget_ms` of virtual time in headless Chromium (optionally also a screenshot), on a
    screen of `pixel_ratio` device pixels per CSS pixel."""
    base = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--virtual-time-budget={budget_ms}",
        "--window-size=1300,1700",
        f"--force-device-scale-factor={pixel_ratio}",
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
        "boundaries": "0",
        "ymin": "0.11",
        "ymax": "0.12",
    }
    # Accuracy: the selected env's (env 0) epochs, no host-only baseline (a PPO run), its two seed events marked;
    # one episode, so no episode boundary.
    accuracy = chart_data(dom, "accuracy")
    assert (accuracy["series"], accuracy["counts"]) == ("env 0 val acc", "3")
    assert (accuracy["marks"], accuracy["mark-kinds"], accuracy["boundaries"]) == ("2", "germinate, level", "0")
    assert chart_data(dom, "episodes")["series"] == "final val acc"
    assert chart_data(dom, "ppo")["series"] == "policy loss, value loss, entropy" and not panel_hidden(dom, "ppo")
    # The header: where the run came from (karn_synthetic.PROVENANCE) and the latest epoch's process reading.
    assert '<span id="prov-commit" title="0123456789abcdef0123456789abcdef01234567">commit 0123456</span>' in dom
    assert '<span id="prov-command" class="command" title="esper train heuristic --task digits">' in dom
    assert ">esper 0.1.0 · torch 2.9.1 · Python 3.11.7<" in dom
    assert ">synthetic-host (Linux-synthetic) · device cpu<" in dom
    assert '<span id="system">RSS 303 MiB · CPU 6.0 s</span>' in dom  # epoch 3: 300 + 3 MiB, 2 * 3 s; no CUDA
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
    element = re.search(rf'<div id="chart-{name}" class="chart"([^>]*)>', dom)
    assert element is not None, f"no chart {name}"
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', element.group(1)))


def legend_names(dom: str, name: str) -> list[str]:
    """The series names in the uPlot legend of chart `chart-<name>` (the x axis's entry first)."""
    start = dom.index(f'<div id="chart-{name}" class="chart"')
    legend = dom[start : dom.index('<div class="mark-legend"', start)]
    return re.findall(r'<div class="u-label">([^<]*)</div>', legend)


def panel_hidden(dom: str, name: str) -> bool:
    """Whether the section holding chart `chart-<name>` is hidden (a panel with nothing to draw)."""
    section = re.search(
        rf'<section class="card(?: wide)?"( hidden="")?>(?:(?!</section>).)*id="chart-{name}"', dom, re.S
    )
    assert section is not None, f"no panel for chart {name}"
    return section.group(1) is not None


def delta_chart(dom: str) -> dict[str, str]:
    """The data-* attributes the page's |delta|/|x| chart records about what it drew."""
    return chart_data(dom, "delta-ratio")


def test_the_page_overlays_the_host_only_baseline_and_marks_seed_events(
    tmp_path: Path, server: DashboardServer
) -> None:
    heuristic_run(tmp_path / "h", episodes=2)
    dom = browse(server.url + "#run=h", budget_ms=3000, pixel_ratio=2)
    assert 'data-status="finished"' in dom
    # Sharp on a HiDPI screen: the chart's canvas has two device pixels per CSS pixel each way.
    wrap = re.search(
        r'id="chart-accuracy".*?<div class="u-wrap" style="width: (\d+)px; height: (\d+)px;">.*?<canvas '
        r'width="(\d+)" height="(\d+)">',
        dom,
    )
    assert wrap is not None
    css_width, css_height, width, height = map(int, wrap.groups())
    assert (width, height) == (2 * css_width, 2 * css_height) and css_width > 1000
    # Env 0's two episodes end to end: 6 epochs each (50.5..56), each episode's baseline (karn_synthetic: 41..46 and
    # 51..56), both episodes' five seed events, and a boundary where each episode starts.
    accuracy = chart_data(dom, "accuracy")
    assert accuracy["series"] == "env 0 val acc, host-only baseline" and accuracy["counts"] == "12, 12"
    assert (accuracy["points"], accuracy["ymin"], accuracy["ymax"]) == ("24", "41", "56")
    assert accuracy["marks"] == str(2 * len(HEURISTIC_SEED_MARKS)) == "10"
    assert accuracy["mark-kinds"] == "germinate, level, fossilize, prune" and accuracy["boundaries"] == "2"
    assert legend_names(dom, "accuracy")[1:] == ["env 0 val acc", "host-only baseline"]
    assert '<span id="accuracy-env">env 0 · episodes 0–1</span>' in dom
    # Losses on a log scale (the uPlot y scale's distribution, as the chart records it).
    losses = chart_data(dom, "losses")
    assert (losses["scale"], losses["series"], losses["counts"]) == ("log", "train loss, val loss", "6, 6")
    # Panels with nothing to draw are hidden: no PPO update and no step reward in a heuristic run.
    assert panel_hidden(dom, "ppo") and panel_hidden(dom, "reward")
    assert chart_data(dom, "ppo")["points"] == "0" and '<div id="chart-ppo" class="chart" data-points="0"' in dom
    assert not panel_hidden(dom, "accuracy") and not panel_hidden(dom, "losses")
    # Per episode: the final accuracies (60, 61) and the host-only finals (46, 56).
    episodes = chart_data(dom, "episodes")
    assert episodes["series"] == "final val acc, host-only final val acc" and episodes["counts"] == "2, 2"
    assert (episodes["ymin"], episodes["ymax"]) == ("46", "61")
    assert dom.count('data-type="HOST_BASELINE_EPOCH"') == 12


# Run in the real page once it has drawn a finished run (body data-status, set after the charts): hover over the
# accuracy chart at a seed event, drag across it, double-click it; uPlot sees the same mouse events a person makes.
PROBE = """
<pre id="probe"></pre>
<script>
new MutationObserver((_, watcher) => {
  if (document.body.dataset.status !== "finished") return;
  watcher.disconnect();
  requestAnimationFrame(async () => {
    const c = charts.get("chart-accuracy"), u = c.plot, box = u.over.getBoundingClientRect();
    const mouse = (type, x, target = u.over) => target.dispatchEvent(new MouseEvent(type, {
      clientX: box.left + x, clientY: box.top + box.height / 2, movementX: 1, bubbles: true }));
    // uPlot applies a new x scale on its next commit and then calls the setScale hooks: wait for that call.
    const rescaled = () => new Promise((done) => u.hooks.setScale.push((_, key) => key === "x" && done()));
    const out = { scale: [u.scales.x.min, u.scales.x.max] };
    const fossilize = c.spec.marks.find((m) => m.kind === "fossilize");
    mouse("mousemove", u.valToPos(fossilize.x, "x"));
    out.tip = c.tip.hidden ? null : c.tip.textContent;
    out.hovered = [...u.root.querySelectorAll(".u-legend .u-value")].map((v) => v.textContent);
    let scaled = rescaled();
    mouse("mousedown", box.width * 0.25);  // drag across the second quarter of the plot
    mouse("mousemove", box.width * 0.5);
    mouse("mouseup", box.width * 0.5, document);
    await scaled;
    out.zoomed = [u.scales.x.min, u.scales.x.max, c.zoomed];
    scaled = rescaled();
    mouse("dblclick", box.width * 0.5);
    await scaled;
    out.reset = [u.scales.x.min, u.scales.x.max, c.zoomed];
    document.getElementById("probe").textContent = JSON.stringify(out);
  });
}).observe(document.body, { attributes: true });
</script>
"""


class ProbeHandler(DashboardHandler):
    """The dashboard, plus /probe: the real page with PROBE at its end."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path != "/probe":
            super().do_GET()
            return
        found = static_file("index.html")
        assert found is not None
        page = found[0].decode().replace("</body>", PROBE + "</body>")
        self._send(HTTPStatus.OK, page.encode(), "text/html")


def test_hover_names_the_seed_events_and_a_drag_zooms_until_double_click(
    tmp_path: Path, server: DashboardServer
) -> None:
    heuristic_run(tmp_path / "h", episodes=2)
    server.RequestHandlerClass = ProbeHandler
    dom = browse(server.url + "probe#run=h", budget_ms=3000)
    found = re.search(r'<pre id="probe">([^<]+)</pre>', dom)
    assert found is not None, "the probe did not run"
    probe = json.loads(html.unescape(found.group(1)))
    # Two episodes of 6 end to end (x 0.5 .. 12); hovering episode 0's epoch 4 names its fossilized seed and shows
    # the values there (epoch 4: val acc 52, baseline 44).
    assert probe["scale"] == [0.5, 12]
    assert probe["tip"] == "episode 0, epoch 4: fossilize r0c0 (env0-seed1)"
    assert probe["hovered"] == ["ep 0 · epoch 4", "52", "44"]
    low, high, zoomed = probe["zoomed"]
    assert zoomed and 0.5 < low < high < 12  # the dragged quarter of the plot
    assert probe["reset"] == [0.5, 12, False]


class AppendingDashboard(Dashboard):
    """Writes the rest of the run right after serving the page its first snapshot: the page must pick it up."""

    def __init__(self, runs_dir: Path, run: SyntheticRun) -> None:
        super().__init__(runs_dir)
        self.run = run

    def snapshot(self, run_id: str, log_after: int) -> dict[str, Any]:
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


def test_the_page_compares_two_runs_in_headless_chromium(tmp_path: Path, server: DashboardServer) -> None:
    heuristic_run(tmp_path / "h", episodes=2)
    ladder_run(tmp_path / "p")
    dom = browse(server.url + "?compare=h,p", budget_ms=3000)
    assert 'data-view="compare"' in dom and 'data-compared="h,p"' in dom  # rendered from /api/compare
    assert '<div id="run-view" class="view" hidden="">' in dom and '<div id="compare-view" class="view">' in dom
    assert '<tr data-run="h" class="selected">' in dom and '<tr data-run="p" class="selected">' in dom
    # One series per run, named by its run id, in every overlay; the heuristic run's host-only baseline dashed.
    params = chart_data(dom, "compare-params")
    assert (params["series"], params["counts"], params["ymin"], params["ymax"]) == ("h, p", "2, 2", "80", "800")
    assert legend_names(dom, "compare-params")[1:] == ["h", "p"]
    final = chart_data(dom, "compare-final")
    assert (final["series"], final["counts"]) == ("h, h host-only, p", "2, 2, 2")
    assert (final["ymin"], final["ymax"]) == ("46", "91")
    curves = chart_data(dom, "compare-accuracy")
    assert (curves["series"], curves["counts"]) == ("h, p", "12, 3")  # baselines: in the final accuracy chart
    assert curves["boundaries"] == "0"  # 6 and 8 epochs per episode: their episodes do not line up
    assert chart_data(dom, "compare-reward")["series"] == "h, p"
    assert re.search(r'<tr data-run="h"><td><span class="swatch"[^>]*></span>h</td><td>digits / heuristic</td>', dom)
    assert re.search(r'<tr data-run="p">.*?<td>0123456</td><td class="command">esper train heuristic', dom)
    assert '<span id="compare-names" class="as-is">h vs p</span>' in dom
