"""`esper experiment`: list the packs; run a tiny pack file end to end (real training, gates, comparison report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.cli.experiment import plan_pack
from esper.cli.main import main
from esper.karn.packs import load_packs
from esper.karn.packs import scale as scale_of
from esper.leyline import SurfaceType

LARGER = {
    "seeds": [0, 1],
    "episodes": 1,
    "epochs": 6,
    "ppo_rounds": 1,
    "ppo_envs": 1,
    "ppo_train_seed": 7,
    "arms": ["control"],
}
TINY = {
    "name": "tiny",
    "description": "A pack small enough for a test.",
    "task": "digits",
    "arms": [
        {"name": "control", "description": "no ladder", "policy": "heuristic", "blueprints": ["conv_light"]},
        {
            "name": "treatment",
            "description": "ladder",
            "policy": "heuristic",
            "blueprints": ["conv_light", "conv_ladder"],
        },
        {"name": "random", "description": "random", "policy": "random", "blueprints": ["conv_ladder"]},
        {"name": "ppo_treatment", "description": "ppo", "policy": "ppo", "blueprints": ["conv_ladder"]},
    ],
    "quick": {
        "seeds": [0],
        "episodes": 1,
        "epochs": 6,
        "ppo_rounds": 1,
        "ppo_envs": 1,
        "ppo_train_seed": 7,
        "arms": ["control", "treatment", "random", "ppo_treatment"],
    },
    "cpu": LARGER,
    "full": LARGER,
    "gate_pairs": [{"treatment": "treatment", "control": "control"}],
}


def test_list_shows_the_phase0_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("phase0: ") and "arm static" in out and "quick seeds [0, 1, 2]" in out


@pytest.mark.parametrize("scale", ["quick", "cpu", "full"])
def test_every_shipped_pack_plans_every_arm(scale: str, tmp_path: Path) -> None:
    """Each arm of each shipped pack resolves at every scale (its task, slots and blueprints exist), and the phase1
    cohorts get their slot layouts in the host's action order with the surfaces the plan names."""
    for pack in load_packs().values():
        runs = plan_pack(pack, scale_of(pack, scale), tmp_path / pack.name)
        assert len(runs.plans) + len(runs.trainings) >= 1
    phase1 = load_packs()["phase1"]
    runs = plan_pack(phase1, scale_of(phase1, scale), tmp_path / "p1")
    seed = scale_of(phase1, scale).seeds[0]
    surfaces = {
        arm: {spec.surface for spec in runs.plans[(arm, seed)].slot_config.slots}
        for arm in ("block_lora", "layer_ladder", "attn_ladder", "lattice_ladder")
    }
    assert surfaces["block_lora"] == surfaces["layer_ladder"] == {SurfaceType.POST_MLP}
    assert surfaces["attn_ladder"] == {SurfaceType.POST_ATTN}
    assert surfaces["lattice_ladder"] == {SurfaceType.POST_ATTN, SurfaceType.POST_MLP}
    assert runs.plans[("block_lora", seed)].slots == ("r1c1", "r1c3", "r1c5")
    assert len(runs.plans[("lattice_ladder", seed)].slots) == 12


def test_a_pack_file_runs_every_arm_and_writes_report_results_and_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = tmp_path / "tiny.json"
    pack.write_text(json.dumps(TINY))
    out = tmp_path / "out"
    code = main(["experiment", "run", str(pack), "--quick", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code in (0, 1)  # 0 only when every gate passes: a verdict, not a crash
    results = json.loads((out / "results.json").read_text())
    assert {(a["arm"], a["seed"]) for a in results["arms"]} == {
        ("control", 0),
        ("treatment", 0),
        ("random", 0),
        ("ppo_treatment", 0),
    }
    host_only = results["host_only_accuracy"]["0"]
    ppo = next(a for a in results["arms"] if a["arm"] == "ppo_treatment")
    assert ppo["baseline_accuracy"] == host_only  # the evaluation's own host-only run: the same host, seed and epochs
    # The PPO arm trained once on its own seed, then acted on seed 0 from the trained checkpoint.
    trained = json.loads((out / "ppo_treatment-train" / "config.json").read_text())
    assert trained["seed"] == 7 and trained["evaluates"] is None
    evaluation = json.loads((out / "ppo_treatment-s0" / "config.json").read_text())
    assert evaluation["seed"] == 0 and evaluation["policy"] == "ppo"
    assert evaluation["evaluates"] == str(out / "ppo_treatment-train" / "checkpoint.pt")
    assert [g["pair"] for g in results["gates"]] == ["treatment vs control"]
    # Paired differences: every arm against host-only, the gate pair, and the learned arm against every fixed one.
    named = {d["difference"]: d for d in results["differences"]}
    assert set(named) == {
        "control − host_only",
        "treatment − host_only",
        "random − host_only",
        "ppo_treatment − host_only",
        "treatment − control",
        "ppo_treatment − control",
        "ppo_treatment − treatment",
        "ppo_treatment − random",
    }
    random_arm = next(a for a in results["arms"] if a["arm"] == "random")
    expected = random_arm["final_accuracy"] - random_arm["baseline_accuracy"]
    assert named["random − host_only"]["final_accuracy"] == f"{expected:.2f}"  # one seed: the value, no interval
    assert "Differences (paired by seed" in (out / "comparison.html").read_text()
    assert (code == 0) == results["gates"][0]["passed"]
    verdict = (out / "verdict.txt").read_text().strip()
    assert verdict == results["verdict"] and f"experiment tiny (quick): {verdict}" in printed
    report = (out / "comparison.html").read_text()
    assert "Experiment tiny" in report and "host_only" in report and "<svg" in report
    for arm in ("control", "treatment", "random", "ppo_treatment"):
        assert (out / f"{arm}-s0" / "summary.json").is_file()


def test_misuse_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "run", "nope"]) == 2
    assert "no pack 'nope'; packs: phase0, phase1, phase2" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**TINY, "gate_pairs": [{"treatment": "treatment", "control": "ghost"}]}))
    assert main(["experiment", "run", str(broken), "--quick"]) == 2
    assert "gate_pairs[0].control: unknown arm 'ghost'" in capsys.readouterr().err
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({**TINY, "cpu": {**LARGER, "ppo_train_seed": 1}}))
    assert main(["experiment", "run", str(mixed), "--scale", "cpu"]) == 2
    assert "tiny.cpu.seeds: [1] would also train the PPO arms" in capsys.readouterr().err
    ghost_slot = tmp_path / "ghost_slot.json"
    arms = [{**TINY["arms"][0], "slots": ["r0c0", "r7c7"]}, *TINY["arms"][1:]]
    ghost_slot.write_text(json.dumps({**TINY, "arms": arms}))
    assert main(["experiment", "run", str(ghost_slot), "--quick", "--out", str(tmp_path / "g")]) == 2
    assert "pack tiny, arm control: slots: host has no slot(s) ['r7c7']" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TINY, "task": 3}))
    assert main(["experiment", "run", str(bad)]) == 2
    assert "ExperimentPack.task" in capsys.readouterr().err
