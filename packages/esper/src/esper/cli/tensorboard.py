"""TensorBoard from the command line: `esper karn export RUN --tensorboard DIR` (a finished or running run's log
replayed into TensorBoard event files) and the live `--tensorboard DIR` of `esper train ...` (a sink on the run's
hub beside events.jsonl). Both go through `esper.karn.tensorboard`'s one mapping; tensorboardX is imported only when
one of them is asked for, and without torch (see that module)."""

from __future__ import annotations

import argparse
from pathlib import Path

from esper.cli.common import UsageError
from esper.cli.karn import resolve_run
from esper.leyline import TelemetrySink


def check_tensorboard_dir(path: Path | None) -> Path | None:
    """--tensorboard DIR: a directory, or a path where one can be made (nothing that is not a directory)."""
    if path is not None and path.exists() and not path.is_dir():
        raise UsageError(f"--tensorboard: {path} exists and is not a directory")
    return path


def tensorboard_sinks(path: Path | None) -> tuple[TelemetrySink, ...]:
    """The live TensorBoard sink a run's hub gets beside its JsonlSink (none without --tensorboard); the hub's
    close flushes and closes it."""
    if path is None:
        return ()
    from esper.karn.tensorboard import TensorBoardSink  # tensorboardX only for the runs that ask for it

    return (TensorBoardSink(path),)


def cmd_export(args: argparse.Namespace) -> int:
    """`esper karn export RUN --tensorboard DIR`: writes DIR/<run_id>/{run,env<K>,env<K>-host_baseline}."""
    if args.tensorboard is None:
        raise UsageError("esper karn export needs a target: --tensorboard DIR")
    out = check_tensorboard_dir(args.tensorboard)
    assert out is not None, "checked above"
    run_dir = resolve_run(args.run, args.runs_dir)
    from esper.karn.tensorboard import TensorBoardError, export_tensorboard

    try:
        written = export_tensorboard(run_dir, out)
    except FileExistsError as exc:  # DIR already holds this run: exporting again would show every record twice
        raise UsageError(f"--tensorboard: {exc}") from exc
    except TensorBoardError as exc:  # a log the mapping cannot place (no TRAINING_STARTED, ...): bad input
        raise UsageError(f"RUN: {run_dir}: {exc}") from exc
    for writer in written:
        print(f"wrote {writer.describe()}")
    print(f"view with: tensorboard --logdir {out}")
    return 0
