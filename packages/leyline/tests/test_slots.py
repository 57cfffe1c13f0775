from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper.leyline import SlotIdError, format_slot_id, parse_slot_id, slot_sort_key, validate_slot_ids


@given(st.integers(0, 999), st.integers(0, 999))
def test_format_parse_round_trip(row: int, col: int) -> None:
    assert parse_slot_id(format_slot_id(row, col)) == (row, col)


@given(st.sets(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12))
def test_validated_ids_are_row_major(cells: set[tuple[int, int]]) -> None:
    ids = [format_slot_id(r, c) for r, c in cells]
    ordered = validate_slot_ids(reversed(ids))
    assert [parse_slot_id(s) for s in ordered] == sorted(cells)
    assert [slot_sort_key(s) for s in ordered] == sorted(slot_sort_key(s) for s in ids)


@pytest.mark.parametrize("bad", ["early", "mid", "r0", "c1", "r-1c0", "R0C1", "r0c1 ", ""])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(SlotIdError, match="not of the form"):
        parse_slot_id(bad)


def test_duplicates_and_empty_lists_are_rejected() -> None:
    with pytest.raises(SlotIdError, match="listed twice"):
        validate_slot_ids(["r0c0", "r0c1", "r0c0"])
    with pytest.raises(SlotIdError, match="at least one"):
        validate_slot_ids([])
    with pytest.raises(SlotIdError):
        format_slot_id(-1, 0)
