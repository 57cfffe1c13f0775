"""Hypothesis strategies that draw JSON documents from the project's schemas (its small JSON Schema dialect).

Cross-field rules the dialect expresses with if/then are not followed while drawing; callers filter with the real
validator (`valid_documents`), so every drawn document is valid by construction of the test, not by trust.
"""

from __future__ import annotations

import json
import string
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import ROOT

SCHEMAS = ROOT / "schemas"
ALL = {p: json.loads(p.read_text()) for p in sorted(SCHEMAS.rglob("*.json"))}
REGISTRY: Registry[Any] = Registry().with_resources(
    (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012)) for doc in ALL.values()
)
SLOT_IDS = st.builds(lambda r, c: f"r{r}c{c}", st.integers(0, 3), st.integers(0, 5))
FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
NAME_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)


def load(rel: str) -> tuple[Path, dict[str, Any]]:
    path = SCHEMAS / rel
    return path, ALL[path]


def _resolve(here: Path, ref: str) -> tuple[Path, dict[str, Any]]:
    target = (here.parent / ref).resolve()
    return target, ALL[target]


def _number(node: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum")
    if integer:
        return st.integers(min_value=low if low is not None else -1000, max_value=high if high is not None else 1000)
    return st.floats(
        min_value=low if low is not None else -1e6,
        max_value=high if high is not None else 1e6,
        exclude_min="exclusiveMinimum" in node,
        allow_nan=False,
        allow_infinity=False,
    )


def document(here: Path, node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Strategy for one schema node (not necessarily valid against if/then rules)."""
    if "$ref" in node:
        return document(*_resolve(here, node["$ref"]))
    if "anyOf" in node:
        return st.one_of(*(document(here, option) for option in node["anyOf"]))
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node["type"]
    if isinstance(kind, list):
        return st.one_of(*(document(here, {**node, "type": k}) for k in kind))
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        return _number(node, kind == "integer")
    if kind == "string":
        return _string(node)
    if kind == "array":
        return st.lists(document(here, node["items"]), min_size=node.get("minItems", 0), max_size=4)
    if kind == "object":
        return _object(here, node)
    raise NotImplementedError(f"schema node of type {kind!r}")


def _string(node: dict[str, Any]) -> st.SearchStrategy[str]:
    if node.get("format") == "uuid":
        return st.uuids().map(str)
    if node.get("format") == "date-time":
        return st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1)).map(lambda d: d.isoformat())
    if "pattern" in node:
        return SLOT_IDS if node["pattern"].startswith("^r") else st.from_regex(node["pattern"], fullmatch=True)
    return NAME_TEXT if node.get("minLength", 0) >= 1 else st.one_of(st.just(""), NAME_TEXT)


def _object(here: Path, node: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    if "properties" not in node:
        keys = node.get("propertyNames", {"type": "string", "minLength": 1})
        key_strategy = document(here, keys) if ("$ref" in keys or "enum" in keys) else NAME_TEXT.map(str.upper)
        return st.dictionaries(key_strategy, document(here, node["additionalProperties"]), max_size=4)
    required = set(node.get("required", []))
    fixed = {k: document(here, v) for k, v in node["properties"].items() if k in required}
    optional = {k: document(here, v) for k, v in node["properties"].items() if k not in required}
    return st.fixed_dictionaries(fixed, optional=optional)


def valid_documents(rel: str) -> st.SearchStrategy[dict[str, Any]]:
    path, doc = load(rel)
    validator = Draft202012Validator(doc, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return document(path, doc).filter(validator.is_valid)


def event_documents() -> st.SearchStrategy[dict[str, Any]]:
    """Whole telemetry events: an event type, then a payload drawn from that type's payload schema."""
    _, envelope = load("leyline/telemetry_event.json")
    names = envelope["properties"]["event_type"]["enum"]

    def with_payload(name: str) -> st.SearchStrategy[dict[str, Any]]:
        payload = valid_documents(f"leyline/{name.lower()}_payload.json")
        return st.fixed_dictionaries(
            {
                "event_id": st.just(str(uuid.uuid4())),
                "event_type": st.just(name),
                "timestamp": st.just(datetime(2026, 1, 1, tzinfo=UTC).isoformat()),
                "run_id": NAME_TEXT,
                "rank": st.integers(0, 7),
                "env_id": st.one_of(st.none(), st.integers(0, 7)),
                "episode": st.one_of(st.none(), st.integers(0, 50)),
                "epoch": st.one_of(st.none(), st.integers(0, 150)),
                "slot_id": st.one_of(st.none(), SLOT_IDS),
                "severity": st.sampled_from(["debug", "info", "warning", "error", "critical"]),
                "payload": payload,
            }
        )

    return st.sampled_from(names).flatmap(with_payload)
