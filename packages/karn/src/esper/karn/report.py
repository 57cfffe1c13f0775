"""`esper karn report RUN`: one self-contained HTML file (inline CSS and SVG plots, no scripts, no external
references) that opens offline: run facts, curves, action and blueprint distributions, every analytics view, the
Phase 0 gates of the run alone, the largest |delta| / |x| of each seed, and the event counts per type."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from esper.karn.gates import evaluate
from esper.karn.render import format_cell, render_event
from esper.karn.store import RunStore
from esper.leyline import TelemetryEventType

COLORS: Final = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#17becf", "#8c564b", "#7f7f7f")
Point = tuple[float, float]

CSS: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
.facts { color: #555; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(500px, 1fr)); gap: 16px; }
figure { margin: 0; } figcaption { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 3px 10px; text-align: left; }
th { background: #f5f5f5; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #c62828; font-weight: bold; }
.skip { color: #8a6d00; font-weight: bold; }
.empty { color: #888; font-style: italic; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    if not rows:
        return '<p class="empty">no rows</p>'
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(format_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def line_chart(
    series: Sequence[tuple[str, Sequence[Point]]], *, x_label: str, y_label: str, width: int = 520, height: int = 260
) -> str:
    """An inline SVG line chart; series with no points are left out, and no points at all says so."""
    series = [(name, points) for name, points in series if points]
    if not series:
        return '<p class="empty">no data</p>'
    left, right, top, bottom = 56, 12, 12, 56
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="4" y="{sy(y) + 4:.1f}" fill="#555">{y:.4g}</text>')
    parts.append(f'<text x="{left}" y="{height - bottom + 16}" fill="#555">{x0:g}</text>')
    parts.append(f'<text x="{width - right}" y="{height - bottom + 16}" fill="#555" text-anchor="end">{x1:g}</text>')
    parts.append(
        f'<text x="{(left + width) / 2:.0f}" y="{height - bottom + 16}" fill="#555" '
        f'text-anchor="middle">{_esc(x_label)}</text>'
    )
    parts.append(f'<text x="{left}" y="{top - 2 + 10}" fill="#555">{_esc(y_label)}</text>')
    legend_x = left
    for i, (name, points) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        if len(points) == 1:
            parts.append(f'<circle cx="{sx(points[0][0]):.1f}" cy="{sy(points[0][1]):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        parts.append(f'<rect x="{legend_x}" y="{height - 18}" width="10" height="3" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 13}" fill="#333">{_esc(name)}</text>')
        legend_x += 14 + 7 * len(name) + 16
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(items: Sequence[tuple[str, float]], *, unit: str = "", width: int = 520) -> str:
    if not items:
        return '<p class="empty">no data</p>'
    row, label_width = 20, 150
    top = max(value for _, value in items) or 1.0
    height = row * len(items) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12">']
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        length = (width - label_width - 90) * value / top
        parts.append(f'<text x="0" y="{y + 13}" fill="#333">{_esc(label)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="12" fill="{COLORS[0]}"/>')
        parts.append(f'<text x="{label_width + length + 6:.1f}" y="{y + 13}" fill="#555">{value:.4g}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _figure(caption: str, body: str) -> str:
    return f"<figure>{body}<figcaption>{_esc(caption)}</figcaption></figure>"


def _points(store: RunStore, sql: str) -> list[Point]:
    return [(float(x), float(y)) for x, y in store.query(sql).rows if x is not None and y is not None]


ANALYTICS_SECTIONS: Final = (
    ("Action distribution", "action_distribution"),
    ("Invalid-action rate", "invalid_action_rate"),
    ("Blueprint selection frequency", "blueprint_frequency"),
    ("Internal-op share (ladder seed live)", "internal_op_share"),
    ("Anti-thrash per trajectory", "anti_thrash"),
    ("Internal-op summary per seed", "internal_op_summary"),
    ("Per-head entropy trend", "head_entropy_trend"),
    ("Governor rollback rate", "rollback_rate"),
    ("ROI (accuracy points per 1000 added params)", "roi"),
    ("Counterfactual deltas of internal ops", "counterfactual_deltas"),
    ("Governor rollbacks", "governor_rollbacks"),
    ("Checkpoints", "checkpoints"),
)


def build_report(store: RunStore) -> str:
    """The whole report page: facts, curves, gates, analytics, lifecycle and event counts."""
    run_id = store.run_dir.name
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Esper run report: {_esc(run_id)}</title>
<style>{CSS}</style></head><body>
<h1>Run {_esc(run_id)}</h1>
<p class="facts">{_esc(run_facts(store))}</p>{_torn_tail_notice(store)}
<h2>Curves</h2><div class="grid">{"".join(curves(store))}</div>
<h2>Phase 0 gates (this run alone; comparative gates need <code>esper gates RUN --control CONTROL</code>)</h2>
{gates_table(store)}
<h2>Analytics</h2>{"".join(analytics_sections(store))}
<h2>Seed output bound: largest |δ|/|x| per seed</h2>
<p class="facts">{_esc(DELTA_RATIO_NOTE)}</p>{table(DELTA_RATIO_COLUMNS, delta_ratio_rows(store))}
<h2>Seed lifecycle and rollbacks</h2>{table(["seq", "env", "episode", "epoch", "slot", "event"], lifecycle_rows(store))}
<h2>Events by type</h2>{table(["event type", "count"], event_count_rows(store))}
<p class="facts">Source of truth: {_esc(store.log.path)} ({len(store.log.events)} events). Query it with
<code>esper karn sql {_esc(run_id)} "SELECT ..."</code>.</p>
</body></html>
"""


def run_facts(store: RunStore) -> str:
    """One line about the latest training start: task, policy, scale, seed, host, slots, and how it ended."""
    run = store.one("SELECT * FROM runs ORDER BY seq DESC LIMIT 1")
    if run is None:
        return "no TRAINING_STARTED event"
    facts = (
        f"{run['task']} · policy {run['policy']} · {run['n_envs']} env(s) × {run['episode_length']} epochs · "
        f"seed {run['seed']} · host {run['host_params']} params · slots {' '.join(run['slot_ids'])} · "
        f"started {format_cell(run['started_at'])}"
    )
    if run["completed_at"] is None:
        return facts
    interrupted = " (interrupted)" if run["interrupted"] else ""
    return facts + f" · {run['episodes_completed']} episode(s) in {run['wall_seconds']:.1f}s{interrupted}"


def _torn_tail_notice(store: RunStore) -> str:
    if store.torn_tail is None:
        return ""
    return f"<p class='fail'>{_esc(store.torn_tail.describe(store.log.path))}</p>"


def _in_order(column: str, view: str, where: str = "") -> str:
    """SQL: (1, 2, 3, ...) in file order against `column` of `view`."""
    return f"SELECT row_number() OVER (ORDER BY seq), {column} FROM {view} {where} ORDER BY seq"


def _bars(store: RunStore, sql: str) -> list[tuple[str, float]]:
    return [(str(label), float(value)) for label, value in store.query(sql).rows]


PPO_CURVES: Final = (("policy loss", "policy_loss"), ("value loss", "value_loss"), ("op entropy", "entropy_op"))


def curves(store: RunStore) -> list[str]:
    """The report's figures: accuracy, reward and PPO curves, then the op and blueprint distributions."""
    ppo = [
        (name, _points(store, f"SELECT round, {column} FROM ppo_updates ORDER BY seq")) for name, column in PPO_CURVES
    ]
    return [
        _figure(
            "Validation accuracy of env 0, every epoch of every episode (x: epoch across episodes).",
            line_chart(
                [("env 0 val acc", _points(store, _in_order("val_accuracy", "epochs", "WHERE env_id = 0")))],
                x_label="epoch (all episodes)",
                y_label="%",
            ),
        ),
        _figure(
            "Final validation accuracy per episode (all environments, in finishing order).",
            line_chart(
                [("final acc", _points(store, _in_order("final_accuracy", "episode_outcomes")))],
                x_label="episode",
                y_label="%",
            ),
        ),
        _figure(
            "Episode reward (policies trained by reward only).",
            line_chart(
                [("episode reward", _points(store, _in_order("episode_reward", "episode_outcomes")))],
                x_label="episode",
                y_label="reward",
            ),
        ),
        _figure("PPO losses and op-head entropy per update.", line_chart(ppo, x_label="PPO round", y_label="")),
        _figure(
            "Decisions per op.",
            bar_chart(_bars(store, "SELECT op, decisions FROM action_distribution ORDER BY decisions DESC")),
        ),
        _figure(
            "Applied germinations per blueprint (share).",
            bar_chart(_bars(store, "SELECT blueprint_id, frequency FROM blueprint_frequency ORDER BY frequency DESC")),
        ),
    ]


def gates_table(store: RunStore) -> str:
    """The Phase 0 gates of this run alone, verdicts coloured."""
    gates = evaluate(store)
    gate_rows = [[r.gate, r.verdict.value.upper(), r.measured, r.threshold, r.note] for r in gates.results]
    gate_html = table(["gate", "verdict", "measured", "threshold", "note"], gate_rows)
    for verdict in ("PASS", "FAIL", "SKIP"):
        gate_html = gate_html.replace(f"<td>{verdict}</td>", f'<td class="{verdict.lower()}">{verdict}</td>')
    return gate_html


def analytics_sections(store: RunStore) -> list[str]:
    """One table per analytics view (at most 200 rows, without the timestamp and JSON columns)."""
    sections = []
    for title, view in ANALYTICS_SECTIONS:
        result = store.view(view)
        columns = [c for c in result.columns if c not in ("timestamp", "op_probabilities", "op_q_values")]
        keep = [result.columns.index(c) for c in columns]
        rows = [[row[i] for i in keep] for row in result.rows[:200]]
        sections.append(f"<h3>{_esc(title)} <small>({_esc(view)})</small></h3>{table(columns, rows)}")
    return sections


def event_count_rows(store: RunStore) -> list[list[object]]:
    counts = dict.fromkeys((t.name for t in TelemetryEventType), 0)  # every type, 0 where none was emitted
    counts |= dict(store.query("SELECT event_type, count(*) FROM events GROUP BY event_type").rows)
    return [[name, n] for name, n in counts.items()]


DELTA_RATIO_NOTE: Final = (
    "|δ|/|x| (seed_epochs.delta_ratio): the norm of what a seed adds at full amplitude over the norm of the host "
    "features reaching it, averaged over an epoch's training batches. Healthy seeds stay about 0.05-0.5; an "
    "unbounded incubator reached 1000. Seeds in first-report order, at most 200."
)
DELTA_RATIO_COLUMNS: Final = (
    "env",
    "episode",
    "slot",
    "seed",
    "blueprint",
    "epochs",
    "measured",
    "max |δ|/|x|",
    "at epoch",
    "last stage",
)


def delta_ratio_rows(store: RunStore) -> list[tuple[object, ...]]:
    """Per seed (from seed_epochs): epochs reported, epochs measured, the largest |delta| / |x| and its epoch (NULL
    when never measured), and the stage at its last report."""
    return store.query(
        """SELECT env_id, episode, slot_id, seed_id, blueprint_id, count(*) AS epochs,
          count(delta_ratio) AS measured, max(delta_ratio) AS max_delta_ratio,
          arg_max(epoch, delta_ratio) AS at_epoch, arg_max(stage, seq) AS last_stage
        FROM seed_epochs GROUP BY run_id, env_id, episode, slot_id, seed_id, blueprint_id ORDER BY min(seq) LIMIT 200"""
    ).rows


def lifecycle_rows(store: RunStore) -> list[list[object]]:
    """The first 300 germinations, fossilizations, prunes, level changes and rollbacks, rendered."""
    lifecycle = store.query(
        "SELECT seq, event_type, env_id, episode, epoch, slot_id FROM events WHERE event_type IN "
        "('SEED_GERMINATED', 'SEED_FOSSILIZED', 'SEED_PRUNED', 'SEED_INTERNAL_LEVEL_CHANGED', 'GOVERNOR_ROLLBACK') "
        "ORDER BY seq LIMIT 300"
    ).rows
    by_seq = {event["seq"]: event for event in store.log.events}
    return [[seq, env, ep, epoch, slot, render_event(by_seq[seq])] for seq, _, env, ep, epoch, slot in lifecycle]


def write_report(store: RunStore, out: Path) -> None:
    """Write the report atomically: a half-written report never replaces a good one."""
    text = build_report(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(out)
