"""Paired differences between a pack's arms: per seed, then mean ± 95 % CI; above zero only when the interval is."""

from __future__ import annotations

from pathlib import Path

from karn_synthetic import lattice_run

from esper.karn import RunStore
from esper.karn.comparison import (
    ArmMetrics,
    SurfaceUse,
    arm_metrics,
    comparisons,
    differences,
    summarise,
    surface_split,
)
from esper.karn.packs import load_packs
from esper.karn.stats import format_mean_ci, mean_ci


def metrics(arm: str, seed: int, accuracy: float, params: float, baseline: float) -> ArmMetrics:
    return ArmMetrics(arm, seed, accuracy, baseline, params, None, {}, None, None, 0.0, 0, 3, 0.5, {})


def test_differences_pair_seeds_and_say_when_the_interval_is_above_zero() -> None:
    baseline = {0: 80.0, 1: 90.0, 2: 85.0}
    rows = [metrics("a", s, baseline[s] + gain, 100.0, baseline[s]) for s, gain in ((0, 2.0), (1, 2.5), (2, 3.0))]
    rows += [metrics("b", s, baseline[s] + gain, 300.0, baseline[s]) for s, gain in ((0, -1.0), (1, 4.0), (2, 0.0))]
    by_name = {d["difference"]: d for d in differences(rows, [("a", "host_only"), ("b", "host_only"), ("a", "b")])}
    # a gains 2.0, 2.5, 3.0 over its own host: mean 2.5, interval 2.5 ± 1.24 lies above 0.
    assert by_name["a − host_only"]["final_accuracy"] == "2.50 ± 1.24" and by_name["a − host_only"]["above_zero"]
    assert not by_name["b − host_only"]["above_zero"]  # -1, 4, 0: the interval spans 0
    mean, half = mean_ci([3.0, -1.5, 3.0])
    assert by_name["a − b"]["final_accuracy"] == f"{mean:.2f} ± {half:.2f}"
    assert by_name["a − b"]["added_params"] == "-200 ± 0" and by_name["a − b"]["seeds"] == 3


def test_the_phase0_pack_compares_each_learned_arm_with_every_fixed_one() -> None:
    pack = load_packs()["phase0"]
    pairs = comparisons(pack, ["control", "treatment", "random", "ppo_control", "ppo_treatment"])
    assert ("ppo_treatment", "treatment") in pairs and ("ppo_treatment", "random") in pairs
    assert ("ppo_control", "control") in pairs and ("treatment", "control") in pairs
    assert ("control", "ppo_control") not in pairs and len(pairs) == len(set(pairs))
    assert differences([], [("a", "host_only")]) == []  # an arm without runs has no row


def test_the_surface_split_sums_seeds_and_gives_each_surface_its_share() -> None:
    # The mean final contribution per surface (its ROI) is averaged over the seeds that measured one: POST_ATTN's
    # only seed 0's 0.4, POST_MLP's (1.0 + -0.5) / 2.
    usage: list[dict[str, SurfaceUse]] = [
        {
            "POST_ATTN": {"decisions": 3, "germinations": 1, "internal_ops": 2, "mean_contribution": 0.4},
            "POST_MLP": {"decisions": 1, "germinations": 1, "internal_ops": 0, "mean_contribution": 1.0},
        },
        {
            "POST_ATTN": {"decisions": 1, "germinations": 1, "internal_ops": 0, "mean_contribution": None},
            "POST_MLP": {"decisions": 3, "germinations": 0, "internal_ops": 1, "mean_contribution": -0.5},
        },
    ]
    rows = [
        ArmMetrics("lattice", seed, 50.0, 49.0, 10.0, None, {}, None, None, 0.0, 0, 12, 1.0, used)
        for seed, used in enumerate(usage)
    ]
    assert surface_split(rows, ["lattice", "absent"]) == [
        ["lattice", "POST_ATTN", "4", "0.50", "2", "2", "0.40"],
        ["lattice", "POST_MLP", "4", "0.50", "1", "1", "0.25"],
    ]
    # A surface none of whose seeds measured a contribution shows none.
    unmeasured: dict[str, SurfaceUse] = {
        "BLOCK_END": {"decisions": 2, "germinations": 1, "internal_ops": 0, "mean_contribution": None}
    }
    alone = ArmMetrics("cnn", 0, 50.0, 49.0, 10.0, None, {}, None, None, 0.0, 0, 3, 1.0, unmeasured)
    assert surface_split([alone], ["cnn"]) == [["cnn", "BLOCK_END", "2", "1.00", "1", "0", "-"]]


def test_arm_metrics_read_each_surfaces_mean_final_contribution(tmp_path: Path) -> None:
    # karn_synthetic.lattice_run (hand-counted in test_store): POST_ATTN's seeds ended with the fossilized ladder's
    # 0.4 (the live lora has none yet); POST_MLP's one pruned seed was never measured.
    metrics = arm_metrics("lattice", 0, RunStore(lattice_run(tmp_path / "l")))
    assert metrics.surface_usage == {
        "POST_ATTN": {"decisions": 5, "germinations": 2, "internal_ops": 2, "mean_contribution": 0.4},
        "POST_MLP": {"decisions": 3, "germinations": 1, "internal_ops": 0, "mean_contribution": None},
    }
    assert surface_split([metrics], ["lattice"]) == [
        ["lattice", "POST_ATTN", "5", "0.62", "2", "2", "0.40"],
        ["lattice", "POST_MLP", "3", "0.38", "1", "0", "-"],
    ]


def test_the_host_only_row_counts_each_seed_once() -> None:
    """Three arms on the same three seeds share each seed's host-only baseline: the row's interval is over 3 values,
    not 9 (which would understate it)."""
    baseline = {0: 35.0, 1: 37.0, 2: 36.0}
    rows = [metrics(arm, s, baseline[s], 0.0, baseline[s]) for arm in ("a", "b", "c") for s in baseline]
    (host_only, *_) = summarise(rows, ["a", "b", "c"])
    assert host_only["arm"] == "host_only" and host_only["seeds"] == 3
    assert host_only["final_accuracy"] == format_mean_ci(list(baseline.values()))
