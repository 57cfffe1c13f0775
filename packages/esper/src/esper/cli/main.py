"""`esper`: the command that composes the packages.

`esper train heuristic|ppo` runs a morphogenetic training run; `esper tasks` lists the tasks; `esper experiment`
runs experiment packs; `esper karn` looks at runs (list, SQL, TUI, web dashboard, report); `esper gates` evaluates
the Phase 0 exit gates; `esper contracts` lists the generated contracts; `esper check-events` validates an event log.

Flags live in `esper.cli.flags`; a command's module is imported only when it runs (torch only for training).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys

from esper.cli.common import EXIT_INTERRUPTED, EXIT_USAGE, Command, UsageError
from esper.cli.flags import build_parser
from esper.leyline import WireError

DISTRIBUTIONS = ("esper", *(f"esper-{p}" for p in ("leyline", "kasmina", "tolaria", "tamiyo", "simic", "karn")))


def versions() -> str:
    """`esper --version`: every esper distribution and the torch it would use (read from metadata, not imported)."""
    parts = [f"{name} {importlib.metadata.version(name)}" for name in DISTRIBUTIONS]
    try:
        parts.append(f"torch {importlib.metadata.version('torch')}")
    except importlib.metadata.PackageNotFoundError:  # leyline and karn install without torch
        parts.append("torch not installed")
    return "\n".join(parts)


def resolve(target: str) -> Command:
    """The handler "module:function" a subcommand names in esper.cli.flags."""
    module, _, function = target.partition(":")
    handler: Command = vars(importlib.import_module(module))[function]
    return handler


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (`esper tasks | head -n 1`): end quietly, as a Unix tool does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's final flush of stdout must not fail again
    return 141  # 128 + SIGPIPE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(versions())
        return 0
    if args.group is None:
        parser.error("a command is required (see `esper --help`)")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `--tui` re-runs the same command as a child
    try:
        return resolve(args.command)(args)
    except (UsageError, WireError, FileNotFoundError) as exc:  # the one exit-2 path: misuse or bad input
        # (a flag, a file, a pack, wire data that breaks its contract): one line naming it, nothing half-written
        print(f"esper {args.group}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # not an error of ours: the reader closed the pipe (`| head`); end as a Unix tool does
        return _quiet_broken_pipe()
    except KeyboardInterrupt:  # a second Ctrl-C while a run was already stopping: stop at once
        print(f"\nesper {args.group}: interrupted twice: stopped at once", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
