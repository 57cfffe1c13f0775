"""`esper karn ...` (runs, views, sql, tui, serve, report) and `esper gates`: looking at runs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from esper.cli.common import UsageError
from esper.karn import GateReport, GateThresholds, QueryError, RunStore, evaluate, list_run_dirs
from esper.karn.render import format_cell
from esper.karn.runs import RunListing, describe_run
from esper.karn.store import VIEWS, CopyFormat, DuplicateRunIdError, is_run_dir
from esper.leyline import WireError, loads


def resolve_run(run: str, runs_dir: Path) -> Path:
    """A run given as a directory, or as a run id under --runs-dir."""
    for candidate in (Path(run), runs_dir / run):
        if is_run_dir(candidate):
            return candidate
    raise UsageError(f"RUN: {run!r} is neither a run directory nor a run in {runs_dir} (no events.jsonl)")


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[format_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def open_store(path: Path, baseline_accuracy: float | None = None) -> RunStore:
    store = RunStore(path, baseline_accuracy=baseline_accuracy)
    if store.torn_tail is not None:
        print(f"esper karn: warning: {store.torn_tail.describe(store.log.path)}", file=sys.stderr)
    return store


def cmd_runs(args: argparse.Namespace) -> int:
    listings: list[RunListing] = [describe_run(p) for p in list_run_dirs(args.runs_dir)]
    if args.json:
        print(json.dumps([listing.as_dict() for listing in listings], indent=2))
        return 0
    if not listings:
        print(f"no runs in {args.runs_dir}")
        return 0
    columns = ["run", "task", "policy", "status", "episodes", "final acc %", "events", "started"]
    rows = [[r.run_id, r.task, r.policy, r.status, r.episodes, r.final_accuracy, r.events, r.started] for r in listings]
    print(format_table(columns, rows))
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    width = max(len(name) for name in VIEWS)
    for name, (description, _) in VIEWS.items():
        print(f"{name.ljust(width)}  {description}")
    return 0


def sql_run_dirs(args: argparse.Namespace) -> list[Path]:
    """The runs `esper karn sql` spans: each RUN given, or every run in --runs-dir."""
    if args.runs:
        return [resolve_run(run, args.runs_dir) for run in args.runs]
    if not args.runs_dir.is_dir():
        raise UsageError(f"--runs-dir: {args.runs_dir} is not a directory")
    run_dirs = list_run_dirs(args.runs_dir)
    if not run_dirs:
        raise UsageError(f"--runs-dir: no runs in {args.runs_dir} (no directory with events.jsonl); name a RUN")
    return run_dirs


def open_runs(run_dirs: Sequence[Path]) -> RunStore:
    """One store over the runs, warning of each run's torn last line."""
    try:
        store = RunStore.of_runs(run_dirs)
    except DuplicateRunIdError as exc:  # two RUNs that are one run (or a copy of it): misuse, exit 2
        raise UsageError(f"RUN: {exc}") from exc
    for run in store.runs:
        if run.log.torn_tail is not None:
            print(f"esper karn: warning: {run.log.torn_tail.describe(run.log.path)}", file=sys.stderr)
    return store


def _copy_target(args: argparse.Namespace) -> tuple[str, Path, CopyFormat]:
    if args.csv is not None:
        return "--csv", args.csv, "csv"
    return "--parquet", args.parquet, "parquet"


def write_rows(store: RunStore, args: argparse.Namespace) -> int:
    """`--csv FILE` / `--parquet FILE`: DuckDB writes the rows (to a temporary file renamed to FILE)."""
    flag, out, file_format = _copy_target(args)
    if not out.parent.is_dir() or out.is_dir():
        raise UsageError(f"{flag}: {out} is not a file in an existing directory")
    try:
        count = store.copy_query(args.query, out, file_format)
    except QueryError as exc:  # a bad query is the user's input: name it, exit 2
        raise UsageError(f"query: {exc}") from exc
    except OSError as exc:  # the file cannot be written there: name the flag and the file
        raise UsageError(f"{flag}: cannot write {out}: {exc}") from exc
    print(f"wrote {count} row{'s' if count != 1 else ''} to {out} ({file_format})")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    with open_runs(sql_run_dirs(args)) as store:
        if args.csv is not None or args.parquet is not None:
            return write_rows(store, args)
        try:
            result = store.query(args.query)
        except QueryError as exc:  # a bad query is the user's input: name it, exit 2
            raise UsageError(f"query: {exc}") from exc
    if args.json:
        print(json.dumps(result.records(), indent=2, default=_json_default))
    else:
        print(format_table(result.columns, result.rows))
        print(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})")
    return 0


def gate_table(report: GateReport) -> str:
    rows = [[r.gate, r.verdict.value.upper(), r.measured, r.threshold, r.note] for r in report.results]
    head = f"gates for {report.run}" + (f" (control {report.control})" if report.control else " (no control)")
    verdict = "ALL GATES PASS" if report.passed else "GATES NOT PASSED"
    return f"{head}\n{format_table(['gate', 'verdict', 'measured', 'threshold', 'note'], rows)}\n{verdict}"


def load_thresholds(path: Path | None) -> GateThresholds:
    if path is None:
        return GateThresholds()
    if not path.is_file():
        raise UsageError(f"--thresholds: {path} is not a file")
    try:
        return loads(GateThresholds, path.read_text(encoding="utf-8"))
    except WireError as exc:  # a bad thresholds file is misuse: name the field, exit 2
        raise UsageError(f"--thresholds: {exc}") from exc


def cmd_gates(args: argparse.Namespace) -> int:
    thresholds = load_thresholds(args.thresholds)
    run = open_store(resolve_run(args.run, args.runs_dir), args.baseline_accuracy)
    control = None
    if args.control is not None:
        control = open_store(resolve_run(args.control, args.runs_dir), args.control_baseline_accuracy)
    training = None
    if args.training is not None:
        training = open_store(resolve_run(args.training, args.runs_dir))
    report = evaluate(run, control, thresholds, training)
    if args.json:
        records: list[dict[str, Any]] = [
            {
                "gate": r.gate,
                "verdict": r.verdict.value,
                "measured": r.measured,
                "threshold": r.threshold,
                "note": r.note,
            }
            for r in report.results
        ]
        print(
            json.dumps(
                {"run": report.run, "control": report.control, "passed": report.passed, "gates": records}, indent=2
            )
        )
    else:
        print(gate_table(report))
    return 0 if report.passed else 1


def cmd_tui(args: argparse.Namespace) -> int:
    from esper.karn.tui import KarnApp  # Textual is imported only by the commands that need it

    KarnApp(resolve_run(args.run, args.runs_dir)).run()
    return 0


def train_with_tui(args: argparse.Namespace, run_dir: Path) -> int:
    """`esper train ... --tui`: the same command without --tui runs as a child process (its output goes to
    RUN_DIR.log beside the run directory) while the TUI follows its events.jsonl. Closing the TUI stops training
    that is still running; the events written so far stay (a PPO run resumes with --resume)."""
    from esper.karn.tui import KarnApp

    argv = [a for a in args.argv if a != "--tui"]
    if args.run_dir is None and "--resume" not in argv:
        argv += ["--run-dir", str(run_dir)]
    log_path = run_dir.with_name(run_dir.name + ".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        child = subprocess.Popen([sys.executable, "-m", "esper.cli.main", *argv], stdout=log, stderr=subprocess.STDOUT)
        app = KarnApp(run_dir)
        try:
            app.run()
            if app.live.completed is not None:  # training ended and is only writing summary.json: let it finish
                child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.terminate()
                print(f"esper train: training stopped when the TUI closed; events so far are in {run_dir}")
            code = child.wait()
    print(log_path.read_text(encoding="utf-8").rstrip())
    return code if code >= 0 else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from esper.karn.web import serve

    if not args.runs_dir.is_dir():
        raise UsageError(f"--runs-dir: {args.runs_dir} is not a directory")
    serve(args.runs_dir, host=args.host, port=args.port)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from esper.karn.report import write_report

    run_dir = resolve_run(args.run, args.runs_dir)
    out: Path = args.out if args.out is not None else run_dir / "report.html"
    with open_store(run_dir, args.baseline_accuracy) as store:
        write_report(store, out)
    print(f"wrote {out}")
    return 0
