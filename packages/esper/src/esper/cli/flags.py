"""Every flag of the `esper` command, in one place and without torch.

Each subcommand names its handler as "module:function" (`command=`); `esper.cli.main` imports that module only when
the command runs, so `esper --help`, `--version`, `karn ...`, `gates`, `check-events` and `contracts` never import
torch. Values that need torch to check (task names, devices) are validated by the command itself (exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from esper.leyline import ParallelMode

PACKAGES = ("leyline", "kasmina", "tolaria", "tamiyo", "simic", "karn")
DEFAULT_RUNS_DIR = Path("runs")
TASK_HELP = "task name (default: digits; `esper tasks` lists them)"

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # subscriptable for the type checker only


def _command(parser: argparse.ArgumentParser, target: str) -> None:
    parser.set_defaults(command=target)


def _run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags both training policies share."""
    parser.add_argument("--task", default="digits", help=TASK_HELP)
    parser.add_argument("--slots", nargs="+", help="enabled slots, e.g. r0c0 r0c1 (default: the task's)")
    parser.add_argument("--blueprints", nargs="+", help="blueprint ids Tamiyo may germinate (default: all)")
    parser.add_argument("--max-seeds", type=int, help="most live + fossilized seeds per episode (default: no cap)")
    parser.add_argument(
        "--seed-width", type=int, help="internal width of the CNN conv seeds (default: the task's; see `esper tasks`)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda[:index] or mps (default cpu)")
    parser.add_argument("--run-dir", type=Path, help="output directory (default runs/<run_id>)")
    parser.add_argument("--data-dir", type=Path, help="data directory for cifar10 / tinystories")
    parser.add_argument("--tui", action="store_true", help="watch the run in the Karn TUI while it trains")
    parser.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help="also write TensorBoard records under DIR/<run_id>/ while it trains (`tensorboard --logdir DIR`)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the host and every seed (pays on a GPU; see docs/performance.md)",
    )
    parser.add_argument(
        "--save-model",
        action="store_true",
        help="save each episode's grown model (host + fossils) under RUN_DIR/models/ (see `esper export`)",
    )


def add_train_parser(sub: Sub) -> None:
    train = sub.add_parser("train", help="run a morphogenetic training run (Ctrl-C stops at the next epoch)")
    policies = train.add_subparsers(dest="policy", required=True)
    heuristic = policies.add_parser("heuristic", help="the rule-based Tamiyo (no learning)")
    _run_flags(heuristic)
    heuristic.add_argument("--episodes", type=int, default=2, help="episodes (default 2)")
    heuristic.add_argument("--epochs", type=int, help="host epochs per episode (default: the task's)")
    _command(heuristic, "esper.cli.train:cmd_train_heuristic")
    ppo = policies.add_parser("ppo", help="learn Tamiyo with PPO over N environments")
    _run_flags(ppo)
    ppo.add_argument("--rounds", type=int, help="PPO rounds, one episode per environment each (default 10)")
    ppo.add_argument("--envs", type=int, default=4, help="environments per round (default 4)")
    ppo.add_argument("--episode-length", type=int, help="host epochs per episode (default: the task's)")
    ppo.add_argument("--config-json", type=Path, help='JSON with optional "ppo", "reward", "policy" sections')
    ppo.add_argument("--checkpoint-every", type=int, default=1, help="save a checkpoint every K rounds (default 1)")
    ppo.add_argument("--resume", type=Path, help="continue the run in this directory from its last checkpoint")
    ppo.add_argument(
        "--distributed",
        choices=[m.value for m in ParallelMode if m is not ParallelMode.NONE],
        help="under torchrun: envs = environment-parallel PPO, data = data-parallel hosts (see docs/distributed.md)",
    )
    ppo.add_argument(
        "--dist-timeout",
        type=float,
        default=300.0,
        help="seconds a collective waits for a silent rank before the run fails (default 300)",
    )
    _command(ppo, "esper.cli.ppo:cmd_train_ppo")
    tasks = sub.add_parser("tasks", help="list the tasks")
    _command(tasks, "esper.cli.train:cmd_tasks")


def add_evaluate_parser(sub: Sub) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="run a trained PPO policy deterministically on seeds it never trained on (no learning)"
    )
    evaluate.add_argument("run", type=Path, help="directory of an `esper train ppo` run (its latest checkpoint)")
    evaluate.add_argument(
        "--seeds", type=int, nargs="+", help="evaluation seeds, none a training seed (default: 5 from 10000)"
    )
    evaluate.add_argument("--task", help="another task of the same topology with the run's slots (default: the run's)")
    evaluate.add_argument("--episodes", type=int, default=1, help="episodes per seed (default 1)")
    evaluate.add_argument("--epochs", type=int, help="host epochs per episode (default: the run's episode length)")
    evaluate.add_argument("--out", type=Path, help="output directory (default: beside RUN, <run>-eval-<time>)")
    _command(evaluate, "esper.cli.evaluate:cmd_evaluate")


def add_experiment_parser(sub: Sub) -> None:
    experiment = sub.add_parser("experiment", help="experiment packs: arms x seeds, gates, comparison report")
    commands = experiment.add_subparsers(dest="experiment_command", required=True)
    listing = commands.add_parser("list", help="the packs, their arms and sizes")
    _command(listing, "esper.cli.experiment:cmd_list")
    run = commands.add_parser("run", help="run a pack; exit 0 only when every gate pair passes on every seed")
    run.add_argument("pack", help="pack name (see `esper experiment list`) or a pack file of your own, PATH.json")
    run.add_argument(
        "--scale",
        choices=["quick", "cpu", "full"],
        default="full",
        help="quick: heuristic and random arms, minutes; cpu: every arm, PPO included, under 45 minutes on 2 cores; "
        "full (default): sized for a GPU",
    )
    run.add_argument("--quick", action="store_true", help="shorthand for --scale quick")
    run.add_argument("--out", type=Path, help="output directory (default runs/experiments/<pack>-<scale>-<time>)")
    _command(run, "esper.cli.experiment:cmd_run")


def _runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR, help="where runs live (default: runs)")


def _run_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory or run id under --runs-dir")
    _runs_dir(parser)


def add_karn_parser(sub: Sub) -> None:
    karn = sub.add_parser("karn", help="look at runs: list, SQL, TUI, web dashboard, report")
    commands = karn.add_subparsers(dest="karn_command", required=True)

    runs = commands.add_parser("runs", help="list the runs under --runs-dir")
    _runs_dir(runs)
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _command(runs, "esper.cli.karn:cmd_runs")

    views = commands.add_parser("views", help="list the DuckDB views a query can use")
    _command(views, "esper.cli.karn:cmd_views")

    sql = commands.add_parser(
        "sql", help="run a SQL query over the views of one run, several or all in --runs-dir (`esper karn views`)"
    )
    sql.add_argument(
        "runs", nargs="*", metavar="RUN", help="run directories or run ids under --runs-dir (none: every run there)"
    )
    sql.add_argument("query", help='e.g. "SELECT run_id, op, count(*) FROM actions GROUP BY ALL"')
    _runs_dir(sql)
    output = sql.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the rows as JSON records")
    output.add_argument("--csv", type=Path, metavar="FILE", help="write the rows to FILE as CSV, with a header")
    output.add_argument("--parquet", type=Path, metavar="FILE", help="write the rows to FILE as Parquet")
    _command(sql, "esper.cli.karn:cmd_sql")

    tui = commands.add_parser("tui", help="terminal view of a running or finished run")
    _run_arg(tui)
    _command(tui, "esper.cli.karn:cmd_tui")

    serve = commands.add_parser("serve", help="web dashboard over every run in --runs-dir")
    _runs_dir(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    _command(serve, "esper.cli.karn:cmd_serve")

    report = commands.add_parser("report", help="write a self-contained HTML report of a run")
    _run_arg(report)
    report.add_argument("--out", type=Path, help="output file (default RUN/report.html)")
    report.add_argument("--baseline-accuracy", type=float, help="host-only accuracy for ROI (default: summary.json)")
    _command(report, "esper.cli.karn:cmd_report")

    export = commands.add_parser("export", help="export a run's telemetry for another viewer (TensorBoard)")
    _run_arg(export)
    export.add_argument(
        "--tensorboard", type=Path, metavar="DIR", help="write TensorBoard event files under DIR/<run_id>/"
    )
    _command(export, "esper.cli.tensorboard:cmd_export")


def add_gates_parser(sub: Sub) -> None:
    gates = sub.add_parser("gates", help="evaluate the exit gates (exit 0 only when all that apply pass)")
    gates.add_argument("run", help="treatment run: directory or run id under --runs-dir")
    gates.add_argument("--control", help="control run (no ladder) for the comparative gates")
    gates.add_argument(
        "--training", help="for an evaluation run: the PPO run that trained its policy (the entropy gate reads it)"
    )
    _runs_dir(gates)
    gates.add_argument("--thresholds", type=Path, help="GateThresholds JSON (default: the contract's defaults)")
    gates.add_argument("--baseline-accuracy", type=float, help="host-only accuracy for the run's ROI")
    gates.add_argument("--control-baseline-accuracy", type=float, help="host-only accuracy for the control's ROI")
    gates.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    _command(gates, "esper.cli.karn:cmd_gates")


def add_export_parser(sub: Sub) -> None:
    export = sub.add_parser("export", help="copy a run's grown model (saved with --save-model) out for inference")
    _run_arg(export)
    export.add_argument("--out", type=Path, required=True, help="directory to create with the model")
    export.add_argument("--episode", type=int, help="episode whose model to export (default: the run's last)")
    export.add_argument("--env", type=int, help="environment whose model to export (default: the best of the episode)")
    _command(export, "esper.cli.export:cmd_export")


def add_inspect_parsers(sub: Sub) -> None:
    contracts = sub.add_parser("contracts", help="list the generated contract types per package")
    contracts.add_argument("--package", choices=PACKAGES, help="only this package")
    _command(contracts, "esper.cli.listing:cmd_contracts")
    check = sub.add_parser("check-events", help="validate every line of a run's events.jsonl")
    check.add_argument("file", type=Path)
    _command(check, "esper.cli.listing:cmd_check_events")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esper", description="Morphogenetic neural networks: grow, blend, prune.")
    parser.add_argument("--version", action="store_true", help="print the versions of the esper packages and torch")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_karn_parser(sub)
    add_gates_parser(sub)
    add_experiment_parser(sub)
    add_export_parser(sub)
    add_inspect_parsers(sub)
    return parser
