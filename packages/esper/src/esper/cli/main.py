"""`esper`: the command that composes the packages.

`esper train heuristic` runs a morphogenetic training run; `esper tasks` lists the tasks; `esper contracts` lists the
generated contracts; `esper check-events` validates a run's event log against the telemetry schema.
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
from esper.cli.train import add_train_parser
from esper.karn import read_events
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
    count = 0
    try:
        for _ in read_events(path):
            count += 1
    except WireError as exc:  # the finding this command exists to report (with its line number): exit 1
        print(f"esper check-events: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {count} valid events")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esper", description="Morphogenetic neural networks: grow, blend, prune.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    contracts = sub.add_parser("contracts", help="list the generated contract types per package")
    contracts.add_argument("--package", choices=sorted(PACKAGES), help="only this package")
    contracts.set_defaults(func=cmd_contracts)
    check = sub.add_parser("check-events", help="validate every line of a run's events.jsonl")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_check_events)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
