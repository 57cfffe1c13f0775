"""Records <-> JSON, validated against the same schemas the records were generated from.

`to_wire` turns a contract record into JSON-ready data (enums by value, except the enums listed in
ENUMS_ON_WIRE_BY_NAME, which travel by member name); `from_wire` validates JSON data against the record's schema and
builds the record. Unknown keys, wrong types, out-of-range values and broken cross-field invariants are rejected
with a ContractError whose message names the type and the field. The schemas ship inside each package
(`esper.<owner>.contracts/schemas/`), so this works in an installed wheel.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from importlib import resources
from typing import Any, Final, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import urljoin

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from esper.leyline.contracts.seed_state_report import SeedStateReport
from esper.leyline.contracts.telemetry_event import TelemetryEvent
from esper.leyline.contracts.telemetry_event_type import TelemetryEventType
from esper.leyline.errors import WireError
from esper.leyline.reports import check_seed_state_report

T = TypeVar("T")
JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]

SCHEMA_ID_PREFIX: Final = "https://esper.invalid/schemas/"
ENUMS_ON_WIRE_BY_NAME: Final[frozenset[type[Enum]]] = frozenset({TelemetryEventType})

# Cross-field invariants JSON Schema cannot state, run after a record is built.
_POST_BUILD_CHECKS: Final[Mapping[type, Callable[[Any], object]]] = {SeedStateReport: check_seed_state_report}


# ---------------------------------------------------------------- schemas
def _schema_location(cls: type) -> tuple[str, str]:
    parts = cls.__module__.split(".")
    if len(parts) != 4 or parts[0] != "esper" or parts[2] != "contracts":
        raise TypeError(f"{cls.__qualname__} is not a generated contract (module {cls.__module__})")
    return parts[1], parts[3]


def _load_schema(owner: str, stem: str) -> dict[str, Any]:
    text = (resources.files(f"esper.{owner}.contracts") / "schemas" / f"{stem}.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache  # a registry does not keep what it retrieves: without this every $ref re-reads its file
def _retrieve(uri: str) -> Resource[Any]:
    if not uri.startswith(SCHEMA_ID_PREFIX):
        raise LookupError(f"schema {uri} is outside the Esper contracts (no remote references)")
    owner, filename = uri.removeprefix(SCHEMA_ID_PREFIX).split("/")
    return Resource.from_contents(_load_schema(owner, filename.removesuffix(".json")), DRAFT202012)


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


@functools.cache
def _registry(root: str) -> Registry[Any]:
    """Every schema reachable from `root` by $ref, crawled once: validation then never retrieves or re-crawls."""
    resources: dict[str, Resource[Any]] = {}
    pending = [root]
    while pending:
        uri = pending.pop()
        if uri in resources:
            continue
        resources[uri] = _retrieve(uri)
        pending += [urljoin(uri, ref).split("#")[0] for ref in _refs(resources[uri].contents)]
    return Registry().with_resources(resources.items()).crawl()


@functools.cache
def schema_for(cls: type) -> dict[str, Any]:
    return _load_schema(*_schema_location(cls))


@functools.cache
def _validator(cls: type) -> Draft202012Validator:
    schema = schema_for(cls)
    return Draft202012Validator(
        schema, registry=_registry(schema["$id"]), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _field_path(error: ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema["properties"] if isinstance(error.schema, dict) else {}
        unknown = sorted(k for k in error.instance if k not in allowed)
        if unknown:
            return f"{path}.{unknown[0]}" if path else unknown[0]
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(error.validator_value, list):
        # "'x' is a required property": name the missing field itself.
        for name in error.validator_value:
            if name not in error.instance:
                return f"{path}.{name}" if path else str(name)
    return path


def _bound_envelope(event_type: str) -> dict[str, Any]:
    """The envelope schema with the payload bound to one event type's payload schema: the same rules as the full
    envelope (whose if/then picks that payload), without trying every payload of the anyOf."""
    envelope = dict(schema_for(TelemetryEvent))
    bindings = {branch["if"]["properties"]["event_type"]["const"]: branch["then"] for branch in envelope.pop("allOf")}
    properties = dict(envelope["properties"])
    properties["payload"] = {**bindings[event_type]["properties"]["payload"]}
    envelope["properties"] = properties
    return envelope


@functools.cache
def _event_validator(event_type: str) -> Draft202012Validator:
    envelope = _bound_envelope(event_type)
    registry = _registry(envelope["$id"])
    return Draft202012Validator(envelope, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


@functools.cache
def _fast_event_validator(event_type: str) -> Callable[[object], object]:
    """The compiled form of `_event_validator` (about 2x faster than the compiled full envelope)."""
    envelope = _bound_envelope(event_type)
    bundled = _bundle(envelope, envelope["$id"])
    assert isinstance(bundled, dict)
    compiled: Callable[[object], object] = fastjsonschema.compile(bundled)
    return compiled


_EVENT_TYPE_NAMES: Final = frozenset(member.name for member in TelemetryEventType)


_ANNOTATIONS: Final = frozenset(
    {"$schema", "$id", "title", "description", "x-enum-varnames", "x-enum-descriptions", "customTypePath"}
)


def _bundle(node: object, base: str) -> object:
    """The schema with every $ref inlined (the project's refs are whole files, never recursive) and annotations
    dropped: a self-contained document for the compiled fast path."""
    if isinstance(node, dict):
        if "$ref" in node:
            uri = urljoin(base, node["$ref"]).split("#")[0]
            target = _bundle(_retrieve(uri).contents, uri)
            assert isinstance(target, dict)
            return {**target, **{k: v for k, v in node.items() if k not in _ANNOTATIONS and k != "$ref"}}
        bundled: dict[str, object] = {}
        for key, value in node.items():
            if key in _ANNOTATIONS:
                continue
            if key in ("default", "enum", "const"):
                bundled[key] = value
            elif key == "properties":  # property names are data, even one called "description" or "title"
                bundled[key] = {name: _bundle(schema, base) for name, schema in value.items()}
            else:
                bundled[key] = _bundle(value, base)
        return bundled
    if isinstance(node, list):
        return [_bundle(item, base) for item in node]
    return node


@functools.cache
def _fast_validator(cls: type) -> Callable[[object], object]:
    schema = schema_for(cls)
    bundled = _bundle(schema, schema["$id"])
    assert isinstance(bundled, dict)
    compiled: Callable[[object], object] = fastjsonschema.compile(bundled)
    return compiled


def validate(cls: type, data: object) -> None:
    """Raise WireError naming the field unless `data` is a valid JSON form of `cls`.

    Valid data (the hot path: every telemetry event) goes through a compiled validator of the same schema; on any
    failure the reference validator (jsonschema) produces the message, so errors read the same either way."""
    fast = _fast_validator(cls)
    if (
        cls is TelemetryEvent
        and isinstance(data, dict)
        and "event_type" in data
        and isinstance(data["event_type"], str)
        and data["event_type"] in _EVENT_TYPE_NAMES
    ):
        fast = _fast_event_validator(data["event_type"])
    try:
        fast(data)
        return
    except fastjsonschema.JsonSchemaValueException as fast_error:
        rejected_by_fast = fast_error
    validator = _validator(cls)
    if cls is TelemetryEvent and isinstance(data, dict) and "event_type" in data:
        names = {member.name for member in TelemetryEventType}
        if isinstance(data["event_type"], str) and data["event_type"] in names:
            validator = _event_validator(data["event_type"])
    errors = list(validator.iter_errors(data))
    if not errors:  # the compiled validator is never more lenient; if it is stricter, fail loudly all the same
        path = ".".join(str(p) for p in rejected_by_fast.path[1:])
        raise WireError(cls.__name__, path, rejected_by_fast.message)
    # The most specific error wins; the if/then branch that binds a payload to its event type is more useful
    # than the anyOf over all payloads.
    specific = [e for e in errors if e.validator not in ("anyOf", "oneOf")] or errors
    error = best_match(specific)
    assert error is not None
    message = error.message
    if error.validator == "enum":
        allowed = error.validator_value
        if isinstance(error.schema, dict) and "x-enum-varnames" in error.schema:
            named = zip(error.schema["enum"], error.schema["x-enum-varnames"], strict=True)
            allowed = ", ".join(f"{value!r} ({name})" for value, name in named)
        message = f"{error.instance!r} is not allowed; allowed values: {allowed}"
    raise WireError(cls.__name__, _field_path(error), message)


# ---------------------------------------------------------------- record -> JSON
def to_wire(value: object, path: str = "") -> JsonValue:
    """JSON-ready form of a record (or of any value inside one). `path` names the field in error messages."""
    if isinstance(value, Enum):
        return value.name if type(value) in ENUMS_ON_WIRE_BY_NAME else _plain(value.value, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Reads the record's declared fields (not probing): generated contracts are slotted dataclasses.
        return {f.name: to_wire(getattr(value, f.name), _join(path, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(to_wire(k, path)): to_wire(v, _join(path, str(k))) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        items = sorted(value, key=repr) if isinstance(value, (frozenset, set)) else value
        return [to_wire(item, _join(path, str(i))) for i, item in enumerate(items)]
    return _plain(value, path)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _plain(value: object, path: str) -> JsonValue:
    if isinstance(value, float) and not math.isfinite(value):
        raise WireError("", path, f"{value} is not valid JSON (NaN and infinities never go on the wire)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise WireError("", path, f"{type(value).__name__} values cannot go on the wire")


def dumps(record: object) -> str:
    """One-line JSON of a record, validated against its schema first (NaN and infinities are rejected)."""
    try:
        data = to_wire(record)
    except WireError as exc:
        raise WireError(type(record).__name__, exc.field, exc.message) from None
    validate(type(record), data)
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------- JSON -> record
def from_wire(cls: type[T], data: object) -> T:
    """Validate `data` against the schema of `cls` and build the record."""
    validate(cls, data)
    assert isinstance(data, dict)
    return _build(cls, data)


def loads(cls: type[T], text: str) -> T:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WireError(cls.__name__, "", f"not valid JSON: {exc}") from exc
    return from_wire(cls, data)


def _build(cls: type[T], data: Mapping[str, Any]) -> T:
    hints = typing.get_type_hints(cls)
    overrides: dict[str, type] = {}
    if cls is TelemetryEvent:
        from esper.leyline.telemetry import EVENT_PAYLOAD_TYPES  # the payload type follows the event type

        overrides["payload"] = EVENT_PAYLOAD_TYPES[TelemetryEventType[data["event_type"]]]
    kwargs = {
        f.name: _convert(overrides[f.name] if f.name in overrides else hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in data
    }
    record = cls(**kwargs)
    if cls in _POST_BUILD_CHECKS:
        _POST_BUILD_CHECKS[cls](record)
    return record


def _convert(tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(options) != 1:
            raise TypeError(f"ambiguous union {tp} needs an explicit type (only the event payload has one)")
        return _convert(options[0], value)
    if origin is Literal or tp is Any:
        return value
    if origin in (Sequence, tuple, list):
        (item_type, *_) = get_args(tp)
        return tuple(_convert(item_type, item) for item in value)
    if origin in (frozenset, set):
        (item_type,) = get_args(tp)
        return frozenset(_convert(item_type, item) for item in value)
    if origin in (Mapping, dict):
        key_type, value_type = get_args(tp)
        return {_convert(key_type, k): _convert(value_type, v) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp[value] if tp in ENUMS_ON_WIRE_BY_NAME else tp(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value)
    if tp is float:
        return float(value)
    return value
