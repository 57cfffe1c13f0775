"""Invariants of report records that JSON Schema cannot express (cross-field comparisons)."""

from __future__ import annotations

from esper.leyline.actions import BLUEPRINT_IDS, BLUEPRINT_INTERNAL_KIND
from esper.leyline.contracts.seed_internal_kind import SeedInternalKind
from esper.leyline.contracts.seed_state_report import SeedStateReport
from esper.leyline.errors import ContractError
from esper.leyline.slots import SlotIdError, parse_slot_id


def check_seed_state_report(report: SeedStateReport) -> SeedStateReport:
    """Raise ContractError naming the field if `report` breaks an invariant; return it unchanged otherwise."""
    name = "SeedStateReport"
    if not isinstance(report.internal_kind, SeedInternalKind):
        raise ContractError(name, "internal_kind", f"must be a SeedInternalKind, got {report.internal_kind!r}")
    if report.internal_max_level < 1:
        raise ContractError(name, "internal_max_level", f"must be >= 1, got {report.internal_max_level}")
    if not 0 <= report.internal_level <= report.internal_max_level:
        raise ContractError(
            name,
            "internal_level",
            f"{report.internal_level} is outside 0..internal_max_level ({report.internal_max_level})",
        )
    if report.internal_kind is SeedInternalKind.NONE and (
        report.internal_level,
        report.internal_max_level,
    ) != (0, 1):
        raise ContractError(
            name,
            "internal_level",
            "internal_kind NONE requires internal_level 0 and internal_max_level 1, "
            f"got {report.internal_level} and {report.internal_max_level}",
        )
    expected_kind = BLUEPRINT_INTERNAL_KIND[report.blueprint]
    if report.internal_kind is not expected_kind:
        raise ContractError(
            name,
            "internal_kind",
            f"blueprint {report.blueprint.name} has {expected_kind.name}, got {report.internal_kind.name}",
        )
    grouped = report.internal_kind is SeedInternalKind.CHANNEL_LADDER
    if grouped != (report.internal_group_size > 0):
        raise ContractError(
            name,
            "internal_group_size",
            f"must be > 0 exactly for a CHANNEL_LADDER seed; {report.internal_kind.name} has "
            f"{report.internal_group_size}",
        )
    if report.blueprint_id != BLUEPRINT_IDS[report.blueprint]:
        raise ContractError(
            name, "blueprint_id", f"{report.blueprint_id!r} does not match blueprint {report.blueprint.name}"
        )
    try:
        parse_slot_id(report.slot_id)
    except SlotIdError as exc:
        raise ContractError(name, "slot_id", str(exc)) from exc
    return report
