"""Whether a resource matches a parsed SCIM filter (RFC 7644 §3.4.2.2).

* An attribute with several values (a multi-valued one, or a sub-attribute of one: `emails.value`)
  matches when any of its values does; `ne` is the negation of `eq`, so it matches an absent attribute.
* A complex value compared without a sub-attribute (`emails co "example.com"`, `manager eq "id"`) is
  compared by its `value` sub-attribute.
* Strings compare case-insensitively unless the attribute is caseExact (`attributes.CASE_EXACT`);
  `gt`, `ge`, `lt` and `le` compare two xsd:dateTime strings as instants (`meta.lastModified`), other
  strings lexically, numbers as numbers; booleans and null only with `eq` and `ne`.
* `eq null` matches an attribute without a value, `pr` one with a non-empty value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from engine.inbound.attributes import CASE_EXACT, AttrPath, container, get, iter_values
from engine.inbound.filter import And, Filter, Not, Or, Present, Scalar, ValuePath, parse_filter


def matches(resource: Mapping[str, Any], node: Filter | str) -> bool:
    """Whether `resource` is selected by the filter (a tree, or text parsed here)."""
    return _matches(resource, parse_filter(node) if isinstance(node, str) else node, None)


def value_matches(value: Mapping[str, Any], node: Filter, parent: AttrPath) -> bool:
    """Whether one value of the multi-valued attribute `parent` is selected by a value filter."""
    return _matches(value, node, parent)


def _matches(resource: Mapping[str, Any], node: Filter, parent: AttrPath | None) -> bool:
    if isinstance(node, And):
        return _matches(resource, node.left, parent) and _matches(resource, node.right, parent)
    if isinstance(node, Or):
        return _matches(resource, node.left, parent) or _matches(resource, node.right, parent)
    if isinstance(node, Not):
        return not _matches(resource, node.operand, parent)
    if isinstance(node, ValuePath):
        return any(
            isinstance(value, Mapping) and _matches(value, node.filter, node.path)
            for value in iter_values(_attribute(resource, node.path))
        )
    key = _key(node.path, parent)
    values = list(_values(resource, node.path))
    if isinstance(node, Present):
        return any(_present(value) for value in values)
    if node.value is None and node.op in {"eq", "ne"}:
        return any(_present(value) for value in values) == (node.op == "ne")
    if node.op == "ne":
        return not any(_compare(value, "eq", node.value, key) for value in values)
    return any(_compare(value, node.op, node.value, key) for value in values)


def _key(path: AttrPath, parent: AttrPath | None) -> str:
    """The canonical path of an attribute, inside a value filter's attribute when there is one."""
    if parent is None:
        return path.full_key
    return f"{parent.key}.{path.name.lower()}"


def _attribute(resource: Mapping[str, Any], path: AttrPath) -> Any:
    holder = container(resource, path)
    return None if holder is None else get(holder, path.name)


def _values(resource: Mapping[str, Any], path: AttrPath) -> Iterator[Any]:
    """Every value `path` names in `resource`, a complex one stood for by its `value` sub-attribute."""
    for value in iter_values(_attribute(resource, path)):
        if path.sub is not None:
            if isinstance(value, Mapping):
                yield from iter_values(get(value, path.sub))
        elif isinstance(value, Mapping):
            yield get(value, "value")
        else:
            yield value


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _compare(actual: Any, op: str, expected: Scalar, key: str) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return op == "eq" and _as_bool(actual) is not None and _as_bool(actual) == _as_bool(expected)
    if expected is None or actual is None:
        return False
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        return _order(actual, op, expected)
    if not isinstance(actual, str) or not isinstance(expected, str):
        return False
    if op in {"gt", "ge", "lt", "le"}:
        instants = _instant(actual), _instant(expected)
        if instants[0] is not None and instants[1] is not None:
            return _order(instants[0], op, instants[1])
    if key not in CASE_EXACT:
        actual, expected = actual.casefold(), expected.casefold()
    if op == "co":
        return bool(expected in actual)
    if op == "sw":
        return bool(actual.startswith(expected))
    if op == "ew":
        return bool(actual.endswith(expected))
    return _order(actual, op, expected)


def _order(actual: Any, op: str, expected: Any) -> bool:
    if op == "eq":
        return bool(actual == expected)
    if op == "gt":
        return bool(actual > expected)
    if op == "ge":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    if op == "le":
        return bool(actual <= expected)
    return False


def _as_bool(value: Any) -> bool | None:
    """A boolean, or the strings "true"/"false" in any case, which Entra sends for booleans
    (`roles[primary eq "True"]`; see `quirks`)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return None


def _instant(text: str) -> datetime | None:
    """An xsd:dateTime as an aware instant (one without a zone is taken as UTC), or None."""
    if len(text) < 10 or not text[:4].isdigit() or text[4:5] != "-":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
