from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper.leyline import (
    InjectionSpec,
    SlotIdError,
    SurfaceType,
    check_lattice,
    format_slot_id,
    parse_slot_id,
    slot_config,
    slot_ids,
    validate_slot_ids,
)


def lattice(layers: int, surfaces: tuple[SurfaceType, ...]) -> list[InjectionSpec]:
    """A transformer-like lattice: r{rank}c{layer}, order = layer * len(surfaces) + rank."""
    size = layers * len(surfaces)
    return [
        InjectionSpec(
            slot_id=format_slot_id(rank, layer),
            channels=8,
            surface=surface,
            order=layer * len(surfaces) + rank,
            position=(layer * len(surfaces) + rank + 1) / size,
        )
        for layer in range(layers)
        for rank, surface in enumerate(surfaces)
    ]


@given(st.integers(0, 999), st.integers(0, 999))
def test_format_parse_round_trip(row: int, col: int) -> None:
    assert parse_slot_id(format_slot_id(row, col)) == (row, col)


@given(st.integers(1, 8), st.data())
def test_slot_config_orders_by_order_not_by_id(layers: int, data: st.DataObject) -> None:
    points = lattice(layers, (SurfaceType.POST_ATTN, SurfaceType.POST_MLP))
    shuffled = data.draw(st.permutations(points))
    enabled = data.draw(st.lists(st.sampled_from([p.slot_id for p in points]), min_size=1, unique=True))
    config = slot_config(shuffled, enabled)
    orders = [spec.order for spec in config.slots]
    assert orders == sorted(orders) and set(slot_ids(config)) == set(enabled)
    assert config.lattice_size == 2 * layers
    # r0c1 (layer 1, POST_ATTN) comes after r1c0 (layer 0, POST_MLP): row-major would put it first
    if layers >= 2 and {"r0c1", "r1c0"} <= set(enabled):
        ids = slot_ids(config)
        assert ids.index("r1c0") < ids.index("r0c1")


def test_lattice_gaps_duplicates_and_unknown_ids_fail_naming_the_slot() -> None:
    points = lattice(2, (SurfaceType.POST_ATTN, SurfaceType.POST_MLP))
    gap = [*points[:3], InjectionSpec(slot_id="r1c1", channels=8, surface=SurfaceType.POST_MLP, order=5, position=1)]
    with pytest.raises(SlotIdError, match=r"r1c1 \(order 5\) skips"):
        check_lattice(gap)
    dup = [*points[:3], InjectionSpec(slot_id="r1c1", channels=8, surface=SurfaceType.POST_MLP, order=2, position=1)]
    with pytest.raises(SlotIdError, match="repeats"):
        check_lattice(dup)
    with pytest.raises(SlotIdError, match="listed twice"):
        check_lattice([*points, points[0]])
    with pytest.raises(SlotIdError, match=r"no slot\(s\) \['r2c0'\]"):
        slot_config(points, ["r0c0", "r2c0"])
    with pytest.raises(SlotIdError, match="listed twice"):
        slot_config(points, ["r0c0", "r0c0"])


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
