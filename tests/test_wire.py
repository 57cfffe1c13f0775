"""Records <-> JSON: every valid document round-trips; invalid ones are rejected naming the field."""

from __future__ import annotations

import copy
import importlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esper.leyline import (
    BLUEPRINT_IDS,
    BLUEPRINT_INTERNAL_KIND,
    BlueprintAction,
    ContractError,
    SeedInternalKind,
    SeedStage,
    SeedStateReport,
    TelemetryEvent,
    WireError,
    dumps,
    from_wire,
    loads,
    to_wire,
)
from tests.strategies import ALL, SCHEMAS, event_documents, valid_documents

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
RECORDS = sorted(
    path.relative_to(SCHEMAS).as_posix()
    for path, doc in ALL.items()
    if doc["type"] == "object" and doc["title"] not in ("TelemetryEvent", "SeedStateReport")
)


def contract_class(rel: str) -> type:
    owner, name = rel.removesuffix(".json").split("/")
    module = importlib.import_module(f"esper.{owner}.contracts.{name}")
    cls = vars(module)[ALL[SCHEMAS / rel]["title"]]
    assert isinstance(cls, type)
    return cls


def assert_contains(document: Any, wired: Any, path: str = "") -> None:
    """Every value of the original document is in the re-serialised one (defaults may add keys)."""
    if isinstance(document, dict):
        assert isinstance(wired, dict), path
        for key, value in document.items():
            assert key in wired, f"{path}.{key} lost"
            assert_contains(value, wired[key], f"{path}.{key}")
    elif isinstance(document, list):
        assert isinstance(wired, list) and len(wired) == len(document), path
        for i, (a, b) in enumerate(zip(document, wired, strict=True)):
            assert_contains(a, b, f"{path}[{i}]")
    else:
        assert document == wired, f"{path}: {document!r} != {wired!r}"


@pytest.mark.parametrize("rel", RECORDS)
def test_every_valid_document_round_trips(rel: str) -> None:
    cls = contract_class(rel)

    @SETTINGS
    @given(valid_documents(rel))
    def check(document: dict[str, Any]) -> None:
        record = from_wire(cls, document)
        wired = to_wire(record)
        assert_contains(document, wired)
        assert from_wire(cls, wired) == record
        assert loads(cls, dumps(record)) == record

    check()


@SETTINGS
@given(event_documents())
def test_every_event_type_round_trips(document: dict[str, Any]) -> None:
    event = from_wire(TelemetryEvent, document)
    assert event.event_type.name == document["event_type"]
    assert type(event.payload).__name__.removesuffix("Payload").upper().replace("_", "") == document[
        "event_type"
    ].replace("_", "")
    assert loads(TelemetryEvent, dumps(event)) == event
    assert_contains(document, to_wire(event))


def report_document(**overrides: Any) -> dict[str, Any]:
    blueprint = overrides.pop("blueprint", BlueprintAction.CONV_LADDER)
    kind = BLUEPRINT_INTERNAL_KIND[blueprint]
    doc: dict[str, Any] = {
        "seed_id": "env0-seed1",
        "slot_id": "r0c1",
        "blueprint": int(blueprint),
        "blueprint_id": BLUEPRINT_IDS[blueprint],
        "stage": int(SeedStage.TRAINING),
        "previous_stage": int(SeedStage.GERMINATED),
        "previous_epochs_in_stage": 1,
        "alpha": 0.0,
        "alpha_target": 1.0,
        "alpha_mode": 0,
        "alpha_curve": 1,
        "alpha_algorithm": 1,
        "alpha_steps_total": 0,
        "alpha_steps_done": 0,
        "blend_tempo_epochs": 5,
        "metrics": {
            "epochs_total": 3,
            "epochs_in_current_stage": 2,
            "initial_val_accuracy": 50.0,
            "current_val_accuracy": 61.5,
            "best_val_accuracy": 62.0,
            "accuracy_at_stage_start": 55.0,
            "total_improvement": 11.5,
            "improvement_since_stage_start": 6.5,
            "counterfactual_contribution": None,
            "contribution_velocity": 0.0,
            "epochs_since_counterfactual": None,
            "seed_gradient_norm_ratio": 0.2,
            "gradient_norm": 0.5,
            "gradient_health": 0.9,
            "has_vanishing": False,
            "has_exploding": None,
            "seed_param_count": 1200,
            "host_param_count": 90000,
            "delta_ratio": 0.12,
        },
        "is_healthy": True,
        "internal_kind": int(kind),
        "internal_level": 1 if kind is SeedInternalKind.CONV_LADDER else 0,
        "internal_max_level": 4 if kind is SeedInternalKind.CONV_LADDER else 1,
        "internal_active_params": 1200,
        "internal_group_size": 2 if kind is SeedInternalKind.CHANNEL_LADDER else 0,
    }
    doc.update(overrides)
    return doc


def test_report_round_trip_keeps_types() -> None:
    report = from_wire(SeedStateReport, report_document())
    assert report.stage is SeedStage.TRAINING
    assert report.internal_kind is SeedInternalKind.CONV_LADDER
    assert isinstance(report.metrics.current_val_accuracy, float)
    assert report.metrics.counterfactual_contribution is None
    assert loads(SeedStateReport, dumps(report)) == report


@settings(max_examples=200, deadline=None)
@given(
    blueprint=st.sampled_from(list(BlueprintAction)),
    level=st.integers(-2, 6),
    max_level=st.integers(-1, 6),
)
def test_internal_level_invariants_hold_at_the_wire(blueprint: BlueprintAction, level: int, max_level: int) -> None:
    doc = report_document(blueprint=blueprint, internal_level=level, internal_max_level=max_level)
    none_kind = BLUEPRINT_INTERNAL_KIND[blueprint] is SeedInternalKind.NONE
    valid = max_level >= 1 and 0 <= level <= max_level and (not none_kind or (level, max_level) == (0, 1))
    if valid:
        report = from_wire(SeedStateReport, doc)
        assert (report.internal_level, report.internal_max_level) == (level, max_level)
    else:
        with pytest.raises(ContractError) as caught:
            from_wire(SeedStateReport, doc)
        assert caught.value.field in ("internal_level", "internal_max_level")


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d.update(stage="TRAINING"), "stage", "is not of type 'integer'"),
        (lambda d: d.update(stage=5), "stage", "5 is not allowed; allowed values: 0 (UNKNOWN), 1 (DORMANT)"),
        (lambda d: d.update(bogus=1), "bogus", "Additional properties"),
        (lambda d: d.update(internal_level=5), "internal_level", "outside 0..internal_max_level (4)"),
        (lambda d: d.update(slot_id="early"), "slot_id", "does not match"),
        (lambda d: d["metrics"].update(epochs_total="3"), "metrics.epochs_total", "is not of type 'integer'"),
        (lambda d: d.pop("seed_id"), "seed_id", "required"),
        (lambda d: d.update(blueprint_id="conv_heavy"), "blueprint_id", "does not match blueprint CONV_LADDER"),
    ],
)
def test_invalid_reports_are_rejected_naming_the_field(mutate: Any, field: str, words: str) -> None:
    doc = report_document()
    mutate(doc)
    with pytest.raises(ContractError) as caught:
        from_wire(SeedStateReport, doc)
    assert caught.value.field == field
    assert caught.value.type_name == "SeedStateReport"
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"SeedStateReport.{field}: ")


def event_document() -> dict[str, Any]:
    return {
        "event_id": "5b2f8a1e-0d43-4c43-9c7e-7d8a2f0e4b11",
        "event_type": "SEED_INTERNAL_LEVEL_CHANGED",
        "timestamp": "2026-11-25T10:00:00+00:00",
        "run_id": "run-1",
        "rank": 0,
        "env_id": 0,
        "episode": 2,
        "epoch": 14,
        "slot_id": "r0c1",
        "severity": "info",
        "payload": {
            "seed_id": "env0-seed1",
            "blueprint_id": "conv_ladder",
            "internal_kind": 1,
            "from_level": 1,
            "to_level": 2,
            "max_level": 4,
            "active_params": 2400,
            "group_size": 0,
        },
    }


def test_event_type_travels_by_name() -> None:
    event = from_wire(TelemetryEvent, event_document())
    assert event.event_type.name == "SEED_INTERNAL_LEVEL_CHANGED"
    assert json.loads(dumps(event))["event_type"] == "SEED_INTERNAL_LEVEL_CHANGED"


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d.update(event_type="SEED_SHADOWED"), "event_type", "'SEED_SHADOWED' is not allowed"),
        (lambda d: d.update(event_type=9), "event_type", "is not of type 'string'"),
        (lambda d: d.update(event_type="SEED_PRUNED"), "payload.active_params", "Additional properties"),
        (lambda d: d["payload"].update(env_id=0), "payload.env_id", "Additional properties"),
        (lambda d: d.update(env_id=-1), "env_id", "less than the minimum"),
        (lambda d: d.update(timestamp="yesterday"), "timestamp", "date-time"),
        (lambda d: d["payload"].update(to_level=-1), "payload.to_level", "less than the minimum"),
    ],
)
def test_invalid_events_are_rejected_naming_the_field(mutate: Any, field: str, words: str) -> None:
    doc = copy.deepcopy(event_document())
    mutate(doc)
    with pytest.raises(WireError) as caught:
        from_wire(TelemetryEvent, doc)
    assert caught.value.field == field, str(caught.value)
    assert words in str(caught.value)


def test_non_finite_values_never_reach_the_wire() -> None:
    event = from_wire(TelemetryEvent, event_document())
    report = from_wire(SeedStateReport, report_document())
    broken = type(report.metrics)(**{**to_wire(report.metrics), "current_val_accuracy": float("nan")})  # type: ignore[arg-type]
    with pytest.raises(WireError, match=r"SeedMetrics\.current_val_accuracy: nan is not valid JSON"):
        dumps(broken)
    assert dumps(event)  # a finite event serialises


def test_loads_reports_bad_json() -> None:
    with pytest.raises(WireError, match="not valid JSON"):
        loads(TelemetryEvent, "{not json")
