"""`esper karn report RUN`: one self-contained HTML file (inline CSS and SVG plots, no scripts, no external
references) that opens offline: run facts, the slots with their surfaces and how each surface was used, curves,
action and blueprint distributions, every analytics view, the exit gates of the run alone, the largest |delta| / |x|
of each seed, and the event counts per type."""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from esper.karn.gates import evaluate
from esper.karn.render import SEED_MARKS, format_cell, render_event
from esper.karn.store import OVERSHOOT_WINDOW, RunStore
from esper.leyline import TelemetryEventType

COLORS: Final = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#17becf", "#8c564b", "#7f7f7f")
BASELINE_COLOR: Final = "#7f7f7f"  # the host-only baseline, drawn dashed
MARK_COLORS: Final = {"germinate": "#2ca02c", "level": "#9467bd", "fossilize": "#c9a000", "prune": "#d62728"}
Point = tuple[float, float]
Mark = tuple[float, str]  # a seed event at x: (x, kind of MARK_COLORS)
Boundary = tuple[float, int]  # where an episode starts: (x, episode)

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


@dataclass(frozen=True)
class _Frame:
    """A chart's plot area: data ranges and pixel margins, mapping data to SVG coordinates."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int
    height: int
    left: int = 56
    right: int = 12
    top: int = 12
    bottom: int = 56

    def sx(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.width - self.left - self.right)

    def sy(self, y: float) -> float:
        return self.height - self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.height - self.top - self.bottom)


def _span(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    return (low - 1, high + 1) if low == high else (low, high)


def line_chart(
    series: Sequence[tuple[str, Sequence[Point]]],
    *,
    x_label: str,
    y_label: str,
    dashed: Collection[str] = (),
    marks: Sequence[Mark] = (),
    boundaries: Sequence[Boundary] = (),
    width: int = 520,
    height: int = 260,
) -> str:
    """An inline SVG line chart; series with no points are left out, and no points at all says so. Series named in
    `dashed` are drawn dashed in grey (a baseline); `marks` (x, kind of MARK_COLORS) are ticks along the bottom of
    the plot, one row per kind; `boundaries` (x, episode) dotted vertical lines where an episode starts. Each line
    says what it is (`data-series` and `data-points`, `data-mark`, `data-boundary`); marks and boundaries get a
    second legend line."""
    series = [(name, points) for name, points in series if points]
    if not series:
        return '<p class="empty">no data</p>'
    x0, x1 = _span([x for _, pts in series for x, _ in pts] + [x for x, _ in (*marks, *boundaries)])
    y0, y1 = _span([y for _, pts in series for _, y in pts])
    extra = bool(marks or boundaries)
    frame = _Frame(x0, x1, y0, y1, width, height, bottom=72 if extra else 56)
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
            *_axes(frame, x_label, y_label),
            *_boundary_lines(frame, boundaries),
            *_series_lines(frame, series, dashed, legend_y=height - (29 if extra else 13)),
            *_mark_ticks(frame, marks),
            *_extra_legend(frame, marks, boundaries),
            "</svg>",
        ]
    )


def _axes(frame: _Frame, x_label: str, y_label: str) -> list[str]:
    f = frame
    parts = []
    for i in range(5):
        y = f.y0 + (f.y1 - f.y0) * i / 4
        parts.append(
            f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{f.sy(y):.1f}" y2="{f.sy(y):.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="4" y="{f.sy(y) + 4:.1f}" fill="#555">{y:.4g}</text>')
    below = f.height - f.bottom + 16
    parts.append(f'<text x="{f.left}" y="{below}" fill="#555">{f.x0:g}</text>')
    parts.append(f'<text x="{f.width - f.right}" y="{below}" fill="#555" text-anchor="end">{f.x1:g}</text>')
    parts.append(
        f'<text x="{(f.left + f.width) / 2:.0f}" y="{below}" fill="#555" text-anchor="middle">{_esc(x_label)}</text>'
    )
    parts.append(f'<text x="{f.left}" y="{f.top - 2 + 10}" fill="#555">{_esc(y_label)}</text>')
    return parts


def _series_lines(
    frame: _Frame, series: Sequence[tuple[str, Sequence[Point]]], dashed: Collection[str], *, legend_y: int
) -> list[str]:
    parts = []
    legend_x = frame.left
    colors = iter(COLORS * len(series))
    for name, points in series:
        color, dash = (BASELINE_COLOR, ' stroke-dasharray="6 4"') if name in dashed else (next(colors), "")
        path = " ".join(f"{frame.sx(x):.1f},{frame.sy(y):.1f}" for x, y in points)
        if len(points) == 1:
            x, y = points[0]
            parts.append(f'<circle cx="{frame.sx(x):.1f}" cy="{frame.sy(y):.1f}" r="3" fill="{color}"/>')
        parts.append(
            f'<polyline data-series="{_esc(name)}" data-points="{len(points)}" points="{path}" fill="none" '
            f'stroke="{color}" stroke-width="1.5"{dash}/>'
        )
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 12}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{legend_x + 16}" y="{legend_y}" fill="#333">{_esc(name)}</text>')
        legend_x += 16 + 7 * len(name) + 16
    return parts


def _mark_ticks(frame: _Frame, marks: Sequence[Mark]) -> list[str]:
    rows = {kind: frame.height - frame.bottom - 7 * row for row, kind in enumerate(MARK_COLORS)}
    return [
        f'<line data-mark="{kind}" x1="{frame.sx(x):.1f}" x2="{frame.sx(x):.1f}" y1="{rows[kind] - 1}" '
        f'y2="{rows[kind] - 7}" stroke="{MARK_COLORS[kind]}" stroke-width="2"/>'
        for x, kind in marks
    ]


def _boundary_lines(frame: _Frame, boundaries: Sequence[Boundary]) -> list[str]:
    return [
        f'<line data-boundary="{episode}" x1="{frame.sx(x):.1f}" x2="{frame.sx(x):.1f}" y1="{frame.top}" '
        f'y2="{frame.height - frame.bottom}" stroke="#999" stroke-dasharray="2 3"/>'
        for x, episode in boundaries
    ]


def _extra_legend(frame: _Frame, marks: Sequence[Mark], boundaries: Sequence[Boundary]) -> list[str]:
    """The second legend line: the kinds of seed event marked, and the episode starts."""
    entries = [(kind, color, "") for kind, color in MARK_COLORS.items() if any(k == kind for _, k in marks)]
    if boundaries:
        entries.append(("episode start", "#999", ' stroke-dasharray="2 3"'))
    parts = []
    legend_x, y = frame.left, frame.height - 13
    for name, color, dash in entries:
        parts.append(
            f'<line x1="{legend_x + 4}" x2="{legend_x + 4}" y1="{y + 1}" y2="{y - 9}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{legend_x + 12}" y="{y}" fill="#333">{_esc(name)}</text>')
        legend_x += 12 + 7 * len(name) + 16
    return parts


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
    ("Seeds (internal_group_size: channels per group of a channel ladder)", "seeds"),
    (f"Overshoot prunes (pruned within {OVERSHOOT_WINDOW} epochs of reaching the top level)", "overshoot_prunes"),
    ("Overshoot prunes per episode", "overshoot_prune_rate"),
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
<h2>Slots and surfaces</h2>{slots_section(store)}
<h2>Curves</h2><div class="grid">{"".join(curves(store))}</div>
<h2>Exit gates (this run alone; comparative gates need <code>esper gates RUN --control CONTROL</code>)</h2>
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


SLOT_COLUMNS: Final = ("action index", "slot", "surface", "order", "channels", "position")
SURFACE_USAGE_COLUMNS: Final = (
    "surface",
    "slots",
    "germinations",
    "internal ops",
    "prunes",
    "fossilizations",
    "non-WAIT decisions",
    "mean final contribution",
)


def slots_section(store: RunStore) -> str:
    """The enabled slots of the latest training start in action order, and the use of each surface (surface_usage)."""
    slots = store.query(
        'SELECT action_index, slot_id, surface, "order", channels, position FROM slots '
        "WHERE seq = (SELECT max(seq) FROM slots) ORDER BY action_index"
    ).rows
    usage = store.query(
        "SELECT surface, slots, germinations, internal_ops, prunes, fossilizations, non_wait_decisions, "
        "mean_final_contribution FROM surface_usage"
    ).rows
    caption = (
        "Per surface (surface_usage): seeds germinated, applied internal ops on its seeds, prunes, fossilizations, "
        "non-WAIT decisions whose slot is on it (applied or not), and the mean counterfactual contribution "
        "(percentage points) of its seeds at their end."
    )
    return f"{table(SLOT_COLUMNS, slots)}<p class='facts'>{_esc(caption)}</p>{table(SURFACE_USAGE_COLUMNS, usage)}"


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
        accuracy_figure(store),
        _figure(
            "Final validation accuracy per episode (all environments, in finishing order), and the host-only "
            "baseline's (dashed; heuristic and random runs train one for env 0).",
            line_chart(
                [
                    ("final acc", _points(store, _in_order("final_accuracy", "episode_outcomes"))),
                    (HOST_ONLY_FINAL, _points(store, BASELINE_FINALS)),
                ],
                x_label="episode",
                y_label="%",
                dashed=(HOST_ONLY_FINAL,),
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


HOST_ONLY: Final = "host-only baseline"
HOST_ONLY_FINAL: Final = "host-only final acc"
# Env 0's epochs numbered in file order across episodes (x), once per (rank, episode, epoch): the x axis of the
# accuracy chart, which the baseline's epochs and the seed events join on.
_EPOCH_X: Final = """WITH x AS (
  SELECT min(n) AS x, rank, episode, epoch
  FROM (SELECT row_number() OVER (ORDER BY seq) AS n, rank, episode, epoch FROM epochs WHERE env_id = 0)
  GROUP BY rank, episode, epoch)"""
BASELINE_POINTS: Final = f"""{_EPOCH_X}
SELECT x.x, b.val_accuracy FROM host_baseline b JOIN x USING (rank, episode, epoch) WHERE b.env_id = 0 ORDER BY b.seq"""
_MARK_KIND: Final = (
    "CASE e.event_type " + " ".join(f"WHEN '{t.name}' THEN '{k}'" for t, k in SEED_MARKS.items()) + " END"
)
SEED_MARK_POINTS: Final = f"""{_EPOCH_X}
SELECT x.x, {_MARK_KIND} FROM events e JOIN x USING (rank, episode, epoch)
WHERE e.env_id = 0 AND e.event_type IN ({", ".join(f"'{t.name}'" for t in SEED_MARKS)}) ORDER BY e.seq"""
EPISODE_STARTS: Final = f"""{_EPOCH_X}
SELECT min(x) - 0.5, episode FROM x GROUP BY rank, episode HAVING min(x) > 1 ORDER BY 1"""
# Per episode outcome (x in finishing order, as the final-accuracy chart): the baseline's val accuracy at the
# episode's last epoch (a baseline stopped early has no final).
BASELINE_FINALS: Final = """
WITH o AS (SELECT row_number() OVER (ORDER BY seq) AS x, rank, env_id, episode FROM episode_outcomes)
SELECT o.x, b.val_accuracy FROM o JOIN host_baseline b USING (rank, env_id, episode)
WHERE b.epoch = (SELECT episode_length FROM runs ORDER BY seq DESC LIMIT 1) ORDER BY o.x"""


def accuracy_figure(store: RunStore) -> str:
    """Env 0's validation accuracy over every epoch of every episode, the host-only baseline's beside it, the seed
    events at their epochs and the episode starts."""
    grown = _points(store, _in_order("val_accuracy", "epochs", "WHERE env_id = 0"))
    marks = [(float(x), str(kind)) for x, kind in store.query(SEED_MARK_POINTS).rows]
    starts = [(float(x), int(episode)) for x, episode in store.query(EPISODE_STARTS).rows]
    return _figure(
        "Validation accuracy of env 0, every epoch of every episode (x: epoch across episodes); dashed: the host-only "
        "baseline of each episode (same host, seeded alike, every slot dormant; heuristic and random runs); ticks: "
        "seed events at their epochs; dotted: where an episode starts.",
        line_chart(
            [("env 0 val acc", grown), (HOST_ONLY, _points(store, BASELINE_POINTS))],
            x_label="epoch (all episodes)",
            y_label="%",
            dashed=(HOST_ONLY,),
            marks=marks,
            boundaries=starts,
        ),
    )


def gates_table(store: RunStore) -> str:
    """The exit gates of this run alone, verdicts coloured."""
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
    "unbounded incubator reached 1000. Seeds in first-report order, at most 200; ch/group: channels per group of a "
    "channel ladder (seed_epochs.internal_group_size; - for every other seed)."
)
DELTA_RATIO_COLUMNS: Final = (
    "env",
    "episode",
    "slot",
    "seed",
    "blueprint",
    "ch/group",
    "epochs",
    "measured",
    "max |δ|/|x|",
    "at epoch",
    "last stage",
)


def delta_ratio_rows(store: RunStore) -> list[tuple[object, ...]]:
    """Per seed (from seed_epochs): its channels per group (NULL: not a channel ladder), epochs reported, epochs
    measured, the largest |delta| / |x| and its epoch (NULL when never measured), and the stage at its last report."""
    return store.query(
        """SELECT env_id, episode, slot_id, seed_id, blueprint_id,
          nullif(any_value(internal_group_size), 0) AS group_size, count(*) AS epochs,
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
