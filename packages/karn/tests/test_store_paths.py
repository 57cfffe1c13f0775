"""Every JSON path the run store's views read from an event payload exists in that payload's JSON Schema.

DuckDB reads a missing JSON path as NULL, so a payload field renamed in `schemas/leyline/` would silently empty a
view's column. The views are built from `store.PAYLOAD_PATHS` (view, event type, path, JSON type); this module
resolves each path through the payload schema of its event type (the schemas shipped in the leyline package,
following `$ref` into nested records, arrays and maps), and checks that the views' SQL reads no payload path
outside that table (fields of the records of an unnested payload array included: `seeds[*].delta_ratio`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final
from urllib.parse import urljoin

import pytest

from esper.karn.store import PAYLOAD_PATHS, VIEWS, JsonType, PayloadPath
from esper.leyline import EVENT_PAYLOAD_TYPES, TelemetryEventType, schema_for
from esper.leyline.wire import SCHEMA_ID_PREFIX

E = TelemetryEventType


# ---------------------------------------------------------------- resolving a path through a schema
@dataclass(frozen=True)
class Node:
    """A schema node and the `$id` of the file it sits in (for relative `$ref`s and for messages)."""

    schema: dict[str, Any]
    uri: str

    @property
    def file(self) -> str:
        """The schema's source file in the repository (the packages ship copies of it)."""
        return "schemas/" + self.uri.removeprefix(SCHEMA_ID_PREFIX)


def _load(uri: str) -> dict[str, Any]:
    owner, filename = uri.removeprefix(SCHEMA_ID_PREFIX).split("/")
    text = (resources.files(f"esper.{owner}.contracts") / "schemas" / filename).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _deref(node: Node) -> Node:
    while "$ref" in node.schema:
        uri = urljoin(node.uri, node.schema["$ref"])
        if "#" in uri:
            raise AssertionError(f"{node.file}: $ref {node.schema['$ref']} into a fragment is not supported here")
        node = Node(_load(uri), uri)
    return node


def _keyword(schema: dict[str, Any], name: str, absent: Any) -> Any:
    """A JSON Schema keyword, or what its absence means in the specification (no anyOf: no alternatives, ...).
    Schemas are not contract data: an absent keyword is normal, so this is not a defaulted contract field."""
    return schema[name] if name in schema else absent


def _branches(node: Node) -> list[Node]:
    """The alternatives a value at `node` may take (anyOf / oneOf flattened), each dereferenced."""
    node = _deref(node)
    alternatives = _keyword(node.schema, "anyOf", []) + _keyword(node.schema, "oneOf", [])
    if not alternatives:
        return [node]
    return [branch for alt in alternatives for branch in _branches(Node(alt, node.uri))]


def _json_types(node: Node) -> set[str]:
    types: set[str] = set()
    for branch in _branches(node):
        declared = _keyword(branch.schema, "type", None)
        if isinstance(declared, str):
            types.add(declared)
        elif isinstance(declared, list):
            types.update(declared)
        values = [*_keyword(branch.schema, "enum", []), *([branch.schema["const"]] if "const" in branch.schema else [])]
        for value in values:
            types.add(_type_of_value(value))
    return types


def _type_of_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def _name_allowed(names: Node, key: str) -> str | None:
    """None when a map whose propertyNames schema is `names` may have `key`; else why not."""
    for branch in _branches(names):
        schema = branch.schema
        if "enum" in schema and key not in schema["enum"]:
            return f"{branch.file} does not allow the key {key!r} (allowed: {', '.join(map(str, schema['enum']))})"
        if "const" in schema and key != schema["const"]:
            return f"{branch.file} only allows the key {schema['const']!r}"
        if "pattern" in schema and not re.search(schema["pattern"], key):
            return f"{branch.file}: the key {key!r} does not match {schema['pattern']!r}"
    return None


ARRAY_ITEM: Final = re.compile(r"^\[(\*|\d+)\]$")
SEGMENT: Final = re.compile(r"[^.\[\]]+|\[(?:\*|\d+)\]")


def _join(segments: list[str]) -> str:
    return "".join(s if ARRAY_ITEM.match(s) else "." + s for s in segments).lstrip(".")


def _step(node: Node, segment: str) -> Node | str:
    """The schema one segment below `node`, or why there is none."""
    schema = node.schema
    if ARRAY_ITEM.match(segment):
        if "items" in schema:
            return Node(schema["items"], node.uri)
        return f"{node.file}: {segment} indexes a value that is not an array"
    if segment in _keyword(schema, "properties", {}):
        return Node(schema["properties"][segment], node.uri)
    extra = _keyword(schema, "additionalProperties", None)
    if isinstance(extra, dict):  # a map: any key its propertyNames allow
        why = _name_allowed(Node(schema["propertyNames"], node.uri), segment) if "propertyNames" in schema else None
        return why if why is not None else Node(extra, node.uri)
    if "properties" not in schema:
        return f"{node.file}: {segment!r} is looked up in a value of type {sorted(_json_types(node))}, not a record"
    return f"{node.file} has no field {segment!r} (fields: {', '.join(schema['properties'])})"


def resolve(root: Node, segments: list[str]) -> list[Node]:
    """The schemas a path may lead to (one per anyOf branch that has it); AssertionError naming why when none."""
    current = [root]
    for depth, segment in enumerate(segments):
        found: list[Node] = []
        reasons: list[str] = []
        for step in (_step(branch, segment) for node in current for branch in _branches(node)):
            if isinstance(step, Node):
                found.append(step)
            else:
                reasons.append(step)
        if not found:
            raise AssertionError(f"at {_join(segments[: depth + 1])!r}: {'; '.join(reasons)}")
        current = found
    return current


ACCEPTED_TYPES: Final[dict[str, set[str]]] = {
    "integer": {"integer"},
    "number": {"number", "integer"},
    "string": {"string"},
    "boolean": {"boolean"},
    "array": {"array"},
}


def payload_schema(event_type: TelemetryEventType) -> Node:
    payload_type: type = EVENT_PAYLOAD_TYPES[event_type]
    schema = schema_for(payload_type)
    return Node(schema, schema["$id"])


def check_path(view: str, event_type: TelemetryEventType, path: str, json_type: JsonType | None) -> None:
    """AssertionError naming the view, the path and the schema unless `path` exists in the payload of
    `event_type` and holds `json_type` (or null)."""
    root = payload_schema(event_type)
    where = f"view {view!r}: {event_type.name} payload path {path!r} ({root.file})"
    segments = SEGMENT.findall(path)
    if _join(segments) != path:
        raise AssertionError(f"{where}: not a dotted path")
    try:
        leaves = resolve(root, segments)
    except AssertionError as exc:  # resolve() says where the path stops; re-raised naming the view and the path
        raise AssertionError(f"{where} does not exist: {exc}") from None
    if json_type is None:
        return
    found = set().union(*(_json_types(leaf) for leaf in leaves)) - {"null"}
    if not found or not found <= ACCEPTED_TYPES[json_type]:
        raise AssertionError(f"{where} holds {sorted(found) or 'an untyped value'}, but the view reads {json_type}")


# ---------------------------------------------------------------- the paths the views' SQL reads
_ARROW_CHAIN: Final = re.compile(r"\b(?:\w+\.)?payload((?:\s*->>?\s*'[^']*')+)")
_ARROW_KEY: Final = re.compile(r"->>?\s*'([^']*)'")
_JSON_FUNCTION: Final = re.compile(
    r"\bjson_(?:extract|extract_string|value|exists|type|array_length)\(\s*(?:\w+\.)?payload\s*,\s*'([^']*)'\s*\)",
    re.IGNORECASE,
)


_UNNEST: Final = re.compile(
    r"\bunnest\(\s*CAST\(\s*(?:\w+\.)?payload\s*->\s*'([^']*)'\s+AS\s+JSON\[\]\s*\)\s*\)\s+AS\s+(\w+)", re.IGNORECASE
)


def _normalise(key: str) -> str:
    if key.startswith("$"):
        return key.removeprefix("$").removeprefix(".")
    if key.startswith("/"):
        return key.removeprefix("/").replace("/", ".")
    return key


def _keys(chain: str) -> str:
    """`->'a'->>'$.b'` as the dotted path `a.b`."""
    return ".".join(_normalise(key) for key in _ARROW_KEY.findall(chain)).replace(".[", "[")


def sql_paths(sql: str) -> set[str]:
    """Every payload path an SQL text reads (`payload->'a'->>'b'`, `x.payload->>'$.a.b'`, `json_extract(payload,
    '$.a')`, and the fields of the records of an unnested array: `unnest(CAST(payload->'$.a' AS JSON[])) AS r` then
    `r->>'$.b'` reads `a[*].b`); AssertionError when it touches the payload, or such records, in some other way this
    test cannot follow."""
    found: set[str] = set()
    for array, alias in _UNNEST.findall(sql):
        reads = re.compile(rf"\b{alias}((?:\s*->>?\s*'[^']*')+)")
        found.update(f"{_normalise(array)}[*].{_keys(m.group(1))}" for m in reads.finditer(sql))
        sql = re.sub(rf"\bAS\s+{alias}\b", "", reads.sub("", sql), flags=re.IGNORECASE)
        if re.search(rf"\b{alias}\b", sql):
            raise AssertionError(f"the records of {array} ({alias}) are read in a way this test cannot parse: {sql}")
    for match in _ARROW_CHAIN.finditer(sql):
        found.add(_keys(match.group(1)))
    found.update(_normalise(m.group(1)) for m in _JSON_FUNCTION.finditer(sql))
    rest = _JSON_FUNCTION.sub("", _ARROW_CHAIN.sub("", sql))
    if re.search(r"\bpayload\b", rest):
        raise AssertionError(f"the payload is read in a way this test cannot parse: {rest.strip()[:400]}")
    return found


# ---------------------------------------------------------------- tests
def _id(path: PayloadPath) -> str:
    return f"{path.view}:{path.event_type.name}:{path.path}"


@pytest.mark.parametrize("path", PAYLOAD_PATHS, ids=_id)
def test_every_payload_path_exists_in_its_schema(path: PayloadPath) -> None:
    check_path(path.view, path.event_type, path.path, path.json_type)


@pytest.mark.parametrize("view", list(VIEWS))
def test_the_view_sql_reads_exactly_the_declared_paths(view: str) -> None:
    declared = {p.path for p in PAYLOAD_PATHS if p.view == view}
    in_sql = sql_paths(VIEWS[view][1])
    assert in_sql == declared, (
        f"view {view!r}: read in SQL but not in PAYLOAD_PATHS: {sorted(in_sql - declared)}; "
        f"declared but not read: {sorted(declared - in_sql)}"
    )


def test_the_table_covers_every_view_that_reads_payloads() -> None:
    reading = {view for view, (_, sql) in VIEWS.items() if sql_paths(sql)}
    assert reading == {p.view for p in PAYLOAD_PATHS}
    assert len(PAYLOAD_PATHS) == len(set(PAYLOAD_PATHS))


MISSPELT: Final = [
    pytest.param("epochs", E.EPOCH_COMPLETED, "val_acuracy", "number", "has no field 'val_acuracy'", id="field"),
    pytest.param("actions", E.ACTION_TAKEN, "action.opp", "integer", "factored_action.json has no field", id="nested"),
    pytest.param("rewards", E.REWARD_COMPUTED, "components.totl", "number", "reward_components.json", id="ref"),
    pytest.param(
        "episode_outcomes", E.EPISODE_OUTCOME, "final_accuracy", "number", "no field 'final_accuracy'", id="prefix"
    ),
    pytest.param(
        "ppo_updates",
        E.PPO_UPDATE_COMPLETED,
        "head_entropies.opp",
        "number",
        "action_head.json does not allow",
        id="map-key",
    ),
    pytest.param(
        "seed_lifecycle", E.SEED_GATE_EVALUATED, "result.passed.value", "boolean", "not a record", id="into-scalar"
    ),
    pytest.param("seed_lifecycle", E.SEED_FOSSILIZED, "from_stage", "integer", "no field", id="other-event-type"),
    pytest.param("runs", E.TRAINING_STARTED, "task[0]", "string", "not an array", id="index-scalar"),
    pytest.param("epochs", E.EPOCH_COMPLETED, "val_accuracy", "integer", "holds ['number']", id="wrong-type"),
    pytest.param(
        "seed_epochs",
        E.EPOCH_COMPLETED,
        "seeds[*].delta_ration",
        "number",
        "seed_epoch.json has no field 'delta_ration'",
        id="array-record-field",
    ),
    pytest.param(
        "seed_epochs", E.EPOCH_COMPLETED, "seeds.delta_ratio", "number", "not a record", id="array-without-items"
    ),
    pytest.param(
        "seed_epochs", E.EPOCH_COMPLETED, "seeds[*].stage", "string", "holds ['integer']", id="array-record-type"
    ),
]


@pytest.mark.parametrize(("view", "event_type", "path", "json_type", "reason"), MISSPELT)
def test_a_misspelt_path_fails_naming_view_path_and_schema(
    view: str, event_type: TelemetryEventType, path: str, json_type: JsonType, reason: str
) -> None:
    with pytest.raises(AssertionError) as failure:
        check_path(view, event_type, path, json_type)
    message = str(failure.value)
    schema_file = payload_schema(event_type).file
    assert f"view {view!r}" in message and repr(path) in message and schema_file in message, message
    assert reason in message, message


@pytest.mark.parametrize(
    ("event_type", "path", "json_type"),
    [
        pytest.param(E.ACTION_TAKEN, "valid_ops[*]", "integer", id="array-items-through-ref"),
        pytest.param(E.ACTION_TAKEN, "op_probabilities.GERMINATE", "number", id="nullable-map-by-pattern"),
        pytest.param(E.GOVERNOR_ROLLBACK, "pruned_slots[0]", "string", id="array-index"),
        pytest.param(E.PPO_UPDATE_COMPLETED, "op_q_values", None, id="json-any-type"),
        pytest.param(E.EPOCH_COMPLETED, "seeds[*].delta_ratio", "number", id="array-of-records-through-ref"),
        pytest.param(E.EPOCH_COMPLETED, "seeds[0].slot_id", "string", id="array-record-by-index"),
    ],
)
def test_paths_resolve_through_arrays_and_maps(
    event_type: TelemetryEventType, path: str, json_type: JsonType | None
) -> None:
    check_path("test", event_type, path, json_type)


def test_sql_paths_reads_every_form_of_payload_access() -> None:
    sql = (
        "SELECT payload->>'a', g.payload->'$.b.c', payload->'d'->>'e', json_extract_string(payload, '$.f[0]'), "
        "CAST(e.payload -> '$.g' AS INTEGER[]) FROM raw_events"
    )
    assert sql_paths(sql) == {"a", "b.c", "d.e", "f[0]", "g"}
    with pytest.raises(AssertionError, match="cannot parse"):
        sql_paths("SELECT json_keys(payload) FROM raw_events")
    records = "FROM (SELECT seq, unnest(CAST(e.payload->'$.h' AS JSON[])) AS r FROM raw_events e)"
    assert sql_paths(f"SELECT r->>'$.i', r->'j'->>'k', seq {records}") == {"h", "h[*].i", "h[*].j.k"}
    with pytest.raises(AssertionError, match=r"records of \$\.h \(r\) are read in a way this test cannot parse"):
        sql_paths(f"SELECT json_keys(r) {records}")
