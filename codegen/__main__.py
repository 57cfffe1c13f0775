"""`python -m codegen [--check] [--root DIR]`: regenerate the contracts, or fail on drift."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from codegen.errors import CodegenError
from codegen.generate import Workspace, drift_report, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="regenerate in memory and fail on any difference")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="workspace root (default: current directory)")
    args = parser.parse_args(argv)
    ws = Workspace(args.root.resolve())
    started = time.perf_counter()
    try:
        if args.check:
            report = drift_report(ws)
            if report:
                print(report)
                print(
                    "\nCONTRACT DRIFT: the generated contracts or docs/contracts/ do not match schemas/ and the "
                    "consumers.\nRun `make codegen`, fix what the consumer-coverage tests name, and commit the "
                    "generated files with the schema change.",
                    file=sys.stderr,
                )
                return 1
            print(f"codegen-check: generated code and docs match schemas/ ({time.perf_counter() - started:.2f}s)")
            return 0
        changed = write(ws)
    except CodegenError as exc:
        print(f"codegen: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"updated {path}")
    print(f"codegen: {len(changed)} file(s) changed ({time.perf_counter() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
