"""Slot ids `r{row}c{col}`: the stable, row-major names of injection points (they define action indices)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

SLOT_ID_PATTERN: Final = re.compile(r"^r(\d+)c(\d+)$")


class SlotIdError(ValueError):
    """A slot id is malformed or repeated."""


def format_slot_id(row: int, col: int) -> str:
    if row < 0 or col < 0:
        raise SlotIdError(f"slot row and column must be >= 0, got row={row} col={col}")
    return f"r{row}c{col}"


def parse_slot_id(slot_id: str) -> tuple[int, int]:
    match = SLOT_ID_PATTERN.match(slot_id)
    if match is None:
        raise SlotIdError(f"slot id {slot_id!r} is not of the form r<row>c<col> (for example r0c1)")
    return int(match.group(1)), int(match.group(2))


def slot_sort_key(slot_id: str) -> tuple[int, int]:
    """Row-major order; stable forever because it defines the slot head's indices."""
    return parse_slot_id(slot_id)


def validate_slot_ids(slot_ids: Iterable[str]) -> tuple[str, ...]:
    """Validate, reject duplicates and return the ids in row-major order."""
    ids = list(slot_ids)
    if not ids:
        raise SlotIdError("at least one slot id is required")
    seen: set[str] = set()
    for slot_id in ids:
        parse_slot_id(slot_id)
        if slot_id in seen:
            raise SlotIdError(f"slot id {slot_id!r} is listed twice")
        seen.add(slot_id)
    return tuple(sorted(ids, key=slot_sort_key))
