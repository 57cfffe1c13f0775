"""`esper train ... --tensorboard DIR` (live) and `esper karn export RUN --tensorboard DIR` on real runs: both write
the same records, the records say what the events said, misuse exits 2 naming the flag, and the export does not
import torch."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from karn_synthetic import heuristic_run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from esper.cli.main import main
from esper.karn import read_events
from esper.leyline import ActionHead, EpochCompletedPayload, PpoUpdateCompletedPayload

Records = dict[str, list[tuple[object, ...]]]


def load(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def records(logdir: Path) -> dict[str, Records]:
    """Every record of every TensorBoard run under `logdir`, by run (relative path) and tag."""
    found: dict[str, Records] = {}
    for run in sorted({path.parent for path in logdir.rglob("events.out.tfevents.*")}):
        acc = load(run)
        tags = acc.Tags()
        by_tag: Records = {}
        for tag in tags["scalars"]:
            by_tag[tag] = [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]
        for tag in tags["histograms"]:
            by_tag[tag] = [
                (e.step, tuple(e.histogram_value.bucket), e.histogram_value.num) for e in acc.Histograms(tag)
            ]
        for tag in tags["tensors"]:
            by_tag[tag] = [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(tag)]
        found[str(run.relative_to(logdir))] = by_tag
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A heuristic run (1 episode of 2 epochs) and a PPO run (1 round, 2 envs, 2 epochs), each with --tensorboard."""
    root = tmp_path_factory.mktemp("runs")
    live = ["--tensorboard", str(root / "live")]
    heuristic = ["train", "heuristic", "--episodes", "1", "--epochs", "2", "--run-dir", str(root / "heur")]
    assert main([*heuristic, *live]) == 0
    ppo = ["train", "ppo", "--rounds", "1", "--envs", "2", "--episode-length", "2", "--run-dir", str(root / "ppo")]
    assert main([*ppo, *live]) == 0
    return root


def test_live_records_equal_the_export_of_the_same_log(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["karn", "export", str(runs / "heur"), "--tensorboard", str(runs / "export")]) == 0
    assert main(["karn", "export", "ppo", "--runs-dir", str(runs), "--tensorboard", str(runs / "export")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {runs / 'export' / 'heur' / 'env0'}: " in out and f"tensorboard --logdir {runs / 'export'}" in out
    live, exported = records(runs / "live"), records(runs / "export")
    assert sorted(exported) == [
        "heur/env0",
        "heur/env0-host_baseline",
        "heur/run",
        "ppo/env0",
        "ppo/env1",
        "ppo/run",
    ]
    assert live == exported  # every tag, step, value, wall time, histogram bucket and text
    assert {"accuracy/val", "reward/total", "actions/op", "training/text_summary"} <= set(live["heur/env0"]) | set(
        live["heur/run"]
    )


def test_records_say_what_the_events_said(runs: Path) -> None:
    events = read_events(runs / "heur" / "events.jsonl")
    epochs = [(e.epoch, e.payload) for e in events if isinstance(e.payload, EpochCompletedPayload)]
    env0 = load(runs / "live" / "heur" / "env0")
    assert [(s.step, s.value) for s in env0.Scalars("accuracy/val")] == [
        (epoch, pytest.approx(p.val_accuracy, rel=1e-6)) for epoch, p in epochs
    ]
    ppo_events = read_events(runs / "ppo" / "events.jsonl")
    (update,) = [e.payload for e in ppo_events if isinstance(e.payload, PpoUpdateCompletedPayload)]
    ppo = load(runs / "live" / "ppo" / "run")
    assert [(s.step, s.value) for s in ppo.Scalars("ppo/value_loss")] == [(1, pytest.approx(update.value_loss))]
    op_entropy = update.head_entropies[ActionHead.OP]
    assert ppo.Scalars("ppo/entropy/op")[0].value == pytest.approx(op_entropy, rel=1e-6)
    # each PPO environment has its own run, its epochs at episode * 2 + epoch (round 1 is episode 0)
    assert [s.step for s in load(runs / "live" / "ppo" / "env1").Scalars("loss/val")] == [1, 2]
    # a record's wall time is its event's timestamp (TRAINING_STARTED: the log's first line)
    started = datetime.fromisoformat(ppo_events[0].timestamp).timestamp()
    assert ppo.Tensors("training/text_summary")[0].wall_time == started


def test_misuse_exits_2_naming_the_flag(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["karn", "export", str(runs / "heur")]) == 2
    assert "esper karn export needs a target: --tensorboard DIR" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["karn", "export", str(runs / "heur"), "--tensorboard", str(tmp_path / "file")]) == 2
    assert f"--tensorboard: {tmp_path / 'file'} exists and is not a directory" in capsys.readouterr().err
    assert main(["karn", "export", str(runs / "heur"), "--tensorboard", str(runs / "live")]) == 2
    assert f"--tensorboard: {runs / 'live' / 'heur'} already holds TensorBoard event files" in capsys.readouterr().err
    train = ["train", "heuristic", "--episodes", "1", "--run-dir", str(tmp_path / "never")]
    assert main([*train, "--tensorboard", str(tmp_path / "file")]) == 2
    assert "--tensorboard:" in capsys.readouterr().err and not (tmp_path / "never").exists()  # nothing written


EXPORT_PROBE = """
import sys
from esper.cli.main import main
code = main(["karn", "export", {run!r}, "--tensorboard", {out!r}])
print("exit", code, "torch imported" if "torch" in sys.modules else "torch not imported")
"""


def test_export_does_not_import_torch(tmp_path: Path) -> None:
    run = heuristic_run(tmp_path / "heur")
    probe = EXPORT_PROBE.format(run=str(run), out=str(tmp_path / "tb"))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.rstrip().endswith("exit 0 torch not imported"), done.stdout + done.stderr
    assert (tmp_path / "tb" / "heur" / "env0").is_dir()
