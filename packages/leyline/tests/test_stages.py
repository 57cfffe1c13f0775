"""Lifecycle transition table: property tests over random walks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import (
    FAILURE_STAGES,
    LIVE_STAGES,
    STAGE_INDEX,
    TERMINAL_STAGES,
    VALID_TRANSITIONS,
    SeedStage,
    advance_target,
    is_valid_transition,
    stage_from_value,
)

S = SeedStage


@settings(max_examples=300)
@given(st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=40))
def test_random_walks_follow_the_table(choices: list[int]) -> None:
    stage = S.DORMANT
    visited = [stage]
    for choice in choices:
        targets = VALID_TRANSITIONS[stage]
        if not targets:
            break
        stage = targets[choice % len(targets)]
        visited.append(stage)
    for before, after in zip(visited, visited[1:], strict=False):
        assert is_valid_transition(before, after)
    # Nothing follows a fossilized seed; it is reached only from HOLDING.
    if S.FOSSILIZED in visited:
        i = visited.index(S.FOSSILIZED)
        assert i == len(visited) - 1 and visited[i - 1] is S.HOLDING


def test_failure_cycle_returns_to_dormant() -> None:
    assert VALID_TRANSITIONS[S.PRUNED] == (S.EMBARGOED,)
    assert VALID_TRANSITIONS[S.EMBARGOED] == (S.RESETTING,)
    assert VALID_TRANSITIONS[S.RESETTING] == (S.DORMANT,)
    assert {S.PRUNED, S.EMBARGOED, S.RESETTING} == FAILURE_STAGES


@pytest.mark.parametrize("stage", list(SeedStage))
def test_every_live_stage_can_be_pruned_and_only_those(stage: SeedStage) -> None:
    assert is_valid_transition(stage, S.PRUNED) == (stage in LIVE_STAGES)


def test_fossilized_is_the_only_terminal_stage() -> None:
    assert {s for s, targets in VALID_TRANSITIONS.items() if not targets} == TERMINAL_STAGES == {S.FOSSILIZED}


def test_advance_targets() -> None:
    assert advance_target(S.GERMINATED) is S.TRAINING
    assert advance_target(S.TRAINING) is S.BLENDING
    assert advance_target(S.BLENDING) is S.HOLDING
    with pytest.raises(ValueError, match="ADVANCE does not apply to stage HOLDING"):
        advance_target(S.HOLDING)


@given(st.integers(min_value=-5, max_value=20))
def test_stage_values_decode_or_fail_clearly(value: int) -> None:
    if value == 5:
        with pytest.raises(ValueError, match="reserved"):
            stage_from_value(value)
    elif value in {s.value for s in SeedStage}:
        assert stage_from_value(value).value == value
    else:
        with pytest.raises(ValueError, match="unknown stage value"):
            stage_from_value(value)


def test_stage_one_hot_is_dense() -> None:
    assert sorted(STAGE_INDEX.values()) == list(range(len(SeedStage)))
