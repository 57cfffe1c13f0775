"""The HTML report and the event renderings it (and the dashboards) use."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from karn_synthetic import (
    HEURISTIC_EPISODE_LENGTH,
    HEURISTIC_SEED_MARKS,
    OP,
    PROVENANCE,
    channel_run,
    every_event_type_run,
    heuristic_run,
    lattice_run,
    overshoot_run,
    scripted_run,
)

from esper.karn import RunStore
from esper.karn.render import RENDERERS, SEED_MARKS, render_event, where
from esper.karn.report import WRAP_AT, _json_path, table, write_report
from esper.karn.store import HEADS
from esper.leyline import EpochCompletedPayload, TelemetryEventType


def test_every_event_type_renders_to_a_line_naming_its_facts(tmp_path: Path) -> None:
    store = RunStore(every_event_type_run(tmp_path / "all"))
    rendered = {event["event_type"]: render_event(event) for event in store.log.events}
    assert set(rendered) == {t.name for t in TelemetryEventType} == {t.name for t in RENDERERS}
    assert rendered["SEED_INTERNAL_LEVEL_CHANGED"].endswith("internal shrink 2 -> 1 of 4 (40 active params)")
    assert rendered["ACTION_TAKEN"] == "ppo chose PRUNE"
    assert rendered["TRAINING_STARTED"] == (
        "training started: digits / ppo, 1 env(s) x 6 epochs, slots r0c0 block_end, r0c1 block_end, r0c2 block_end "
        "(3 of 3), seed 0"
    )
    assert rendered["SEED_GERMINATED"] == "germinated conv_heavy on block_end (env0-seed2, 100 params)"
    assert rendered["SEED_GATE_EVALUATED"] == "env0-seed99: gate G1 failed: too early"
    assert rendered["COUNTERFACTUAL_DELTA"] == "GROW_INTERNAL 1 -> 2: accuracy +2.00 vs NOOP +0.50 after 1 epoch(s)"
    # The last of the baseline's epochs (karn_synthetic.baseline_metrics of episode 0, epoch 6).
    assert rendered["HOST_BASELINE_EPOCH"] == "host-only baseline epoch: val 46.0% loss 0.217, train 47.0% loss 0.183"
    assert where(store.log.events[0]) == ""  # TRAINING_STARTED is run-level: no env, episode, epoch or slot
    germinated = next(e for e in store.log.events if e["event_type"] == "SEED_GERMINATED")
    assert where(germinated) == "e0 ep0 @1 r0c0"


def test_the_report_is_self_contained_and_covers_every_event_type(tmp_path: Path) -> None:
    store = RunStore(every_event_type_run(tmp_path / "all"))
    out = tmp_path / "out" / "report.html"
    write_report(store, out)
    text = out.read_text()
    assert not (tmp_path / "out" / "report.html.partial").exists()
    assert "<script" not in text and "<link" not in text and "src=" not in text
    assert not re.search(r'href="https?://', text)
    assert text.count("<svg") >= 8  # accuracy, loss, final accuracy, reward, 3 PPO, 2 distributions
    for event_type in TelemetryEventType:
        count = store.query("SELECT count(*) FROM events WHERE event_type = ?", [event_type.name]).rows[0][0]
        assert f"<td>{event_type.name}</td><td>{count}</td>" in text
    assert "internal shrink 2 -&gt; 1" in text  # the lifecycle section renders events
    assert '<td class="pass">PASS</td>' in text or '<td class="fail">FAIL</td>' in text
    assert "ROI (accuracy points per 1000 added params)" in text
    # Largest |delta|/|x| per seed (karn_synthetic: 0.1 n + 0.01 k for seed n at its k-th reported epoch): the ladder
    # is reported at epochs 2-6 (fossilized after 4, still measured), conv_heavy at epoch 6 only.
    section = text[text.index("largest |δ|/|x| per seed") : text.index("<h2>Seed lifecycle")]
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    assert rows[1:] == [
        "".join(f"<td>{cell}</td>" for cell in row)
        for row in (
            (0, 0, "r0c0", "env0-seed1", "conv_ladder", "-", 5, 5, 0.15, 6, "FOSSILIZED"),
            (0, 0, "r0c1", "env0-seed2", "conv_heavy", "-", 1, 1, 0.21, 6, "GERMINATED"),
        )
    ]


def polylines(text: str) -> dict[str, list[tuple[float, float]]]:
    """Each series the report drew, by name: its points in SVG coordinates (after checking its data-points)."""
    found: dict[str, list[tuple[float, float]]] = {}
    for name, count, points in re.findall(
        r'<polyline data-series="([^"]*)" data-points="(\d+)" points="([^"]*)"', text
    ):
        pairs = [(float(x), float(y)) for x, y in (pair.split(",") for pair in points.split())]
        assert len(pairs) == int(count), name
        found[name] = pairs
    return found


def charts(text: str) -> list[str]:
    """Each line chart of the report, from <svg to </svg>."""
    return [m.group(0) for m in re.finditer(r"<svg [^>]*data-scale=.*?</svg>", text, re.S)]


def chart_with(text: str, series: str) -> str:
    (chart,) = [c for c in charts(text) if f'data-series="{series}"' in c]
    return chart


def test_the_report_overlays_the_host_only_baseline_and_marks_seed_events(tmp_path: Path) -> None:
    store = RunStore(heuristic_run(tmp_path / "h", episodes=2))
    out = tmp_path / "report.html"
    write_report(store, out)
    text = out.read_text()
    accuracy = chart_with(text, "env 0 val acc")
    lines = polylines(accuracy)
    assert list(lines) == ["env 0 val acc", "host-only baseline"]
    grown, baseline = lines["env 0 val acc"], lines["host-only baseline"]
    assert len(grown) == len(baseline) == 12
    assert [x for x, _ in baseline] == [x for x, _ in grown]  # each baseline epoch sits on its grown epoch
    # The baseline rises 41..46 then 51..56 (SVG y grows downwards); the grown curve 50.5..56 by 0.5 a step.
    assert baseline[0][1] > grown[0][1] and baseline[-1][1] == grown[-1][1]
    assert 'data-series="host-only baseline" data-points="12"' in accuracy and 'stroke-dasharray="6 4"' in accuracy
    # Round ticks covering 40.5 (the baseline's first epoch... 41) to 56, and epochs 1..12.
    assert re.search(r'data-x-ticks="0 2 4 6 8 10 12" data-y-ticks="40 45 50 55 60"', accuracy)
    # One marker per seed event of env 0, each with its rendering as a tooltip.
    marks = re.findall(r'<path data-mark="(\w+)"[^>]*><title>(.*?)</title></path>', accuracy)
    seed_events = [e for e in store.log.events if e["event_type"] in {t.name for t in SEED_MARKS}]
    assert sorted(kind for kind, _ in marks) == sorted(
        SEED_MARKS[TelemetryEventType[e["event_type"]]] for e in seed_events
    )
    assert sorted(kind for kind, _ in marks) == sorted(kind for _ in range(2) for _, kind, _ in HEURISTIC_SEED_MARKS)
    titles = {title for _, title in marks}
    assert len(titles) == len(marks) == 10
    assert "episode 0 epoch 1 r0c0: germinated conv_ladder on block_end (env0-seed1, 100 params, level 1/4)" in titles
    assert "episode 1 epoch 2 r0c0: env0-seed3: internal grow 1 -&gt; 2 of 4 (80 active params)" in titles
    assert "episode 1 epoch 6 r0c1: pruned conv_heavy (env0-seed4) by policy: policy" in titles
    # Lanes named at the left; episode 1 starts between epochs 6 and 7, labelled.
    for lane in ("germinate", "level", "fossilize", "prune"):
        assert f">{lane}</text>" in accuracy, lane
    (boundary,) = re.findall(r'<line data-boundary="([^"]*)" x1="([\d.]+)"', accuracy)
    assert boundary[0] == "ep 1" and grown[5][0] < float(boundary[1]) < grown[6][0]
    assert ">ep 1</text>" in accuracy
    finals = polylines(chart_with(text, "final acc"))
    assert len(finals["final acc"]) == len(finals["host-only final acc"]) == 2


def test_the_loss_chart_is_log_scaled(tmp_path: Path) -> None:
    store = RunStore(heuristic_run(tmp_path / "h", episodes=2))
    out = tmp_path / "report.html"
    write_report(store, out)
    loss = chart_with(out.read_text(), "val loss")
    # karn_synthetic: train loss 1 / epoch, val loss 1.2 / epoch, the baseline's val loss 1.3 / epoch.
    assert 'data-scale="log"' in loss and 'data-y-ticks="0.1 0.2 0.5 1 2"' in loss
    assert [f">{label}</text>" in loss for label in ("0.1", "0.2", "0.5", "1", "2")] == [True] * 5
    lines = polylines(loss)
    assert list(lines) == ["train loss", "val loss", "host-only val loss"]
    val = [y for _, y in lines["val loss"]]
    # Halving the loss is the same distance anywhere on a log axis: epochs 1 -> 2 as 2 -> 4 (1.2, 0.6, 0.3).
    assert val[1] - val[0] == pytest.approx(val[3] - val[1], abs=0.15)
    assert ">loss (log)</text>" in loss


def test_a_run_without_a_baseline_draws_none(tmp_path: Path) -> None:
    store = RunStore(scripted_run(tmp_path / "ppo", [(2, OP.GERMINATE)], episode_length=4))
    out = tmp_path / "report.html"
    write_report(store, out)
    text = out.read_text()
    assert list(polylines(text))[:4] == ["env 0 val acc", "train loss", "val loss", "final acc"]
    assert not [name for name in polylines(text) if "host-only" in name]
    assert ">host-only baseline</text>" not in text and ">host-only final acc</text>" not in text
    assert re.findall(r'data-mark="(\w+)"', text) == ["germinate"] and "data-boundary" not in text


def test_empty_charts_are_left_out(tmp_path: Path) -> None:
    # A heuristic run has no PPO update: no PPO chart, and no figure without a chart in it.
    heuristic = RunStore(heuristic_run(tmp_path / "h", episodes=1))
    write_report(heuristic, tmp_path / "h.html")
    text = (tmp_path / "h.html").read_text()
    text = text[text.index("<h2>Curves</h2>") : text.index("<h2>Exit gates")]
    assert "PPO update" not in text and "value loss" not in text and "policy loss" not in text and "entropy" not in text
    assert "data-boundary" not in text  # one episode: no episode start to mark
    figures = re.findall(r"<figure>(.*?)</figure>", text, re.S)
    assert len(figures) == 6 and all("<svg" in figure for figure in figures)
    assert 'class="empty">no data' not in text
    # A run with PPO updates draws them: the value loss on a log axis, the entropies of every head.
    ppo = RunStore(every_event_type_run(tmp_path / "all"))
    write_report(ppo, tmp_path / "all.html")
    text = (tmp_path / "all.html").read_text()
    value = chart_with(text, "value loss")
    assert 'data-scale="log"' in value and ">PPO update</text>" in value
    entropies = chart_with(text, "op")
    assert list(polylines(entropies)) == list(HEADS)


def test_the_report_shows_the_provenance_and_the_system_metrics(tmp_path: Path) -> None:
    store = RunStore(heuristic_run(tmp_path / "h", episodes=2))
    write_report(store, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    block = text[text.index('<dl class="provenance">') : text.index("<h2>Slots and surfaces")]
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block))
    assert facts == {
        "commit": f'<code title="{PROVENANCE.git_commit}">0123456789ab</code> (clean)',
        "command": "<code>esper train heuristic --task digits</code>",
        "versions": "esper 0.1.0 · torch 2.9.1 · python 3.11.7",
        "host": "synthetic-host",
        "platform": "Linux-synthetic",
        "device": "cpu",
    }
    # karn_synthetic: rss 300 + epoch MiB, CPU 2 s per epoch (cumulative), no CUDA; one process.
    assert (
        f"System: peak RSS {300 + HEURISTIC_EPISODE_LENGTH} MiB · CPU time {2.0 * HEURISTIC_EPISODE_LENGTH:.1f} s"
        in block
    )
    assert "CUDA" not in block


def rewrite_log(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit every event of a synthetic log in place (still valid against the schemas)."""
    path = run_dir / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for event in events:
        change(event)
    path.write_text("".join(json.dumps(event) + "\n" for event in events))


def test_provenance_without_a_checkout_a_dirty_one_and_a_cuda_peak(tmp_path: Path) -> None:
    def no_checkout(event: dict[str, Any]) -> None:
        if event["event_type"] == "TRAINING_STARTED":
            event["payload"]["provenance"] |= {"git_commit": None, "git_dirty": None}
        if event["event_type"] == "EPOCH_COMPLETED":
            event["payload"]["system"]["cuda_peak_mb"] = 100.0 * event["epoch"]

    run_dir = heuristic_run(tmp_path / "h", episodes=1)
    rewrite_log(run_dir, no_checkout)
    write_report(RunStore(run_dir), tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert '<dt>commit</dt><dd><span class="empty">not run from a git checkout</span></dd>' in text
    assert f"CUDA peak {100 * HEURISTIC_EPISODE_LENGTH} MiB" in text

    def dirty(event: dict[str, Any]) -> None:
        if event["event_type"] == "TRAINING_STARTED":
            event["payload"]["provenance"]["git_dirty"] = True

    run_dir = heuristic_run(tmp_path / "d", episodes=1)
    rewrite_log(run_dir, dirty)
    write_report(RunStore(run_dir), tmp_path / "d.html")
    assert "0123456789ab</code> (dirty: uncommitted changes)" in (tmp_path / "d.html").read_text()


def test_a_resumed_run_adds_the_cpu_time_of_each_process(tmp_path: Path) -> None:
    # Two training starts (a resume starts new processes): CPU time is cumulative per process, so the total adds the
    # last reading of each; the provenance shown is the latest start's.
    run_dir = heuristic_run(tmp_path / "h", episodes=1)
    path = run_dir / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    again = [event | {"event_id": str(uuid.uuid4())} for event in events]
    path.write_text("".join(json.dumps(event) + "\n" for event in events + again))
    write_report(RunStore(run_dir), tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert f"CPU time {2 * 2.0 * HEURISTIC_EPISODE_LENGTH:.1f} s (2 process(es)" in text
    assert "<dt>starts</dt><dd>2 (resumed)" in text


def test_a_system_metric_path_is_checked_against_the_contract() -> None:
    assert _json_path(EpochCompletedPayload, "system", "cuda_peak_mb") == "$.system.cuda_peak_mb"
    with pytest.raises(ValueError, match="SystemMetrics has no field 'rss'"):
        _json_path(EpochCompletedPayload, "system", "rss")


class _Structure(HTMLParser):
    """Checks that tags nest and close, and records each table's enclosing element."""

    VOID = frozenset({"meta", "wbr", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.table_parents: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        if tag == "table":
            self.table_parents.append(self.stack[-1])
        attributes = dict(attrs)
        self.stack.append((tag, (attributes["class"] if "class" in attributes else None) or ""))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1][0] == tag, (tag, self.stack[-3:])
        self.stack.pop()


@pytest.mark.parametrize("make", [heuristic_run, every_event_type_run, lattice_run, overshoot_run])
def test_the_html_parses_and_every_table_scrolls_in_its_own_wrapper(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    write_report(RunStore(make(tmp_path / "run")), tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    parser = _Structure()
    parser.feed(text)
    parser.close()
    assert parser.stack == []
    assert parser.table_parents and set(parser.table_parents) == {("div", "table-wrap")}
    assert len(parser.table_parents) == text.count("<table>")
    assert re.search(r"\.table-wrap \{ overflow-x: auto;", text)
    assert re.search(r"svg\.chart \{[^}]*max-width: 100%", text)  # charts shrink with the page


def test_long_cells_wrap_and_long_ids_get_break_opportunities() -> None:
    run_id = "heuristic-digits-2026-11-30-06-02-16-a1b2c3d4"
    html = table(["run", "n"], [[run_id, 3], ["short-id", 4]])
    assert '<div class="table-wrap"><table>' in html
    assert f'<td class="wrap">{run_id.replace("-", "-<wbr>")}</td><td>3</td>' in html
    assert "<td>short-id</td><td>4</td>" in html  # ids up to WRAP_AT characters stay whole, on one line
    assert len("short-id") <= WRAP_AT < len(run_id)


def test_renderings_name_the_surfaces_of_a_lattice_run(tmp_path: Path) -> None:
    store = RunStore(lattice_run(tmp_path / "l"))
    lines = [render_event(event) for event in store.log.events]
    assert lines[0] == (
        "training started: charlm_layerwise / ppo, 1 env(s) x 10 epochs, "
        "slots r0c0 post_attn, r1c0 post_mlp, r0c1 post_attn, r1c1 post_mlp (4 of 4), seed 0"
    )
    germinated = [line for line in lines if line.startswith("germinated")]
    assert germinated == [
        "germinated lora_ladder on post_attn (env0-seed1, 100 params, level 1/4)",
        "germinated lora_large on post_mlp (env0-seed2, 100 params)",
        "germinated lora on post_attn (env0-seed3, 100 params)",
    ]


def test_the_report_shows_the_slots_and_the_surface_split(tmp_path: Path) -> None:
    store = RunStore(lattice_run(tmp_path / "l"))
    out = tmp_path / "report.html"
    write_report(store, out)
    text = out.read_text()
    section = text[text.index("<h2>Slots and surfaces</h2>") : text.index("<h2>Curves</h2>")]
    slots, usage = re.findall(r"<table>.*?</table>", section)
    assert section.count('<div class="table-wrap"><table>') == 2
    assert re.findall(r"<tr>(.*?)</tr>", slots)[1:] == [
        "".join(f"<td>{cell}</td>" for cell in row)
        for row in (
            (0, "r0c0", "POST_ATTN", 0, 32, 0.25),
            (1, "r1c0", "POST_MLP", 1, 32, 0.5),
            (2, "r0c1", "POST_ATTN", 2, 32, 0.75),
            (3, "r1c1", "POST_MLP", 3, 32, 1),
        )
    ]
    assert "<th>surface</th><th>slots</th><th>germinations</th><th>internal ops</th>" in usage
    # karn_synthetic.lattice_run, hand-counted as in test_store: germinations, internal ops, prunes, fossilizations,
    # non-WAIT decisions, mean final contribution per surface.
    assert re.findall(r"<tr>(.*?)</tr>", usage)[1:] == [
        "<td>POST_ATTN</td><td>2</td><td>2</td><td>2</td><td>0</td><td>1</td><td>5</td><td>0.4</td>",
        "<td>POST_MLP</td><td>2</td><td>1</td><td>0</td><td>1</td><td>0</td><td>3</td><td>-</td>",
    ]
    gates = text[text.index("<h2>Exit gates") : text.index("<h2>Analytics</h2>")]
    # 5 of 8 decisions on POST_ATTN: no preference at n 8.
    assert '<td>surface_preference</td><td class="fail">FAIL</td><td class="wrap">POST_ATTN share 0.625' in gates


def test_renderings_name_a_channel_ladders_channels_per_group(tmp_path: Path) -> None:
    # karn_synthetic.channel_run: a channel_ladder (2 channels per group) in r0c1, grown 1 -> 2; conv_heavy in r1c0.
    store = RunStore(channel_run(tmp_path / "c").run_dir)
    lines = [render_event(event) for event in store.log.events]
    germinated = [line for line in lines if line.startswith("germinated")]
    assert germinated == [
        "germinated channel_ladder on pre_pool (env0-seed1, 100 params, level 1/4, 2 channels per group)",
        "germinated conv_heavy on post_pool (env0-seed2, 100 params)",  # no groups: nothing extra
    ]
    levels = [line for line in lines if "internal grow" in line]
    assert levels == ["env0-seed1: internal grow 1 -> 2 of 4 (80 active params, 2 channels per group)"]
    # A conv_ladder's level change names no group (every_event_type_run).
    other = [render_event(e) for e in RunStore(every_event_type_run(tmp_path / "all")).log.events]
    assert "env0-seed1: internal grow 1 -> 2 of 4 (80 active params)" in other


def rows_of(section: str) -> list[str]:
    return re.findall(r"<tr>(.*?)</tr>", section)


def test_the_reports_seed_tables_show_the_group_size_and_the_overshoot_prunes(tmp_path: Path) -> None:
    store = RunStore(channel_run(tmp_path / "c").run_dir)
    out = tmp_path / "report.html"
    write_report(store, out)
    text = out.read_text()
    # The largest |delta|/|x| per seed, with each seed's channels per group (- for a seed without groups).
    section = text[text.index("largest |δ|/|x| per seed") : text.index("<h2>Seed lifecycle")]
    assert "<th>blueprint</th><th>ch/group</th>" in section
    assert rows_of(section)[1:] == [
        "<td>0</td><td>0</td><td>r0c1</td><td>env0-seed1</td><td>channel_ladder</td><td>2</td><td>3</td><td>3</td>"
        "<td>0.13</td><td>4</td><td>GERMINATED</td>",
        "<td>0</td><td>0</td><td>r1c0</td><td>env0-seed2</td><td>conv_heavy</td><td>-</td><td>1</td><td>1</td>"
        "<td>0.21</td><td>4</td><td>GERMINATED</td>",
    ]
    # The seeds view's table: internal_group_size beside the internal kind.
    seeds = text[text.index("<small>(seeds)</small>") :]
    seeds = seeds[: seeds.index("</table>")]
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", seeds)
    assert header is not None
    columns = re.findall(r"<th>(.*?)</th>", header.group(1))
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows_of(seeds)[1:]]
    assert [(c[columns.index("blueprint_id")], c[columns.index("internal_group_size")]) for c in cells] == [
        ("channel_ladder", "2"),
        ("conv_heavy", "0"),
    ]
    # The lifecycle section renders the germination with its group size.
    assert "level 1/4, 2 channels per group" in text
    # The overshoot views are in the report: karn_synthetic.overshoot_run has two overshoot prunes in one episode.
    overshoot = RunStore(overshoot_run(tmp_path / "o"))
    write_report(overshoot, tmp_path / "o.html")
    text = (tmp_path / "o.html").read_text()
    prunes = text[text.index("<small>(overshoot_prunes)</small>") :]
    prunes = prunes[: prunes.index("</table>")]
    assert [re.findall(r"<td>(.*?)</td>", row)[4:] for row in rows_of(prunes)[1:]] == [
        ["env0-seed1", "channel_ladder", "4", "7"],
        ["env0-seed4", "conv_ladder", "16", "21"],
    ]
    rate = text[text.index("<small>(overshoot_prune_rate)</small>") :]
    assert rows_of(rate[: rate.index("</table>")])[1:] == ["<td>o</td><td>1</td><td>2</td><td>2</td>"]
