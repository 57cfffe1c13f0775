"""`esper train heuristic` end to end on the digits task, and its misuse errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from esper.cli.flags import build_parser
from esper.cli.main import main
from esper.cli.plan import plan_from_flags, read_config, resolve, write_config
from esper.karn import read_events
from esper.karn.contracts.run_summary import RunSummary
from esper.leyline import (
    BlueprintAction,
    LifecycleOp,
    ListSink,
    PolicyKind,
    TelemetryEventType,
    TelemetryHub,
    canonical_action,
    loads,
)
from esper.tolaria import Environment

CPU = torch.device("cpu")

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def envelope_validator() -> Draft202012Validator:
    docs = [json.loads(p.read_text()) for p in SCHEMAS.rglob("*.json")]
    registry: Registry = Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=DRAFT202012)) for d in docs
    )
    envelope = json.loads((SCHEMAS / "leyline" / "telemetry_event.json").read_text())
    return Draft202012Validator(envelope, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def run(run_dir: Path, *extra: str) -> int:
    return main(
        [
            "train",
            "heuristic",
            "--task",
            "digits",
            "--episodes",
            "1",
            "--blueprints",
            "conv_ladder",
            "--seed",
            "0",
            "--run-dir",
            str(run_dir),
            *extra,
        ]
    )


def test_heuristic_run_end_to_end_is_valid_and_reproducible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "a") == 0
    table = capsys.readouterr().out
    assert "host-only baseline, same epochs" in table and "internal level changes" in table
    assert run(tmp_path / "b") == 0
    first, second = (loads(RunSummary, (tmp_path / d / "summary.json").read_text()) for d in ("a", "b"))
    strip = {"run_id": "x"}
    assert {**json.loads((tmp_path / "a" / "summary.json").read_text()), **strip} == {
        **json.loads((tmp_path / "b" / "summary.json").read_text()),
        **strip,
    }
    assert first.episodes == 1 and first.baseline_accuracy is not None and first.germinated >= 1
    assert first.internal_level_changes == second.internal_level_changes >= 1

    lines = (tmp_path / "a" / "events.jsonl").read_text().splitlines()
    validator = envelope_validator()
    for number, line in enumerate(lines, start=1):
        errors = list(validator.iter_errors(json.loads(line)))
        assert not errors, f"line {number}: {errors[0].message}"
    events = list(read_events(tmp_path / "a" / "events.jsonl"))
    kinds = {e.event_type.name for e in events}
    assert {
        "TRAINING_STARTED",
        "EPOCH_COMPLETED",
        "ACTION_TAKEN",
        "SEED_GERMINATED",
        "SEED_INTERNAL_LEVEL_CHANGED",
        "EPISODE_OUTCOME",
        "TRAINING_COMPLETED",
    } <= kinds
    assert sum(1 for e in events if e.event_type.name == "EPOCH_COMPLETED") == 60
    # The host-only baseline's epochs are in the log too, tagged as such: env 0, episode 0, epochs 1..60, ending at
    # the accuracy the summary reports for the baseline.
    baseline = [e for e in events if e.event_type.name == "HOST_BASELINE_EPOCH"]
    assert [(e.env_id, e.episode, e.epoch) for e in baseline] == [(0, 0, epoch) for epoch in range(1, 61)]
    assert baseline[-1].payload.val_accuracy == first.baseline_accuracy
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["blueprints"] == ["conv_ladder"] and config["task"]["name"] == "digits"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--slots", "r9c9"],
            "--slots: host has no slot(s) ['r9c9']; available: r0c0, r1c0, r0c1, r1c1, r0c2 (task digits)",
        ),
        (["--slots", "late"], "--slots: slot id 'late' is not of the form"),
        (["--blueprints", "lora"], "--blueprints: ['lora'] do not apply to digits"),
        (["--blueprints", "conv_huge"], "--blueprints: unknown blueprint 'conv_huge'"),
        (["--episodes", "0"], "--episodes must be >= 1"),
        (["--max-seeds", "0"], "--max-seeds must be >= 1"),
        pytest.param(
            ["--device", "cuda:0"],
            "--device: CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
        pytest.param(
            ["--device", "mps"],
            "--device: mps is not available",
            marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's GPU"),
        ),
        (["--device", "meta"], "--device: meta is not supported; use cpu, cuda[:index] or mps"),
        (["--task", "cifar10"], "--data-dir: task cifar10 needs an existing data directory"),
        (["--seed-width", "0"], "--seed-width must be >= 1, got 0"),
        (["--task", "charlm", "--seed-width", "8"], "--seed-width: sizes CNN conv seeds; task charlm is a transformer"),
    ],
)
def test_misuse_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "heuristic", "--run-dir", str(run_dir), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_unknown_task_and_existing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "heuristic", "--task", "mnist"]) == 2
    tasks = "digits, digits_narrow, cifar10, charlm, charlm_narrow, charlm_layerwise, tinystories"
    expected = f"--task: unknown task 'mnist'; tasks: {tasks}"
    assert expected in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert main(["train", "heuristic", "--run-dir", str(busy)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"]


def test_tasks_lists_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "digits_narrow", "cifar10", "charlm", "charlm_narrow", "charlm_layerwise", "tinystories"):
        assert name in out
    assert "r0c0 pre_pool*" in out and "r0c0 block_end*" in out
    layerwise = out[out.index("charlm_layerwise") :].splitlines()[1]  # its slots line, in action order
    assert layerwise.split("slots: ")[1].startswith("r0c0 post_attn*, r1c0 post_mlp*, r0c1 post_attn*")


def test_slots_are_taken_in_the_hosts_action_order(tmp_path: Path) -> None:
    """--slots in any order: the run's slots (config.json and the slot head) follow the host's injection order, which
    on the lattice interleaves the two surfaces layer by layer (r1c0 before r0c1), not the ids' row-major order."""
    args = build_parser().parse_args(
        [
            "train",
            "heuristic",
            "--task",
            "charlm_layerwise",
            "--slots",
            "r0c1",
            "r1c0",
            "r0c0",
            "--run-dir",
            str(tmp_path / "r"),
        ]
    )
    plan = plan_from_flags(args, PolicyKind.HEURISTIC)
    assert plan.slots == ("r0c0", "r1c0", "r0c1")
    assert [spec.surface.name for spec in plan.slot_config.slots] == ["POST_ATTN", "POST_MLP", "POST_ATTN"]
    assert plan.slot_config.lattice_size == 12


def test_seed_width_is_recorded_and_sizes_the_seeds(tmp_path: Path) -> None:
    """--seed-width lands in config.json's task and the environment built from the plan (or from that file again,
    as a resume would) germinates conv seeds at that width: on digits_narrow's 2-channel r0c0, conv_heavy at width 8
    is a 2 -> 8 expansion, two 8-channel blocks and the 8 -> 2 projection."""
    args = build_parser().parse_args(
        ["train", "heuristic", "--task", "digits_narrow", "--seed-width", "8", "--run-dir", str(tmp_path / "r")]
    )
    plan = plan_from_flags(args, PolicyKind.HEURISTIC)
    write_config(plan)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["task"]["seed_width"] == 8
    again = resolve(read_config(tmp_path / "r"), tmp_path / "r")
    for task in (plan.task, again.task):
        sink = ListSink()
        env = Environment(task, task.load(None), ("r0c0",), TelemetryHub("t", sinks=(sink,)).emitter(0), 0, CPU)
        env.reset(0)
        env.step(canonical_action(LifecycleOp.GERMINATE, 0, BlueprintAction.CONV_HEAVY))
        germinated = [e.payload for e in sink.events if e.event_type is TelemetryEventType.SEED_GERMINATED]
        assert [g.params for g in germinated] == [2 * 8 + 2 * (9 * 8 * 8 + 2 * 8) + 8 * 2]


@pytest.mark.parametrize("flags", [[], ["--compile"]])
def test_compile_is_recorded_and_read_back(tmp_path: Path, flags: list[str]) -> None:
    """--compile lands in config.json and, from there (as a resume reads it), in the backend the environments get."""
    args = build_parser().parse_args(["train", "ppo", "--run-dir", str(tmp_path / "r"), *flags])
    plan = plan_from_flags(args, PolicyKind.PPO)
    write_config(plan)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["compile"] is bool(flags)
    again = resolve(read_config(tmp_path / "r"), tmp_path / "r")
    for resolved in (plan, again):
        assert resolved.compile_backend == ("inductor" if flags else None)
