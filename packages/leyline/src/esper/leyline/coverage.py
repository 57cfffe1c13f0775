"""Consumer coverage: assert that a table handles every member of an enum, and name what it misses.

Every package uses this for its exhaustive tables (mask rules, handlers, reward costs, renderers...), so adding a
member to a schema and regenerating makes the tests fail with a message naming each consumer that must change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class CoverageError(AssertionError):
    """A consumer does not handle every member of a contract enum."""


def missing_members(enum: type[E], handled: Iterable[object], key: Callable[[E], object] | None = None) -> list[E]:
    """Members of `enum` whose key (the member itself by default) is not in `handled`."""
    keys = set(handled)
    return [member for member in enum if (member if key is None else key(member)) not in keys]


def assert_covers(
    enum: type[E],
    handled: Iterable[object],
    *,
    consumer: str,
    key: Callable[[E], object] | None = None,
    allow_extra: bool = False,
) -> None:
    """Raise CoverageError unless `handled` has an entry for every member of `enum` (and, unless allow_extra,
    nothing else). `key` maps a member to the form `handled` uses (for example `lambda m: m.name`)."""
    handled_keys = set(handled)
    missing = missing_members(enum, handled_keys, key)
    member_keys = {member if key is None else key(member) for member in enum}
    extra = [] if allow_extra else sorted(repr(k) for k in handled_keys - member_keys)
    problems: list[str] = []
    if missing:
        names = ", ".join(f"{enum.__name__}.{m.name} ({m.value!r})" for m in missing)
        problems.append(f"{consumer} does not handle {names}")
    if extra:
        problems.append(f"{consumer} has entries that are not {enum.__name__} members: {', '.join(extra)}")
    if problems:
        raise CoverageError("; ".join(problems))
