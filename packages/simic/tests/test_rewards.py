"""Reward components: signs, PBRS telescoping, costs for every op, sparse mode, anti-thrash."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tamiyo_inputs import make_report

from esper.leyline import BlueprintAction, LifecycleOp, SeedStage, assert_covers
from esper.simic import (
    STAGE_POTENTIALS,
    InternalOpWindow,
    RewardConfig,
    RewardMode,
    StepOutcome,
    check_reward_config,
    compute_reward,
    potential,
    seed_window,
)

GAMMA = 0.995
OP = LifecycleOp


def outcome(op: LifecycleOp = OP.WAIT, before=(), after=(), **kw: object) -> StepOutcome:
    base = dict(success=True, host_params=10_000, val_accuracy=80.0, terminal=False, rolled_back=False)
    base.update(kw)
    return StepOutcome(op=op, before=tuple(before), after=tuple(after), **base)  # type: ignore[arg-type]


def test_every_op_has_a_cost_and_every_stage_a_potential() -> None:
    config = check_reward_config(RewardConfig())
    assert_covers(LifecycleOp, config.intervention_costs, consumer="simic intervention costs", key=lambda m: m.name)
    assert_covers(SeedStage, STAGE_POTENTIALS, consumer="simic STAGE_POTENTIALS")
    for op in LifecycleOp:
        reward = compute_reward(config, GAMMA, outcome(op), None)
        assert reward.intervention_cost == -config.intervention_costs[op.name]
    assert config.intervention_costs["GROW_INTERNAL"] == config.intervention_costs["SHRINK_INTERNAL"] > 0
    with pytest.raises(ValueError, match=r"missing \['GROW_INTERNAL'\]"):
        costs = {k: v for k, v in config.intervention_costs.items() if k != "GROW_INTERNAL"}
        check_reward_config(dataclasses.replace(config, intervention_costs=costs))


def test_contribution_rent_and_total() -> None:
    config = RewardConfig()
    helping = make_report(
        "r0c0", SeedStage.HOLDING, BlueprintAction.CONV_HEAVY, counterfactual_contribution=4.0, seed_param_count=5_000
    )
    reward = compute_reward(config, GAMMA, outcome(after=[helping], before=[helping]), None)
    assert reward.contribution == pytest.approx(0.4)
    assert reward.rent == pytest.approx(-config.rent_weight * 5_000 / 10_000)
    parts = [
        reward.contribution,
        reward.rent,
        reward.alpha_shock,
        reward.pbrs,
        reward.intervention_cost,
        reward.thrash_penalty,
        reward.terminal_bonus,
        reward.governor_penalty,
    ]
    assert reward.total == pytest.approx(sum(parts))


@pytest.mark.parametrize(
    ("contribution", "improvement", "paid"),
    [
        (4.0, 10.0, 4.0),  # the host gained more than the seed's share: the contribution is paid in full
        (40.0, -5.0, 0.0),  # the seed broke the host and props it up: dependence, not value, earns nothing
        (40.0, 6.0, 6.0),  # never more than the model actually gained since the seed germinated
        (-3.0, 2.0, -3.0),  # a seed that hurts is charged in full
    ],
)
def test_contribution_pays_value_not_dependence(contribution: float, improvement: float, paid: float) -> None:
    config = RewardConfig()
    seed = make_report(
        "r0c0",
        SeedStage.BLENDING,
        BlueprintAction.CONV_HEAVY,
        counterfactual_contribution=contribution,
        total_improvement=improvement,
    )
    reward = compute_reward(config, GAMMA, outcome(after=[seed], before=[seed]), None)
    assert reward.contribution == pytest.approx(config.contribution_weight * paid / config.contribution_scale)


def test_alpha_shock_penalises_jumps() -> None:
    before = make_report("r0c0", SeedStage.BLENDING, seed_param_count=5_000)
    after = dataclasses.replace(before, alpha=1.0)
    assert compute_reward(RewardConfig(), GAMMA, outcome(before=[before], after=[after]), None).alpha_shock < 0


@settings(max_examples=50)
@given(st.lists(st.sampled_from(sorted(STAGE_POTENTIALS)), min_size=2, max_size=12))
def test_pbrs_telescopes(stages: list[SeedStage]) -> None:
    config = RewardConfig()
    reports = [[] if s in (SeedStage.UNKNOWN, SeedStage.DORMANT) else [make_report("r0c0", s)] for s in stages]
    total = sum(
        GAMMA**t * compute_reward(config, GAMMA, outcome(before=reports[t], after=reports[t + 1]), None).pbrs
        for t in range(len(reports) - 1)
    )
    expected = config.pbrs_weight * (GAMMA ** (len(reports) - 1) * potential(reports[-1]) - potential(reports[0]))
    assert total == pytest.approx(expected)


def test_terminal_governor_and_sparse_mode() -> None:
    config = RewardConfig()
    end = compute_reward(config, GAMMA, outcome(terminal=True, val_accuracy=70.0), None)
    assert end.terminal_bonus == pytest.approx(1.4)
    crash = compute_reward(config, GAMMA, outcome(rolled_back=True), None)
    assert crash.governor_penalty == -config.governor_penalty
    sparse = dataclasses.replace(config, mode=RewardMode.SPARSE)
    busy = compute_reward(sparse, GAMMA, outcome(OP.GERMINATE, terminal=True, val_accuracy=50.0), None)
    assert busy.total == pytest.approx(1.0) and busy.intervention_cost == 0.0


def test_anti_thrash_window_and_penalty() -> None:
    window = InternalOpWindow(10)
    for op in [OP.GROW_INTERNAL, OP.SHRINK_INTERNAL] * 3:
        window.record(op, True)
    assert window.op_count == 6 and window.net_level_change == 0 and window.reversal_rate == 1.0
    assert window.density == pytest.approx(0.6)
    off = compute_reward(RewardConfig(), GAMMA, outcome(OP.GROW_INTERNAL), window)
    assert off.thrash_penalty == 0.0  # off by default
    on = compute_reward(
        dataclasses.replace(RewardConfig(), thrash_penalty_enabled=True), GAMMA, outcome(OP.GROW_INTERNAL), window
    )
    assert on.thrash_penalty == pytest.approx(-0.005)


def test_the_anti_thrash_window_starts_afresh_with_each_seed() -> None:
    windows = {"r0c0": InternalOpWindow(10)}
    first = dataclasses.replace(make_report("r0c0", SeedStage.BLENDING), seed_id="seed-a")
    window = seed_window(windows, "r0c0", [first])
    for op in (OP.GROW_INTERNAL, OP.SHRINK_INTERNAL, OP.GROW_INTERNAL):
        window.record(op, success=True)
    assert seed_window(windows, "r0c0", [first]) is window and window.reversal_rate == 1.0
    second = dataclasses.replace(first, seed_id="seed-b")  # pruned and replaced: the next seed owes nothing
    fresh = seed_window(windows, "r0c0", [second])
    assert fresh is not window and fresh.op_count == 0 and fresh.window == 10 and windows["r0c0"] is fresh
    assert seed_window(windows, "r0c0", []).seed_id is None  # the slot emptied
