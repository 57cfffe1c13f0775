"""A run's record beside its event log: summary.json (the RunSummary contract, built in one place from the episode
outcomes) and the table the command prints."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from esper.cli.plan import RunPlan
from esper.karn.contracts.run_summary import RunSummary
from esper.leyline import EpisodeOutcome, dumps

SUMMARY_FILE = "summary.json"


def summarize(
    plan: RunPlan,
    outcomes: Sequence[EpisodeOutcome],
    judged: Sequence[EpisodeOutcome],
    baselines: Sequence[float] | None,
) -> RunSummary:
    """The run's summary. Counts add up over every episode (`outcomes`); accuracy and added parameters are means
    over the episodes the run is judged on (`judged`: every episode of a heuristic run, the last round of a PPO
    run); `baselines` are the host-only accuracies a heuristic run trained beside its episodes."""
    return RunSummary(
        run_id=plan.config.run_id,
        task=plan.task.name,
        policy=plan.config.policy,
        episodes=len(outcomes),
        final_accuracy=statistics.fmean(o.final_accuracy for o in judged) if judged else 0.0,
        baseline_accuracy=statistics.fmean(baselines) if baselines else None,
        germinated=sum(o.germinated for o in outcomes),
        fossilized=sum(o.fossilized for o in outcomes),
        pruned=sum(o.pruned for o in outcomes),
        internal_level_changes=sum(o.internal_level_changes for o in outcomes),
        added_params=round(statistics.fmean(o.added_params for o in judged)) if judged else 0,
        invalid_actions=sum(o.invalid_actions for o in outcomes),
        gate_refusals=sum(o.gate_refusals for o in outcomes),
        governor_rollbacks=sum(o.governor_rollbacks for o in outcomes),
        seed=plan.seed,
        epochs_per_episode=plan.epochs,
    )


def write_summary(plan: RunPlan, summary: RunSummary) -> None:
    (plan.run_dir / SUMMARY_FILE).write_text(dumps(summary) + "\n")


def summary_table(summary: RunSummary, run_dir: Path) -> str:
    baseline = summary.baseline_accuracy
    rows = [
        ("final accuracy (mean of episodes)", f"{summary.final_accuracy:.2f}%"),
        ("host-only baseline, same epochs", "-" if baseline is None else f"{baseline:.2f}%"),
        ("difference", "-" if baseline is None else f"{summary.final_accuracy - baseline:+.2f} points"),
        ("seeds germinated / fossilized / pruned", f"{summary.germinated} / {summary.fossilized} / {summary.pruned}"),
        ("internal level changes", str(summary.internal_level_changes)),
        ("parameters added (mean per episode)", f"{summary.added_params:,}"),
        ("invalid actions / gate refusals", f"{summary.invalid_actions} / {summary.gate_refusals}"),
        ("governor rollbacks", str(summary.governor_rollbacks)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [
        f"run {summary.run_id}: {summary.task}, {summary.policy}, {summary.episodes} episode(s) x "
        f"{summary.epochs_per_episode} epochs, seed {summary.seed}"
    ]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    lines.append(f"  written: {run_dir}/config.json, events.jsonl, summary.json")
    return "\n".join(lines)
