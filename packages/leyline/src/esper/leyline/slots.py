"""Slot ids `r{row}c{col}` and the slot configuration of a run.

A host names its injection points `r{surface rank}c{unit}` (row = which surface of the unit, column = block or layer)
and numbers them with `InjectionSpec.order`, which strictly follows the forward pass. The **action order** (the slot
head's indices, the observation's slot blocks) is `order`, never the ids' row-major rank: `slot_config` is the one
place that turns a host's lattice and the enabled ids into that order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from esper.leyline.contracts.injection_spec import InjectionSpec
from esper.leyline.contracts.slot_config import SlotConfig
from esper.leyline.contracts.surface_type import SurfaceType

SLOT_ID_PATTERN: Final = re.compile(r"^r(\d+)c(\d+)$")
MAX_SURFACE_VALUE: Final = max(s.value for s in SurfaceType)


class SlotIdError(ValueError):
    """A slot id is malformed or repeated, or a slot configuration is inconsistent."""


def format_slot_id(row: int, col: int) -> str:
    if row < 0 or col < 0:
        raise SlotIdError(f"slot row and column must be >= 0, got row={row} col={col}")
    return f"r{row}c{col}"


def parse_slot_id(slot_id: str) -> tuple[int, int]:
    match = SLOT_ID_PATTERN.match(slot_id)
    if match is None:
        raise SlotIdError(f"slot id {slot_id!r} is not of the form r<row>c<col> (for example r0c1)")
    return int(match.group(1)), int(match.group(2))


def validate_slot_ids(slot_ids: Iterable[str]) -> tuple[str, ...]:
    """Validate the ids (well formed, at least one, none repeated) and return them in the given order."""
    ids = tuple(slot_ids)
    if not ids:
        raise SlotIdError("at least one slot id is required")
    seen: set[str] = set()
    for slot_id in ids:
        parse_slot_id(slot_id)
        if slot_id in seen:
            raise SlotIdError(f"slot id {slot_id!r} is listed twice")
        seen.add(slot_id)
    return ids


def check_lattice(lattice: Sequence[InjectionSpec]) -> tuple[InjectionSpec, ...]:
    """A host's injection points sorted by order; fails on repeated ids, repeated orders or gaps."""
    validate_slot_ids(spec.slot_id for spec in lattice)
    by_order = sorted(lattice, key=lambda spec: spec.order)
    for expected, spec in enumerate(by_order):
        if spec.order != expected:
            orders = [s.order for s in by_order]
            kind = "repeats" if orders.count(spec.order) > 1 else "skips"
            raise SlotIdError(
                f"injection orders must run 0..{len(lattice) - 1} exactly once; {spec.slot_id} (order {spec.order}) "
                f"{kind} one (orders: {orders})"
            )
    return tuple(by_order)


def slot_config(lattice: Sequence[InjectionSpec], enabled: Iterable[str]) -> SlotConfig:
    """The enabled points of a host's lattice in action order (by `order`)."""
    points = check_lattice(lattice)
    wanted = validate_slot_ids(enabled)
    known = {spec.slot_id for spec in points}
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise SlotIdError(f"host has no slot(s) {unknown}; available: {', '.join(s.slot_id for s in points)}")
    return SlotConfig(slots=tuple(spec for spec in points if spec.slot_id in wanted), lattice_size=len(points))


def slot_ids(config: SlotConfig) -> tuple[str, ...]:
    """Slot ids in action order."""
    return tuple(spec.slot_id for spec in config.slots)
