"""Each Phase 0 gate on small scripted event logs, with a passing and a failing case."""

from __future__ import annotations

from pathlib import Path

import pytest
from karn_synthetic import OP, scripted_run

from esper.karn import GateReport, GateThresholds, GateVerdict, RunStore, evaluate
from esper.karn.gates import longest_collapse_fraction

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


def test_conv_heavy_gate_needs_a_lower_frequency_and_no_lower_roi(tmp_path: Path) -> None:
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
    assert ok["conv_heavy_vs_control"] is GateVerdict.PASS
    # Same frequencies, but the treatment's ROI is lower: (86-85)/1 = 1 < 1.5.
    low_roi = gates(
        tmp_path / "roi",
        LADDER,
        heavy_control,
        final_accuracy=86.0,
        control_final_accuracy=88.0,
        control_added_params=2000,
    )
    assert low_roi["conv_heavy_vs_control"] is GateVerdict.FAIL
    # The treatment picks conv_heavy as often as the control: not lower.
    same = gates(tmp_path / "same", [(1, OP.GERMINATE, "conv_heavy")], heavy_control)
    assert same["conv_heavy_vs_control"] is GateVerdict.FAIL


def test_conv_heavy_gate_without_a_baseline_fails_and_without_control_skips(tmp_path: Path) -> None:
    no_baseline = gates(tmp_path / "nb", LADDER, [(1, OP.GERMINATE, "conv_heavy")], baseline_accuracy=None)
    assert no_baseline["conv_heavy_vs_control"] is GateVerdict.FAIL
    alone = evaluate(RunStore(scripted_run(tmp_path / "alone", LADDER)))
    assert verdicts(alone)["conv_heavy_vs_control"] is GateVerdict.SKIP and not alone.passed


def test_entropy_gate_fails_on_a_sustained_collapse(tmp_path: Path) -> None:
    assert longest_collapse_fraction([0.5, 0.05, 0.05, 0.5], 0.08) == 0.5
    short = gates(tmp_path / "short", LADDER, op_entropies=(0.5, 0.05, 0.5, 0.5))  # 1 of 4 = 0.25: allowed
    assert short["no_entropy_collapse"] is GateVerdict.PASS
    sustained = gates(tmp_path / "long", LADDER, op_entropies=(0.5, 0.05, 0.05, 0.5))
    assert sustained["no_entropy_collapse"] is GateVerdict.FAIL


def test_rollback_and_invalid_action_gates_compare_with_the_control(tmp_path: Path) -> None:
    same = gates(tmp_path / "same", LADDER, LADDER, rollbacks=1, control_rollbacks=1)
    assert same["no_rollback_rise"] is GateVerdict.PASS and same["invalid_action_rate"] is GateVerdict.PASS
    worse = gates(tmp_path / "worse", LADDER, LADDER, rollbacks=1, invalid_epochs=(3, 5))  # 2 of 20 = 0.1 > 0.05
    assert worse["no_rollback_rise"] is GateVerdict.FAIL and worse["invalid_action_rate"] is GateVerdict.FAIL


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
