"""Every schema is valid 2020-12, every $ref resolves, and the enum values the design fixes are what it says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from tests.conftest import ROOT

SCHEMA_FILES = sorted((ROOT / "schemas").rglob("*.json"))
DOCS = {path: json.loads(path.read_text()) for path in SCHEMA_FILES}
REGISTRY: Registry[Any] = Registry().with_resources(
    (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012)) for doc in DOCS.values()
)

# Everything a schema here may say; a typo such as "requried" would otherwise be silently legal.
KNOWN_KEYWORDS = {
    "$schema",
    "$id",
    "$ref",
    "title",
    "description",
    "type",
    "enum",
    "const",
    "x-enum-varnames",
    "x-enum-descriptions",
    "customTypePath",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "minItems",
    "uniqueItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "pattern",
    "format",
    "default",
    "anyOf",
    "allOf",
    "if",
    "then",
}


def walk(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key in ("properties", "default"):
                if key == "properties":
                    for sub in value.values():
                        yield from walk(sub)
                continue
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(ROOT / "schemas").as_posix() for p in paths]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=ids(SCHEMA_FILES))
def test_schema_is_valid_2020_12(path: Path) -> None:
    Draft202012Validator.check_schema(DOCS[path])


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=ids(SCHEMA_FILES))
def test_id_mirrors_path_and_refs_resolve(path: Path) -> None:
    doc = DOCS[path]
    assert doc["$id"] == "https://esper.invalid/schemas/" + path.relative_to(ROOT / "schemas").as_posix()
    resolver = REGISTRY.resolver(base_uri=doc["$id"])
    for node in walk(doc):
        if "$ref" in node:
            try:
                resolver.lookup(node["$ref"])
            except Unresolvable as exc:  # pragma: no cover - the assertion below is the report
                pytest.fail(f"{path.name}: $ref {node['$ref']!r} does not resolve: {exc}")


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=ids(SCHEMA_FILES))
def test_only_known_keywords(path: Path) -> None:
    for node in walk(DOCS[path]):
        unknown = set(node) - KNOWN_KEYWORDS
        assert not unknown, f"{path.name}: unknown keyword(s) {sorted(unknown)}"


def enum_members(name: str) -> dict[str, object]:
    doc = DOCS[ROOT / "schemas" / "leyline" / f"{name}.json"]
    return dict(zip(doc["x-enum-varnames"], doc["enum"], strict=True))


def test_fixed_enum_values() -> None:
    assert enum_members("lifecycle_op") == {
        "WAIT": 0,
        "GERMINATE": 1,
        "SET_ALPHA_TARGET": 2,
        "PRUNE": 3,
        "FOSSILIZE": 4,
        "ADVANCE": 5,
        "GROW_INTERNAL": 6,
        "SHRINK_INTERNAL": 7,
    }
    blueprints = enum_members("blueprint_action")
    assert blueprints["NOOP"] == 0 and blueprints["FLEX_ATTENTION"] == 12 and blueprints["CONV_LADDER"] == 13
    assert blueprints["LORA_LADDER"] == 14 and blueprints["CHANNEL_LADDER"] == 15
    assert sorted(blueprints.values()) == list(range(16))
    assert enum_members("seed_internal_kind") == {"NONE": 0, "CONV_LADDER": 1, "LORA_LADDER": 2, "CHANNEL_LADDER": 3}
    stages = enum_members("seed_stage")
    assert 5 not in stages.values(), "stage value 5 is reserved"
    assert stages["HOLDING"] == 6 and stages["RESETTING"] == 10


def test_enum_values_are_unique_everywhere() -> None:
    for path, doc in DOCS.items():
        if "enum" in doc:
            assert len(set(doc["enum"])) == len(doc["enum"]), path.name
            assert len(set(doc["x-enum-varnames"])) == len(doc["x-enum-varnames"]), path.name
