"""`esper`: the command that composes the packages.

`esper train heuristic|ppo` runs a morphogenetic training run; `esper tasks` lists the tasks; `esper contracts` lists
the generated contracts; `esper check-events` validates a run's event log against the telemetry schema; `esper karn`
looks at runs (list, SQL, TUI, web dashboard, report); `esper gates` evaluates the Phase 0 exit gates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import esper.karn
import esper.kasmina
import esper.leyline
import esper.simic
import esper.tamiyo
import esper.tolaria
from esper.cli.experiment import add_experiment_parser
from esper.cli.karn import add_gates_parser, add_karn_parser
from esper.cli.train import add_train_parser
from esper.karn import read_event_log
from esper.leyline import WireError

PACKAGES = {
    "leyline": esper.leyline.CONTRACT_NAMES,
    "kasmina": esper.kasmina.__all__,
    "tolaria": esper.tolaria.__all__,
    "tamiyo": esper.tamiyo.__all__,
    "simic": esper.simic.__all__,
    "karn": esper.karn.CONTRACT_NAMES,
}


def cmd_contracts(args: argparse.Namespace) -> int:
    for package, names in PACKAGES.items():
        if args.package is not None and package != args.package:
            continue
        print(f"esper.{package} ({len(names)})")
        for name in sorted(names):
            print(f"  {name}")
    return 0


def cmd_check_events(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        print(f"esper check-events: {path} is not a file", file=sys.stderr)
        return 2
    try:
        log = read_event_log(path)
    except WireError as exc:  # the finding this command exists to report (with its line number): exit 1
        print(f"esper check-events: {exc}", file=sys.stderr)
        return 1
    if log.torn_tail is not None:
        print(f"esper check-events: warning: {log.torn_tail.describe(path)}", file=sys.stderr)
    print(f"{path}: {len(log.events)} valid events")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esper", description="Morphogenetic neural networks: grow, blend, prune.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_karn_parser(sub)
    add_gates_parser(sub)
    add_experiment_parser(sub)
    contracts = sub.add_parser("contracts", help="list the generated contract types per package")
    contracts.add_argument("--package", choices=sorted(PACKAGES), help="only this package")
    contracts.set_defaults(func=cmd_contracts)
    check = sub.add_parser("check-events", help="validate every line of a run's events.jsonl")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_check_events)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `--tui` re-runs the same command as a child
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
