"""`esper export RUN --out DIR [--episode N] [--env N]`: one grown model of a `--save-model` run, copied out.

DIR receives model.safetensors and model.json (esper.kasmina.grown), which `esper.kasmina.load_grown_model(DIR)`
rebuilds for inference. By default the run's last episode, and of that episode's environments the one whose grown
model measured the best validation accuracy (ties: the lowest env id).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from esper.cli.common import UsageError
from esper.cli.karn import resolve_run
from esper.cli.plan import MODELS_DIR
from esper.kasmina import read_record
from esper.kasmina.contracts import GrownModelRecord
from esper.kasmina.grown import RECORD_FILE


def saved_models(run_dir: Path) -> dict[Path, GrownModelRecord]:
    """Every grown model the run saved, by directory."""
    models = run_dir / MODELS_DIR
    found = sorted(models.glob(f"*/{RECORD_FILE}")) if models.is_dir() else []
    if not found:
        raise UsageError(f"RUN: {run_dir} saved no grown model (train it with --save-model)")
    return {path.parent: read_record(path.parent) for path in found}


def choose(models: dict[Path, GrownModelRecord], episode: int | None, env: int | None) -> Path:
    episodes = sorted({r.episode for r in models.values()})
    wanted = episodes[-1] if episode is None else episode
    if wanted not in episodes:
        raise UsageError(f"--episode: {wanted} has no saved model; saved episodes: {', '.join(map(str, episodes))}")
    candidates = {path: r for path, r in models.items() if r.episode == wanted}
    if env is not None:
        candidates = {path: r for path, r in candidates.items() if r.env_id == env}
        if not candidates:
            envs = sorted(r.env_id for r in models.values() if r.episode == wanted)
            raise UsageError(f"--env: episode {wanted} has no model of env {env}; its envs: {envs}")
    return min(candidates, key=lambda path: (-candidates[path].val_accuracy, candidates[path].env_id))


def cmd_export(args: argparse.Namespace) -> int:
    run_dir = resolve_run(args.run, args.runs_dir)
    out: Path = args.out
    if out.exists():
        raise UsageError(f"--out: {out} already exists; give a new directory")
    source = choose(saved_models(run_dir), args.episode, args.env)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    shutil.copytree(source, staging, dirs_exist_ok=True)
    staging.rename(out)  # all at once: DIR holds a whole model or does not exist
    record = read_record(out)
    seeds = ", ".join(f"{s.blueprint_id}@{s.slot_id}" for s in record.seeds) or "no fossils"
    print(
        f"exported {run_dir.name} episode {record.episode} env {record.env_id} to {out}: {seeds}; "
        f"validation accuracy {record.val_accuracy:.2f}% "
        f"(load with esper.kasmina.load_grown_model({str(out)!r}))"
    )
    return 0
