"""The comparison report of an experiment pack: per-arm tables and plots over every seed's run (accuracy, host-only
baseline, parameters added, ROI, blueprint frequencies, internal-op density and share, invalid actions), the surface
split (decisions, germinations, internal ops and the seeds' mean final contribution per surface), paired differences
between arms with their 95 % intervals, and the gate verdicts seed by seed. Reads run stores only;
torch-free."""

from __future__ import annotations

import html
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

from esper.karn.contracts import ExperimentPack
from esper.karn.gates import GateReport, GateVerdict
from esper.karn.report import CSS, bar_chart, table
from esper.karn.stats import format_mean_ci, mean_ci
from esper.karn.store import RunStore
from esper.leyline import BLUEPRINT_IDS, PolicyKind


class SurfaceUse(TypedDict):
    """One surface of a run's enabled slots (the surface_usage view): non-WAIT decisions on it, germinations and
    applied internal ops there, and the mean counterfactual contribution (percentage points) of its seeds at their end
    (None: none ended with one measured), the surface's ROI."""

    decisions: int
    germinations: int
    internal_ops: int
    mean_contribution: float | None


@dataclass(frozen=True)
class ArmMetrics:
    arm: str
    seed: int
    final_accuracy: float
    baseline_accuracy: float | None
    added_params: float
    roi_per_kparam: float | None
    blueprint_frequency: dict[str, float]
    internal_op_density: float | None
    internal_op_share: float | None
    invalid_action_rate: float | None
    internal_level_changes: int
    slots: int  # enabled slots
    epoch_seconds: float  # mean wall time of a host epoch (training, validation, counterfactuals)
    # Per surface of the enabled slots (member name): non-WAIT decisions on it, germinations and internal ops there,
    # and its seeds' mean final contribution.
    surface_usage: dict[str, SurfaceUse]


def arm_metrics(arm: str, seed: int, store: RunStore) -> ArmMetrics:
    roi = store.one("SELECT * FROM roi")
    assert roi is not None, f"{store.run_dir}: no EPISODE_OUTCOME"
    # Every blueprint id, 0.0 where the run never germinated it (the view lists germinated blueprints only).
    frequency = dict.fromkeys(BLUEPRINT_IDS.values(), 0.0)
    frequency |= {bp: float(f) for bp, f in store.query("SELECT blueprint_id, frequency FROM blueprint_frequency").rows}
    thrash = store.one("SELECT avg(internal_op_density) AS density FROM anti_thrash")
    share = store.one("SELECT internal_op_share FROM internal_op_share")
    invalid = store.one("SELECT invalid_action_rate FROM invalid_action_rate")
    levels = store.one("SELECT count(*) AS n FROM internal_levels")
    timing = store.one("SELECT avg(epoch_seconds) AS seconds FROM epochs")
    slots = store.one("SELECT count(*) AS n FROM slots")
    usage = store.query(
        "SELECT surface, non_wait_decisions, germinations, internal_ops, mean_final_contribution FROM surface_usage"
    ).rows
    assert thrash is not None and levels is not None and timing is not None and slots is not None
    return ArmMetrics(
        arm=arm,
        seed=seed,
        final_accuracy=float(roi["mean_final_accuracy"]),
        baseline_accuracy=roi["baseline_accuracy"],
        added_params=float(roi["mean_added_params"]),
        roi_per_kparam=roi["roi_per_kparam"],
        blueprint_frequency=frequency,
        internal_op_density=thrash["density"],
        internal_op_share=None if share is None else share["internal_op_share"],
        invalid_action_rate=None if invalid is None else invalid["invalid_action_rate"],
        internal_level_changes=int(levels["n"]),
        slots=int(slots["n"]),
        epoch_seconds=float(timing["seconds"]),
        surface_usage={
            str(surface): SurfaceUse(
                decisions=int(d),
                germinations=int(g),
                internal_ops=int(i),
                mean_contribution=None if contribution is None else float(contribution),
            )
            for surface, d, g, i, contribution in usage
        },
    )


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _spread(values: Sequence[float | None]) -> str:
    """Mean ± 95 % CI over the seeds that measured it."""
    present = [v for v in values if v is not None]
    return format_mean_ci(present) if present else "n/a"


def summarise(metrics: Sequence[ArmMetrics], arms: Sequence[str]) -> list[dict[str, Any]]:
    """One row per arm (means over seeds), plus the host-only baseline as its own row."""
    rows: list[dict[str, Any]] = []
    # One host-only value per seed: every run on a seed trains the same host alike, so pooling the runs' baselines
    # would count each seed once per arm and shrink the interval.
    per_seed: dict[int, list[float]] = {}
    for m in metrics:
        if m.baseline_accuracy is not None:
            per_seed.setdefault(m.seed, []).append(m.baseline_accuracy)
    baselines = [statistics.fmean(values) for values in per_seed.values()]
    if baselines:
        rows.append(
            {
                "arm": "host_only",
                "seeds": len(baselines),
                "final_accuracy": _spread(baselines),
                "added_params": "0",
                "roi_per_kparam": "-",
                "internal_op_density": "-",
                "internal_op_share": "-",
                "invalid_action_rate": "-",
                "internal_level_changes": "-",
                "slots": "-",
                "epoch_seconds": "-",
            }
        )
    for arm in arms:
        mine = [m for m in metrics if m.arm == arm]
        if not mine:
            continue
        rows.append(
            {
                "arm": arm,
                "seeds": len(mine),
                "final_accuracy": _spread([m.final_accuracy for m in mine]),
                "added_params": _spread([m.added_params for m in mine]),
                "roi_per_kparam": _spread([m.roi_per_kparam for m in mine]),
                "internal_op_density": _spread([m.internal_op_density for m in mine]),
                "internal_op_share": _spread([m.internal_op_share for m in mine]),
                "invalid_action_rate": _spread([m.invalid_action_rate for m in mine]),
                "internal_level_changes": _spread([float(m.internal_level_changes) for m in mine]),
                "slots": str(mine[0].slots),
                "epoch_seconds": _spread([m.epoch_seconds for m in mine]),
            }
        )
    return rows


HOST_ONLY = "host_only"


def surface_split(metrics: Sequence[ArmMetrics], arms: Sequence[str]) -> list[list[str]]:
    """Per arm and surface, summed over seeds: non-WAIT decisions (and their share of the arm's), germinations and
    internal ops: the surface preference in the decision logs; and the ROI per surface: the mean, over the seeds that
    measured one, of the surface's mean final contribution (percentage points; `-`: no seed measured one)."""
    rows: list[list[str]] = []
    for arm in arms:
        mine = [m for m in metrics if m.arm == arm]
        totals: dict[str, dict[str, int]] = {}
        contributions: dict[str, list[float | None]] = {}
        for m in mine:
            for surface, use in m.surface_usage.items():
                into = totals.setdefault(surface, {"decisions": 0, "germinations": 0, "internal_ops": 0})
                into["decisions"] += use["decisions"]
                into["germinations"] += use["germinations"]
                into["internal_ops"] += use["internal_ops"]
                contributions.setdefault(surface, []).append(use["mean_contribution"])
        decisions = sum(t["decisions"] for t in totals.values())
        for surface, t in totals.items():
            share = f"{t['decisions'] / decisions:.2f}" if decisions else "-"
            contribution = _mean(contributions[surface])
            rows.append(
                [
                    arm,
                    surface,
                    str(t["decisions"]),
                    share,
                    str(t["germinations"]),
                    str(t["internal_ops"]),
                    "-" if contribution is None else f"{contribution:.2f}",
                ]
            )
    return rows


SURFACE_SPLIT_COLUMNS: Final = (
    "arm",
    "surface",
    "decisions",
    "share",
    "germinations",
    "internal ops",
    "mean contribution",
)


def comparisons(pack: ExperimentPack, arms: Sequence[str]) -> list[tuple[str, str]]:
    """The (a, b) pairs whose differences a pack is judged by: every arm against host-only, each gate pair's
    treatment against its control, and every learned arm against every arm that does not learn."""
    learned = [a.name for a in pack.arms if a.name in arms and a.policy is PolicyKind.PPO]
    fixed = [a.name for a in pack.arms if a.name in arms and a.policy is not PolicyKind.PPO]
    pairs = [(arm, HOST_ONLY) for arm in arms]
    pairs += [(g.treatment, g.control) for g in pack.gate_pairs if g.treatment in arms and g.control in arms]
    pairs += [(a, b) for a in learned for b in fixed]
    return list(dict.fromkeys(pairs))


def differences(metrics: Sequence[ArmMetrics], pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """a − b per seed both ran (host_only: each run's own host-only baseline), final accuracy and parameters added,
    as mean ± 95 % CI over those seeds; `above_zero` says whether the accuracy interval lies above 0."""
    by_key = {(m.arm, m.seed): m for m in metrics}
    # What each compared quantity reads from a run; host-only is each seed's own baseline, which adds nothing.
    run_value: dict[str, Callable[[ArmMetrics], float | None]] = {
        "final_accuracy": lambda m: m.final_accuracy,
        "added_params": lambda m: m.added_params,
    }
    host_value: dict[str, Callable[[ArmMetrics], float | None]] = {
        "final_accuracy": lambda m: m.baseline_accuracy,
        "added_params": lambda m: 0.0,
    }

    def value(arm: str, seed: int, quantity: str) -> float | None:
        if arm == HOST_ONLY:
            return host_value[quantity](next(m for m in metrics if m.seed == seed))
        return run_value[quantity](by_key[(arm, seed)]) if (arm, seed) in by_key else None  # None: no such run

    rows = []
    for a, b in pairs:
        seeds = sorted({m.seed for m in metrics if m.arm == a})
        deltas: dict[str, list[float]] = {quantity: [] for quantity in run_value}
        for seed in seeds:
            for quantity, out in deltas.items():
                x, y = value(a, seed, quantity), value(b, seed, quantity)
                if x is not None and y is not None:
                    out.append(x - y)
        accuracy = deltas["final_accuracy"]
        if not accuracy:
            continue
        mean, half = mean_ci(accuracy)
        rows.append(
            {
                "difference": f"{a} − {b}",
                "seeds": len(accuracy),
                "final_accuracy": format_mean_ci(accuracy),
                "added_params": format_mean_ci(deltas["added_params"], 0),
                "above_zero": half is not None and mean - half > 0,
            }
        )
    return rows


def gate_summary(reports: Sequence[tuple[str, int, GateReport]]) -> list[dict[str, Any]]:
    """Per gate pair and gate: how many seeds passed, over the seeds where the gate applies (surface_preference
    does not apply to a run without a lattice)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for pair, _, report in reports:
        for result in report.results:
            if not result.applicable:
                continue
            row = rows.setdefault((pair, result.gate), {"pair": pair, "gate": result.gate, "passed": 0, "seeds": 0})
            row["seeds"] += 1
            row["passed"] += result.verdict is GateVerdict.PASS
    return list(rows.values())


def build_comparison(
    pack: ExperimentPack,
    scale_name: str,
    metrics: Sequence[ArmMetrics],
    reports: Sequence[tuple[str, int, GateReport]],
    run_dirs: Mapping[tuple[str, int], Path],
) -> str:
    arms = [a.name for a in pack.arms]
    summary = summarise(metrics, arms)
    columns = list(summary[0]) if summary else []
    present = [arm for arm in arms if any(m.arm == arm for m in metrics)]

    def per_arm(value: Callable[[ArmMetrics], float | None]) -> list[tuple[str, float]]:
        bars = []
        for arm in present:
            mean = _mean([value(m) for m in metrics if m.arm == arm])
            if mean is not None:
                bars.append((arm, mean))
        return bars

    host_only = _mean([m.baseline_accuracy for m in metrics])
    accuracy_bars = ([("host_only", host_only)] if host_only is not None else []) + per_arm(lambda m: m.final_accuracy)
    params = per_arm(lambda m: m.added_params)
    density = per_arm(lambda m: m.internal_op_density)
    blueprints = sorted({bp for m in metrics for bp, share in m.blueprint_frequency.items() if share > 0})
    frequency_rows = [
        [
            arm,
            *[f"{_mean([m.blueprint_frequency[bp] for m in metrics if m.arm == arm]) or 0.0:.2f}" for bp in blueprints],
        ]
        for arm in present
    ]
    gate_rows = [[r["pair"], r["gate"], f"{r['passed']}/{r['seeds']}"] for r in gate_summary(reports)]
    difference_rows = [
        [d["difference"], d["seeds"], d["final_accuracy"], d["added_params"], "yes" if d["above_zero"] else "no"]
        for d in differences(metrics, comparisons(pack, present))
    ]
    per_seed = [
        [pair, seed, result.gate, result.verdict.value.upper(), result.measured, result.note]
        for pair, seed, report in reports
        for result in report.results
    ]
    verdict = overall_verdict(reports)
    runs = [[arm, seed, str(path)] for (arm, seed), path in sorted(run_dirs.items())]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Esper experiment {html.escape(pack.name)} ({scale_name})</title>
<style>{CSS}</style></head><body>
<h1>Experiment {html.escape(pack.name)} <small>({scale_name})</small></h1>
<p class="facts">{html.escape(pack.description)}</p>
<h2>Verdict: {html.escape(verdict)}</h2>
{table(["gate pair", "gate", "seeds passed"], gate_rows)}
<h2>Arms (mean ± 95 % CI over seeds)</h2>
{table(columns, [[row[c] for c in columns] for row in summary])}
<div class="grid">
<figure>{bar_chart(accuracy_bars, unit="%")}
<figcaption>Final validation accuracy (mean over seeds).</figcaption></figure>
<figure>{bar_chart(params)}<figcaption>Trainable parameters added (mean over seeds).</figcaption></figure>
<figure>{bar_chart(density)}<figcaption>Internal-op density (internal ops per decision while a seed was live).
</figcaption></figure>
</div>
<h2>Differences (paired by seed, mean ± 95 % CI)</h2>
{table(["difference", "seeds", "final accuracy (points)", "params added", "accuracy CI above 0"], difference_rows)}
<h2>Blueprint selection frequency (applied germinations, mean over seeds)</h2>
{table(["arm", *blueprints], frequency_rows)}
<h2>Surfaces (non-WAIT decisions, germinations and internal ops per surface, summed over seeds; mean final
contribution of the surface's seeds, mean over the seeds that measured one)</h2>
{table(SURFACE_SPLIT_COLUMNS, surface_split(metrics, present))}
<h2>Gates seed by seed</h2>
{table(["gate pair", "seed", "gate", "verdict", "measured", "note"], per_seed)}
<h2>Runs</h2>
{table(["arm", "seed", "run directory"], runs)}
</body></html>
"""


def overall_verdict(reports: Sequence[tuple[str, int, GateReport]]) -> str:
    if not reports:
        return "NO GATES (no gate pair ran at this scale)"
    failed = sorted({f"{pair} seed {seed}" for pair, seed, report in reports if not report.passed})
    return "ALL GATES PASS" if not failed else f"GATES NOT PASSED ({len(failed)} of {len(reports)} pair-seeds fail)"
