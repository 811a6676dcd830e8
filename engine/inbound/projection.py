"""The attributes of a resource a response returns (RFC 7644 §3.4.2.5, §3.9; RFC 7643 §7 `returned`).

`attributes` names the only attributes to return, `excludedAttributes` those to leave out of the
default set; names are in the standard notation (§3.10): `userName`, `name.givenName`, a URN-prefixed
`urn:...:enterprise:2.0:User:manager`, or an extension's URN for all of it. `id` and `schemas` are
always returned, `password` never.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from engine.inbound.attributes import (
    ALWAYS_RETURNED,
    NEVER_RETURNED,
    AttrPath,
    container,
    find_key,
    schema_urns,
    split_path,
)
from engine.inbound.errors import ScimProblem


def names(parameter: str | None) -> list[str]:
    """The names of an `attributes` or `excludedAttributes` query parameter (comma-separated)."""
    return [name.strip() for name in (parameter or "").split(",") if name.strip()]


def project(
    resource: Mapping[str, Any], attributes: Iterable[str] = (), excluded: Iterable[str] = ()
) -> dict[str, Any]:
    """A copy of `resource` with the attributes a response returns."""
    full = {key: copy.deepcopy(value) for key, value in resource.items() if key.lower() not in NEVER_RETURNED}
    wanted = list(attributes)
    result = _only(full, wanted) if wanted else full
    for name in excluded:
        _drop(result, name)
    return result


def _path(name: str) -> AttrPath:
    path = split_path(name)
    if path is None:
        raise ScimProblem(400, "invalidPath", f"{name!r} is not an attribute name")
    return path


def _only(full: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name in ALWAYS_RETURNED:
        key = find_key(full, name)
        if key is not None:
            kept[key] = full[key]
    urns = schema_urns(full)
    # Whole attributes last, so `emails,emails.value` returns all of emails.
    for name in sorted(wanted, key=lambda n: split_path(n) is None or _path(n).sub is None):
        if name.lower() in urns:
            key = find_key(full, name)
            if key is not None:
                kept[key] = full[key]
            continue
        _copy(full, kept, _path(name))
    return kept


def _copy(full: dict[str, Any], kept: dict[str, Any], path: AttrPath) -> None:
    source = container(full, path)
    key = None if source is None else find_key(source, path.name)
    if source is None or key is None:
        return
    target = kept
    if path.urn is not None:
        urn_key = find_key(full, path.urn)
        assert urn_key is not None
        target = kept.setdefault(urn_key, {})
    value = source[key]
    if path.sub is None:
        target[key] = value
    elif isinstance(value, Mapping):
        sub = find_key(value, path.sub)
        if sub is not None:
            target.setdefault(key, {})[sub] = value[sub]
    elif isinstance(value, list):
        current = target.setdefault(key, [{} for _ in value])
        for item, narrowed in zip(value, current, strict=True):
            sub = find_key(item, path.sub) if isinstance(item, Mapping) else None
            if sub is not None:
                narrowed[sub] = item[sub]


def _drop(result: dict[str, Any], name: str) -> None:
    if name.lower() in schema_urns(result):
        key = find_key(result, name)
        if key is not None:
            del result[key]
        return
    path = _path(name)
    if path.urn is None and path.sub is None and path.name.lower() in ALWAYS_RETURNED:
        return
    holder = container(result, path)
    key = None if holder is None else find_key(holder, path.name)
    if holder is None or key is None:
        return
    assert isinstance(holder, dict)
    if path.sub is None:
        del holder[key]
    else:
        for item in holder[key] if isinstance(holder[key], list) else [holder[key]]:
            if isinstance(item, dict):
                item.pop(find_key(item, path.sub) or path.sub, None)
    if path.urn is not None and not holder:
        urn_key = find_key(result, path.urn)
        if urn_key is not None:
            del result[urn_key]
