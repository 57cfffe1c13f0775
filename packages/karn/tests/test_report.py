"""The HTML report and the event renderings it (and the dashboards) use."""

from __future__ import annotations

import re
from pathlib import Path

from karn_synthetic import every_event_type_run

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
    assert rendered["SEED_GATE_EVALUATED"] == "env0-seed99: gate G1 failed: too early"
    assert rendered["COUNTERFACTUAL_DELTA"] == "GROW_INTERNAL 1 -> 2: accuracy +2.00 vs NOOP +0.50 after 1 epoch(s)"
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
            (0, 0, "r0c0", "env0-seed1", "conv_ladder", 5, 5, 0.15, 6, "FOSSILIZED"),
            (0, 0, "r0c1", "env0-seed2", "conv_heavy", 1, 1, 0.21, 6, "GERMINATED"),
        )
    ]
