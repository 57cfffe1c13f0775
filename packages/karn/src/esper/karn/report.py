"""`esper karn report RUN`: one self-contained HTML file (inline CSS and SVG plots, no scripts, no external
references) that opens offline: run facts, the slots with their surfaces and how each surface was used, curves,
action and blueprint distributions, every analytics view, the exit gates of the run alone, the largest |delta| / |x|
of each seed, and the event counts per type."""

from __future__ import annotations

import html
import re
import shlex
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from esper.karn import svgchart
from esper.karn.gates import evaluate
from esper.karn.render import SEED_MARKS, format_cell, render_event
from esper.karn.store import HEADS, OVERSHOOT_WINDOW, RunStore
from esper.karn.svgchart import Boundary, LineChart, Marker, Point, Series
from esper.leyline import (
    EpochCompletedPayload,
    Provenance,
    TelemetryEventType,
    TrainingStartedPayload,
    from_wire,
)

E = TelemetryEventType
MARK_COLORS: Final = {"germinate": "#2ca02c", "level": "#9467bd", "fossilize": "#c9a000", "prune": "#d62728"}
MARK_LANES: Final = svgchart.lanes_for(MARK_COLORS)

CSS: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #222; }
h1 { margin-bottom: 0; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
.facts { color: #555; overflow-wrap: anywhere; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 480px), 1fr)); gap: 20px; }
figure { margin: 0; min-width: 0; } figcaption { color: #555; font-size: 13px; }
svg.chart { display: block; max-width: 100%; height: auto; }
.table-wrap { overflow-x: auto; max-width: 100%; margin: 8px 0 16px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 3px 10px; text-align: left; vertical-align: top; }
td, th { white-space: nowrap; } th { background: #f5f5f5; }
td.wrap { white-space: normal; min-width: 18em; overflow-wrap: break-word; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #c62828; font-weight: bold; }
.skip { color: #8a6d00; font-weight: bold; }
.empty { color: #888; font-style: italic; }
dl.provenance { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 16px; margin: 12px 0 4px; }
dl.provenance dt { color: #555; } dl.provenance dd { margin: 0; overflow-wrap: anywhere; }
code { font-size: 12.5px; }
"""
# Cells up to this long stay on one line (ids, numbers: a table too wide for the page scrolls in its wrapper);
# longer ones (renderings, notes, paths) wrap, and a token this long also gets a line-break opportunity after
# each separator.
WRAP_AT: Final = 32


def _esc(value: object) -> str:
    return html.escape(str(value))


def _breakable(text: str) -> str:
    """`text` escaped, with <wbr> after the separators of each token longer than WRAP_AT."""
    return " ".join(
        re.sub(r"([-_/.:,=])", r"\1<wbr>", _esc(token)) if len(token) > WRAP_AT else _esc(token)
        for token in text.split(" ")
    )


def _cell(value: object) -> str:
    text = format_cell(value)
    return f'<td class="wrap">{_breakable(text)}</td>' if len(text) > WRAP_AT else f"<td>{_esc(text)}</td>"


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A table in its own horizontally scrolling wrapper, so a wide one never widens the page."""
    if not rows:
        return '<p class="empty">no rows</p>'
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def bar_chart(items: Sequence[tuple[str, float]], *, unit: str = "", width: int = 520) -> str:
    """svgchart.bar_chart, saying so when there are no bars (the comparison report keeps its panels)."""
    return svgchart.bar_chart(items, unit=unit, width=width) or '<p class="empty">no data</p>'


def _figure(caption: str, body: str) -> str:
    """A chart with its caption; nothing at all for a chart with nothing to draw (no empty boxes)."""
    return f"<figure>{body}<figcaption>{_esc(caption)}</figcaption></figure>" if body else ""


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
{provenance_section(store)}
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


def provenance_section(store: RunStore) -> str:
    """Where the latest training start came from (its TRAINING_STARTED's provenance and device), and what the
    training processes used (system_line)."""
    starts = [e for e in store.log.events if e["event_type"] == E.TRAINING_STARTED.name]
    if not starts:
        return ""
    started = from_wire(TrainingStartedPayload, starts[-1]["payload"])
    provenance = started.provenance
    versions = (
        f"esper {provenance.esper_version} · torch {provenance.torch_version} · python {provenance.python_version}"
    )
    rows = [
        ("commit", _commit(provenance)),
        ("command", f"<code>{_esc(shlex.join(provenance.command_line))}</code>"),
        ("versions", _esc(versions)),
        ("host", _esc(provenance.host_name)),
        ("platform", _esc(provenance.platform)),
        ("device", _esc(started.device)),
    ]
    if len(starts) > 1:  # a resumed run: each start records its own provenance
        rows.append(("starts", _esc(f"{len(starts)} (resumed); the latest start's provenance is shown")))
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    system = system_line(store)
    return f'<dl class="provenance">{items}</dl>' + (f'<p class="facts">{_esc(system)}</p>' if system else "")


def _commit(provenance: Provenance) -> str:
    """The commit's first 12 hex digits (all 40 as its tooltip) and whether the checkout had uncommitted changes."""
    if provenance.git_commit is None:
        return '<span class="empty">not run from a git checkout</span>'
    dirty = {True: " (dirty: uncommitted changes)", False: " (clean)", None: ""}[provenance.git_dirty]
    return f'<code title="{_esc(provenance.git_commit)}">{_esc(provenance.git_commit[:12])}</code>{_esc(dirty)}'


def _json_path(record: type, *names: str) -> str:
    """The JSON path of nested contract fields ('$.system.rss_mb'), each checked against its record's fields, so a
    renamed field fails at import instead of reading NULL (DuckDB reads a missing path as NULL)."""
    for name in names:
        hints = typing.get_type_hints(record)
        if name not in hints:
            raise ValueError(f"{record.__name__} has no field {name!r}")
        record = hints[name]
    return "$." + ".".join(names)


def _system(field: str) -> str:
    return f"CAST(payload->>'{_json_path(EpochCompletedPayload, 'system', field)}' AS DOUBLE)"


# Per process (a rank of a training start: a resumed run starts new processes): peak RSS, its last CPU-time
# reading (cumulative), peak CUDA memory; then over the processes. `start` numbers the training starts in file order.
SYSTEM_TOTALS: Final = f"""
WITH e AS (
  SELECT run_id, seq, rank, event_type, {_system("rss_mb")} AS rss_mb, {_system("cpu_seconds")} AS cpu_seconds,
    {_system("cuda_peak_mb")} AS cuda_peak_mb,
    sum(CASE WHEN event_type = '{E.TRAINING_STARTED.name}' THEN 1 ELSE 0 END)
      OVER (PARTITION BY run_id ORDER BY seq) AS start
  FROM events WHERE event_type IN ('{E.TRAINING_STARTED.name}', '{E.EPOCH_COMPLETED.name}')),
p AS (
  SELECT max(rss_mb) AS rss_mb, arg_max(cpu_seconds, seq) AS cpu_seconds, max(cuda_peak_mb) AS cuda_peak_mb
  FROM e WHERE event_type = '{E.EPOCH_COMPLETED.name}' GROUP BY run_id, start, rank)
SELECT count(*) AS processes, max(rss_mb) AS rss_mb, sum(cpu_seconds) AS cpu_seconds,
  max(cuda_peak_mb) AS cuda_peak_mb
FROM p"""


def system_line(store: RunStore) -> str:
    """Peak resident memory, total CPU time and (on CUDA) peak GPU memory from the EPOCH_COMPLETED readings ('' with
    none). CPU time is cumulative per process, so the total adds the last reading of each process."""
    totals = store.one(SYSTEM_TOTALS)
    if totals is None or not totals["processes"]:
        return ""
    parts = [f"peak RSS {totals['rss_mb']:,.0f} MiB", f"CPU time {totals['cpu_seconds']:,.1f} s"]
    if totals["cuda_peak_mb"] is not None:  # NULL off CUDA
        parts.append(f"CUDA peak {totals['cuda_peak_mb']:,.0f} MiB")
    return f"System: {' · '.join(parts)} ({totals['processes']} process(es), read at each epoch's end)"


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


HOST_ONLY: Final = "host-only baseline"
HOST_ONLY_FINAL: Final = "host-only final acc"
# Env 0's epochs numbered in file order across episodes (x), once per (rank, episode, epoch): the x axis of the
# accuracy and loss charts, which the baseline's epochs and the seed events join on.
_EPOCH_X: Final = """WITH x AS (
  SELECT min(n) AS x, rank, episode, epoch
  FROM (SELECT row_number() OVER (ORDER BY seq) AS n, rank, episode, epoch FROM epochs WHERE env_id = 0)
  GROUP BY rank, episode, epoch)"""


def baseline_points(column: str) -> str:
    """SQL: (x, `column` of host_baseline) for env 0's baseline epochs, each at the x of its grown epoch."""
    return f"""{_EPOCH_X}
SELECT x.x, b.{column} FROM host_baseline b JOIN x USING (rank, episode, epoch) WHERE b.env_id = 0 ORDER BY b.seq"""


_MARK_KIND: Final = (
    "CASE e.event_type " + " ".join(f"WHEN '{t.name}' THEN '{k}'" for t, k in SEED_MARKS.items()) + " END"
)
SEED_MARK_POINTS: Final = f"""{_EPOCH_X}
SELECT x.x, {_MARK_KIND}, e.seq FROM events e JOIN x USING (rank, episode, epoch)
WHERE e.env_id = 0 AND e.event_type IN ({", ".join(f"'{t.name}'" for t in SEED_MARKS)}) ORDER BY e.seq"""
EPISODE_STARTS: Final = f"""{_EPOCH_X}
SELECT min(x) - 0.5, episode FROM x GROUP BY rank, episode HAVING min(x) > 1 ORDER BY 1"""
# Per episode outcome (x in finishing order, as the final-accuracy chart): the baseline's val accuracy at the
# episode's last epoch (a baseline stopped early has no final).
BASELINE_FINALS: Final = """
WITH o AS (SELECT row_number() OVER (ORDER BY seq) AS x, rank, env_id, episode FROM episode_outcomes)
SELECT o.x, b.val_accuracy FROM o JOIN host_baseline b USING (rank, env_id, episode)
WHERE b.epoch = (SELECT episode_length FROM runs ORDER BY seq DESC LIMIT 1) ORDER BY o.x"""


def curves(store: RunStore) -> list[str]:
    """The report's figures, each left out when it has nothing to draw: accuracy and loss over env 0's epochs,
    final accuracy and reward per episode, the PPO curves, then the op and blueprint distributions."""
    return [
        accuracy_figure(store),
        loss_figure(store),
        _figure(
            "Final validation accuracy per episode (all environments, in finishing order), and the host-only "
            "baseline's (dashed; heuristic and random runs train one for env 0).",
            svgchart.line_chart(
                LineChart(
                    [
                        Series("final acc", _points(store, _in_order("final_accuracy", "episode_outcomes"))),
                        Series(HOST_ONLY_FINAL, _points(store, BASELINE_FINALS), dashed=True),
                    ],
                    x_label="episode (finishing order)",
                    y_label="val accuracy (%)",
                )
            ),
        ),
        _figure(
            "Episode reward (what a PPO policy is trained on).",
            svgchart.line_chart(
                LineChart(
                    [Series("episode reward", _points(store, _in_order("episode_reward", "episode_outcomes")))],
                    x_label="episode (finishing order)",
                    y_label="reward",
                )
            ),
        ),
        *ppo_figures(store),
        _figure(
            "Decisions per op.",
            svgchart.bar_chart(_bars(store, "SELECT op, decisions FROM action_distribution ORDER BY decisions DESC")),
        ),
        _figure(
            "Applied germinations per blueprint (share).",
            svgchart.bar_chart(
                _bars(store, "SELECT blueprint_id, frequency FROM blueprint_frequency ORDER BY frequency DESC")
            ),
        ),
    ]


def _update_chart(store: RunStore, columns: Sequence[tuple[str, str]], y_label: str, *, log: bool) -> str:
    """PPO curves over the updates in file order: one series per (name, ppo_updates column)."""
    series = [Series(name, _points(store, _in_order(column, "ppo_updates"))) for name, column in columns]
    return svgchart.line_chart(LineChart(series, x_label="PPO update", y_label=y_label, log_y=log))


def ppo_figures(store: RunStore) -> list[str]:
    """Policy loss (linear: it is often negative), value loss (log: it falls by decades) and the per-head
    entropies; a run without PPO updates has none of them."""
    heads = [(head, f"entropy_{head}") for head in HEADS]
    return [
        _figure(
            "PPO policy loss per update.", _update_chart(store, [("policy loss", "policy_loss")], "loss", log=False)
        ),
        _figure(
            "PPO value loss per update (log scale).",
            _update_chart(store, [("value loss", "value_loss")], "loss (log)", log=True),
        ),
        _figure("Policy entropy per action head, per PPO update.", _update_chart(store, heads, "entropy", log=False)),
    ]


def _episode_starts(store: RunStore) -> list[Boundary]:
    return [Boundary(float(x), f"ep {episode}") for x, episode in store.query(EPISODE_STARTS).rows]


def seed_markers(store: RunStore) -> list[Marker]:
    """Env 0's seed events at their epoch's x, each with its rendering (where, then what) as its tooltip."""
    by_seq = {event["seq"]: event for event in store.log.events}
    markers = []
    for x, kind, seq in store.query(SEED_MARK_POINTS).rows:
        event = by_seq[seq]
        where = f"episode {event['episode']} epoch {event['epoch']} {event['slot_id'] or ''}".rstrip()
        markers.append(Marker(float(x), str(kind), f"{where}: {render_event(event)}"))
    return markers


def accuracy_figure(store: RunStore) -> str:
    """Env 0's validation accuracy over every epoch of every episode, the host-only baseline's beside it, the seed
    events at their epochs and the episode starts."""
    return _figure(
        "Validation accuracy of env 0, every epoch of every episode; dashed: the host-only baseline of each episode "
        "(same host, seeded alike, every slot dormant; heuristic and random runs); markers above the plot: seed "
        "events at their epochs (hover for what happened); dotted: where an episode starts.",
        svgchart.line_chart(
            LineChart(
                [
                    Series("env 0 val acc", _points(store, _in_order("val_accuracy", "epochs", "WHERE env_id = 0"))),
                    Series(HOST_ONLY, _points(store, baseline_points("val_accuracy")), dashed=True),
                ],
                x_label="epoch (all episodes)",
                y_label="val accuracy (%)",
                lanes=MARK_LANES,
                markers=seed_markers(store),
                boundaries=_episode_starts(store),
            )
        ),
    )


def loss_figure(store: RunStore) -> str:
    """Env 0's training and validation loss over every epoch (log scale: losses fall by decades), and the host-only
    baseline's validation loss."""
    return _figure(
        "Loss of env 0, every epoch of every episode (log scale); dashed: the host-only baseline's validation loss; "
        "dotted: where an episode starts.",
        svgchart.line_chart(
            LineChart(
                [
                    Series("train loss", _points(store, _in_order("train_loss", "epochs", "WHERE env_id = 0"))),
                    Series("val loss", _points(store, _in_order("val_loss", "epochs", "WHERE env_id = 0"))),
                    Series("host-only val loss", _points(store, baseline_points("val_loss")), dashed=True),
                ],
                x_label="epoch (all episodes)",
                y_label="loss (log)",
                log_y=True,
                boundaries=_episode_starts(store),
            )
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
    """One table per analytics view with rows (at most 200, without the timestamp and JSON columns); the views
    without rows named together in one line at the end."""
    sections, empty = [], []
    for title, view in ANALYTICS_SECTIONS:
        result = store.view(view)
        if not result.rows:
            empty.append(f"{title} ({view})")
            continue
        columns = [c for c in result.columns if c not in ("timestamp", "op_probabilities", "op_q_values")]
        keep = [result.columns.index(c) for c in columns]
        rows = [[row[i] for i in keep] for row in result.rows[:200]]
        sections.append(f"<h3>{_esc(title)} <small>({_esc(view)})</small></h3>{table(columns, rows)}")
    if empty:
        sections.append(f'<p class="empty">No rows in: {_esc("; ".join(empty))}.</p>')
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
