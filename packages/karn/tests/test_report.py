"""The HTML report and the event renderings it (and the dashboards) use."""

from __future__ import annotations

import re
from pathlib import Path

from karn_synthetic import (
    HEURISTIC_SEED_MARKS,
    OP,
    channel_run,
    every_event_type_run,
    heuristic_run,
    lattice_run,
    overshoot_run,
    scripted_run,
)

from esper.karn import RunStore
from esper.karn.render import RENDERERS, render_event, where
from esper.karn.report import write_report
from esper.leyline import TelemetryEventType


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
    assert text.count("<svg") >= 5
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
    found = {}
    for name, count, points in re.findall(
        r'<polyline data-series="([^"]*)" data-points="(\d+)" points="([^"]*)"', text
    ):
        pairs = [tuple(float(v) for v in pair.split(",")) for pair in points.split()]
        assert len(pairs) == int(count), name
        found[name] = pairs
    return found


def test_the_report_overlays_the_host_only_baseline_and_marks_seed_events(tmp_path: Path) -> None:
    store = RunStore(heuristic_run(tmp_path / "h", episodes=2))
    out = tmp_path / "report.html"
    write_report(store, out)
    text = out.read_text()
    accuracy = text[text.index("<svg") : text.index("</svg>")]  # the first figure: accuracy over every epoch
    lines = polylines(accuracy)
    assert list(lines) == ["env 0 val acc", "host-only baseline"]
    grown, baseline = lines["env 0 val acc"], lines["host-only baseline"]
    assert len(grown) == len(baseline) == 12
    assert [x for x, _ in baseline] == [x for x, _ in grown]  # each baseline epoch sits on its grown epoch
    # The baseline rises 41..46 then 51..56 (SVG y grows downwards); the grown curve 50.5..56 by 0.5 a step.
    assert baseline[0][1] > grown[0][1] and baseline[-1][1] == grown[-1][1]
    assert 'stroke-dasharray="6 4"' in accuracy
    kinds = re.findall(r'data-mark="(\w+)"', accuracy)
    assert kinds == [kind for _ in range(2) for _, kind, _ in HEURISTIC_SEED_MARKS]
    assert re.findall(r'data-boundary="(\d+)"', accuracy) == ["1"]  # episode 1 starts between epochs 6 and 7
    for legend in ("germinate", "level", "fossilize", "prune", "episode start", "host-only baseline"):
        assert f">{legend}</text>" in accuracy, legend
    finals = polylines(text)
    assert len(finals["final acc"]) == len(finals["host-only final acc"]) == 2


def test_a_run_without_a_baseline_draws_none(tmp_path: Path) -> None:
    store = RunStore(scripted_run(tmp_path / "ppo", [(2, OP.GERMINATE)], episode_length=4))
    out = tmp_path / "report.html"
    write_report(store, out)
    text = out.read_text()
    assert list(polylines(text))[:2] == ["env 0 val acc", "final acc"]
    assert not [name for name in polylines(text) if "host-only" in name]
    assert ">host-only baseline</text>" not in text and ">host-only final acc</text>" not in text
    assert re.findall(r'data-mark="(\w+)"', text) == ["germinate"] and "data-boundary" not in text


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
    assert '<td>surface_preference</td><td class="fail">FAIL</td><td>POST_ATTN share 0.625' in gates


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
