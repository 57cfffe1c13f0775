"""Each exit gate on small scripted event logs, with a passing and a failing case."""

from __future__ import annotations

from pathlib import Path

import pytest
from karn_synthetic import LATTICE, OP, SyntheticRun, overshoot_run, scripted_run

from esper.karn import GateReport, GateThresholds, GateVerdict, RunStore, evaluate
from esper.karn.gates import HEAVY_BLUEPRINT, longest_collapse_fraction
from esper.karn.stats import wilson_interval
from esper.leyline import Topology

LADDER = [(1, OP.GERMINATE), (3, OP.GROW_INTERNAL), (5, OP.GROW_INTERNAL)]


def verdicts(report: GateReport) -> dict[str, GateVerdict]:
    return {r.gate: r.verdict for r in report.results}


def gates(tmp_path: Path, ops: list, control_ops: list | None = None, **kwargs: object) -> dict[str, GateVerdict]:
    control_kwargs = {k.removeprefix("control_"): v for k, v in kwargs.items() if k.startswith("control_")}
    run_kwargs = {k: v for k, v in kwargs.items() if not k.startswith("control_")}
    run = RunStore(scripted_run(tmp_path / "treatment", ops, **run_kwargs))  # type: ignore[arg-type]
    control = None
    if control_ops is not None:
        control = RunStore(scripted_run(tmp_path / "control", control_ops, **control_kwargs))  # type: ignore[arg-type]
    return verdicts(evaluate(run, control))


def test_internal_op_share_passes_at_the_threshold_and_fails_below(tmp_path: Path) -> None:
    # Ladder at epoch 1, then 10 non-WAIT decisions of which 1 is internal: share 0.1 (the threshold) passes.
    base = [(1, OP.GERMINATE), (2, OP.GROW_INTERNAL)] + [(e, OP.ADVANCE) for e in range(3, 12)]
    assert gates(tmp_path / "a", base, invalid_epochs=tuple(range(3, 12)))["internal_op_share"] is GateVerdict.PASS
    below = base + [(12, OP.ADVANCE)]  # 1 of 11
    assert gates(tmp_path / "b", below, invalid_epochs=tuple(range(3, 13)))["internal_op_share"] is GateVerdict.FAIL


def test_internal_op_share_fails_when_no_ladder_was_ever_live(tmp_path: Path) -> None:
    report = evaluate(RunStore(scripted_run(tmp_path / "r", [(1, OP.GERMINATE, "conv_heavy")])))
    share = report.results[0]
    assert share.verdict is GateVerdict.FAIL and "no non-WAIT decision" in share.note


def test_heavy_blueprint_gate_needs_a_lower_frequency_and_no_lower_roi(tmp_path: Path) -> None:
    heavy_control = [(1, OP.GERMINATE, "conv_heavy")]
    # Treatment: ladder only (frequency 0 < 1), ROI (90-85)/1 = 5 vs control (88-85)/2 = 1.5.
    ok = gates(
        tmp_path / "ok",
        LADDER,
        heavy_control,
        added_params=1000,
        control_final_accuracy=88.0,
        control_added_params=2000,
    )
    assert ok["heavy_blueprint"] is GateVerdict.PASS
    # Same frequencies, but the treatment's ROI is lower: (86-85)/1 = 1 < 1.5.
    low_roi = gates(
        tmp_path / "roi",
        LADDER,
        heavy_control,
        final_accuracy=86.0,
        control_final_accuracy=88.0,
        control_added_params=2000,
    )
    assert low_roi["heavy_blueprint"] is GateVerdict.FAIL
    # The treatment picks conv_heavy as often as the control: not lower.
    same = gates(tmp_path / "same", [(1, OP.GERMINATE, "conv_heavy")], heavy_control)
    assert same["heavy_blueprint"] is GateVerdict.FAIL


def test_heavy_blueprint_gate_without_a_baseline_fails_and_without_control_skips(tmp_path: Path) -> None:
    no_baseline = gates(tmp_path / "nb", LADDER, [(1, OP.GERMINATE, "conv_heavy")], baseline_accuracy=None)
    assert no_baseline["heavy_blueprint"] is GateVerdict.FAIL
    alone = evaluate(RunStore(scripted_run(tmp_path / "alone", LADDER)))
    assert verdicts(alone)["heavy_blueprint"] is GateVerdict.SKIP and not alone.passed
    (skipped,) = [r for r in alone.results if r.gate == "heavy_blueprint"]
    assert skipped.note == "no control run given" and skipped.measured == "conv_heavy freq 0.000"


def heavy_gate(tmp_path: Path, ops: list, control_ops: list, topology: Topology) -> tuple[GateVerdict, str]:
    """The heavy_blueprint verdict and measured text of a run against its control, both of `topology`."""
    run = RunStore(scripted_run(tmp_path / "t", ops, topology=topology))
    control = RunStore(scripted_run(tmp_path / "c", control_ops, topology=topology, final_accuracy=88.0))
    (result,) = [r for r in evaluate(run, control).results if r.gate == "heavy_blueprint"]
    return result.verdict, result.measured


def test_the_heavy_blueprint_is_the_topologys(tmp_path: Path) -> None:
    assert {t: bp.name.lower() for t, bp in HEAVY_BLUEPRINT.items()} == {
        Topology.CNN: "conv_heavy",
        Topology.TRANSFORMER: "lora_large",
    }
    # Transformer: lora_large is the heavy one. The ladder instead of it passes; lora_large as often fails.
    ladder = [(1, OP.GERMINATE, "lora_ladder")]
    large = [(1, OP.GERMINATE, "lora_large")]
    verdict, measured = heavy_gate(tmp_path / "tr-ok", ladder, large, Topology.TRANSFORMER)
    assert verdict is GateVerdict.PASS and measured.startswith("lora_large freq 0.000 vs 1.000")
    verdict, measured = heavy_gate(tmp_path / "tr-same", large, large, Topology.TRANSFORMER)
    assert verdict is GateVerdict.FAIL and measured.startswith("lora_large freq 1.000 vs 1.000")
    # CNN: conv_heavy is; a transformer's lora_large would not count on a CNN run.
    verdict, measured = heavy_gate(tmp_path / "cnn", LADDER, [(1, OP.GERMINATE, "conv_heavy")], Topology.CNN)
    assert verdict is GateVerdict.PASS and measured.startswith("conv_heavy freq 0.000 vs 1.000")
    # Runs of different topologies have different heavy blueprints: no comparison.
    cnn = RunStore(scripted_run(tmp_path / "mixed-cnn", LADDER))
    transformer = RunStore(scripted_run(tmp_path / "mixed-tr", large, topology=Topology.TRANSFORMER))
    (mixed,) = [r for r in evaluate(cnn, transformer).results if r.gate == "heavy_blueprint"]
    assert mixed.verdict is GateVerdict.FAIL and "one topology" in mixed.note


def surface_run(run_dir: Path, attn: int, mlp: int) -> RunStore:
    """A lattice run whose non-WAIT decisions are `attn` on POST_ATTN slots then `mlp` on POST_MLP slots (invalid
    ADVANCEs: a decision counts whether or not it was applied), alternating the layers, plus WAITs."""
    chosen = [("r0c0", "r0c1")[i % 2] for i in range(attn)] + [("r1c0", "r1c1")[i % 2] for i in range(mlp)]
    run = SyntheticRun(run_dir, episode_length=len(chosen) + 2, slots=LATTICE, topology=Topology.TRANSFORMER)
    run.start_episode(0, 0)
    for epoch, slot in enumerate(chosen, start=1):
        run.decide(0, epoch, OP.ADVANCE, slot=slot, success=False)
    run.decide(0, len(chosen) + 1, OP.WAIT)
    run.decide(0, len(chosen) + 2, OP.WAIT)
    run.outcome(0, 90.0, 100)
    run.finish()
    return RunStore(run_dir)


def surface_gate(store: RunStore, thresholds: GateThresholds | None = None) -> tuple[GateVerdict, str, str]:
    (result,) = [r for r in evaluate(store, thresholds=thresholds).results if r.gate == "surface_preference"]
    return result.verdict, result.measured, result.note


def test_surface_preference_passes_on_a_lopsided_split_and_fails_on_an_even_one(tmp_path: Path) -> None:
    # 12 of 13 decisions on POST_ATTN: Wilson 95 % interval about 0.667-0.986, above 0.5.
    low, high = wilson_interval(12, 13)
    assert low == pytest.approx(0.6669, abs=1e-3) and high == pytest.approx(0.9863, abs=1e-3)
    lopsided = surface_run(tmp_path / "lop", attn=12, mlp=1)
    verdict, measured, _ = surface_gate(lopsided)
    assert verdict is GateVerdict.PASS
    assert measured == f"POST_ATTN share {12 / 13:.3f} (95 % CI {low:.3f}-{high:.3f}, n 13)"
    # The mirror image (1 of 13 on POST_ATTN) is a preference too: for POST_MLP.
    assert surface_gate(surface_run(tmp_path / "mirror", attn=1, mlp=12))[0] is GateVerdict.PASS
    # A margin the interval does not clear: 0.667 is not beyond 0.5 + 0.2.
    assert surface_gate(lopsided, GateThresholds(min_surface_preference=0.2))[0] is GateVerdict.FAIL
    verdict, measured, note = surface_gate(surface_run(tmp_path / "even", attn=6, mlp=6))
    assert verdict is GateVerdict.FAIL and measured.startswith("POST_ATTN share 0.500") and "n 12" in measured
    assert "even split" in note
    # A lattice run with no decision on either surface cannot show a preference.
    verdict, _, note = surface_gate(surface_run(tmp_path / "none", attn=0, mlp=0))
    assert verdict is GateVerdict.FAIL and "no non-WAIT decision" in note


def test_surface_preference_skips_a_block_end_run_saying_why(tmp_path: Path) -> None:
    verdict, measured, note = surface_gate(RunStore(scripted_run(tmp_path / "cnn", LADDER)))
    assert verdict is GateVerdict.SKIP and measured == "surfaces BLOCK_END"
    assert note == "not a lattice run: its enabled slots do not offer both POST_ATTN and POST_MLP (surfaces: BLOCK_END)"
    # It does not apply, so it does not hold the report back; a gate skipped for want of a control does.
    alone = evaluate(RunStore(scripted_run(tmp_path / "alone", LADDER)))
    skipped = {r.gate: r.applicable for r in alone.results if r.verdict is GateVerdict.SKIP}
    assert skipped == {
        "heavy_blueprint": True,
        "surface_preference": False,
        "no_rollback_rise": True,
        "invalid_action_rate": True,
        "overshoot_prunes": True,
    }
    assert not alone.passed


def test_entropy_gate_fails_on_a_sustained_collapse(tmp_path: Path) -> None:
    assert longest_collapse_fraction([0.5, 0.05, 0.05, 0.5], 0.08) == 0.5
    short = gates(tmp_path / "short", LADDER, op_entropies=(0.5, 0.05, 0.5, 0.5))  # 1 of 4 = 0.25: allowed
    assert short["no_entropy_collapse"] is GateVerdict.PASS
    sustained = gates(tmp_path / "long", LADDER, op_entropies=(0.5, 0.05, 0.05, 0.5))
    assert sustained["no_entropy_collapse"] is GateVerdict.FAIL


def test_an_evaluation_runs_entropy_gate_reads_the_training_run(tmp_path: Path) -> None:
    """An evaluation makes no PPO update; the entropy of the policy it acts with is its training run's."""
    evaluation = RunStore(scripted_run(tmp_path / "eval", LADDER))
    collapsed = RunStore(scripted_run(tmp_path / "train", LADDER, op_entropies=(0.5, 0.05, 0.05, 0.05)))
    alone = {r.gate: r for r in evaluate(evaluation).results}["no_entropy_collapse"]
    assert alone.verdict is GateVerdict.PASS and alone.measured == "no PPO updates"
    judged = {r.gate: r for r in evaluate(evaluation, training=collapsed).results}["no_entropy_collapse"]
    assert judged.verdict is GateVerdict.FAIL and judged.measured.startswith("0.75 of 4 updates")
    assert str(collapsed.run_dir) in judged.note


def test_rollback_and_invalid_action_gates_compare_with_the_control(tmp_path: Path) -> None:
    same = gates(tmp_path / "same", LADDER, LADDER, rollbacks=1, control_rollbacks=1)
    assert same["no_rollback_rise"] is GateVerdict.PASS and same["invalid_action_rate"] is GateVerdict.PASS
    worse = gates(tmp_path / "worse", LADDER, LADDER, rollbacks=1, invalid_epochs=(3, 5))  # 2 of 20 = 0.1 > 0.05
    assert worse["no_rollback_rise"] is GateVerdict.FAIL and worse["invalid_action_rate"] is GateVerdict.FAIL


def overshoot_gate(
    run: RunStore, control: RunStore | None, thresholds: GateThresholds | None = None
) -> tuple[GateVerdict, str, str, str]:
    """The overshoot_prunes gate's verdict, measured text, threshold and note."""
    (result,) = [r for r in evaluate(run, control, thresholds).results if r.gate == "overshoot_prunes"]
    return result.verdict, result.measured, result.threshold, result.note


def test_overshoot_prune_gate_compares_prunes_per_episode_with_the_control(tmp_path: Path) -> None:
    # karn_synthetic.overshoot_run: 2 overshoot prunes in 1 episode; a ladder that grows twice and lives has none.
    overshooting = RunStore(overshoot_run(tmp_path / "o"))
    steady = RunStore(scripted_run(tmp_path / "s", LADDER))
    verdict, measured, bound, note = overshoot_gate(overshooting, steady)
    assert verdict is GateVerdict.FAIL and measured == "2.000 per episode (2 overshoot prunes)"
    assert bound == "<= 0.000 + 0" and note == "more seeds pruned within 5 epochs of reaching their top level"
    # A tie passes (the expected outcome when neither arm reaches a top level), as does fewer than the control.
    assert overshoot_gate(steady, steady)[0] is GateVerdict.PASS
    assert overshoot_gate(overshooting, overshooting)[0] is GateVerdict.PASS
    assert overshoot_gate(steady, overshooting)[:3] == (
        GateVerdict.PASS,
        "0.000 per episode (0 overshoot prunes)",
        "<= 2.000 + 0",
    )
    # max_overshoot_prune_increase allows a rise: 2 <= 0 + 2 passes, 2 > 0 + 1.5 fails.
    assert overshoot_gate(overshooting, steady, GateThresholds(max_overshoot_prune_increase=2.0))[0] is GateVerdict.PASS
    loose = GateThresholds(max_overshoot_prune_increase=1.5)
    assert overshoot_gate(overshooting, steady, loose)[0] is GateVerdict.FAIL
    # Without a control it cannot be judged: SKIP, and the report does not pass.
    verdict, measured, bound, note = overshoot_gate(overshooting, None)
    assert (verdict, measured, bound, note) == (
        GateVerdict.SKIP,
        "2.000 per episode (2 overshoot prunes)",
        "needs --control",
        "no control run given",
    )
    assert not evaluate(steady).passed
    # A run without a finished episode has no rate: it fails against a control.
    unfinished = SyntheticRun(tmp_path / "u", episode_length=2)
    unfinished.start_episode(0, 0)
    unfinished.decide(0, 1, OP.WAIT)
    unfinished.finish()
    verdict, measured, _, note = overshoot_gate(RunStore(tmp_path / "u"), steady)
    assert verdict is GateVerdict.FAIL and measured == "n/a per episode (0 overshoot prunes)"
    assert note == "a run has no finished episode"


def test_thrash_gate_bounds_density_reversals_and_late_activity(tmp_path: Path) -> None:
    settled = gates(tmp_path / "settled", LADDER)
    assert settled["bounded_thrash"] is GateVerdict.PASS
    flip_flop = [(1, OP.GERMINATE), (2, OP.GROW_INTERNAL), (3, OP.SHRINK_INTERNAL), (4, OP.GROW_INTERNAL)]
    assert gates(tmp_path / "flip", flip_flop)["bounded_thrash"] is GateVerdict.FAIL  # reversal 1.0
    dense = [(1, OP.GERMINATE)] + [(e, OP.GROW_INTERNAL) for e in range(2, 16)]  # 14 of 19 live decisions
    assert gates(tmp_path / "dense", dense)["bounded_thrash"] is GateVerdict.FAIL
    # Up twice and back down twice: few reversals (1 of 3) but the level ends where it began.
    back = [
        (1, OP.GERMINATE),
        (2, OP.GROW_INTERNAL),
        (3, OP.GROW_INTERNAL),
        (10, OP.SHRINK_INTERNAL),
        (11, OP.SHRINK_INTERNAL),
    ]
    assert gates(tmp_path / "back", back)["bounded_thrash"] is GateVerdict.FAIL
    # Monotone growth late in the episode converges.
    late = [(1, OP.GERMINATE), (12, OP.GROW_INTERNAL), (15, OP.GROW_INTERNAL)]
    assert gates(tmp_path / "late", late)["bounded_thrash"] is GateVerdict.PASS


def test_all_gates_pass_for_a_good_treatment_and_thresholds_are_the_contract(tmp_path: Path) -> None:
    run = RunStore(scripted_run(tmp_path / "t", LADDER, added_params=1000, op_entropies=(0.6, 0.5)))
    control = RunStore(
        scripted_run(tmp_path / "c", [(1, OP.GERMINATE, "conv_heavy")], final_accuracy=88.0, added_params=2000)
    )
    report = evaluate(run, control)
    # Every gate passes but the surface preference, which does not apply to a block-end run: skipped, not blocking.
    assert {r.gate for r in report.results if r.verdict is not GateVerdict.PASS} == {"surface_preference"}
    assert verdicts(report)["surface_preference"] is GateVerdict.SKIP
    assert report.passed, report.results
    strict = GateThresholds(min_internal_op_share=1.0)  # 2 internal of 2 non-WAIT with the ladder live: still 1.0
    assert evaluate(run, control, strict).passed
    stricter = GateThresholds(max_internal_op_density=0.05)  # 2 ops / 19 decisions while live
    assert verdicts(evaluate(run, control, stricter))["bounded_thrash"] is GateVerdict.FAIL


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_thresholds_out_of_range_are_rejected_by_the_contract(value: float) -> None:
    from esper.leyline import WireError, from_wire

    with pytest.raises(WireError, match="GateThresholds.min_internal_op_share"):
        from_wire(GateThresholds, {"min_internal_op_share": value})
