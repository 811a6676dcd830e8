"""The bodies of SCIM writes, built from an operation and the object just read, without I/O.

`desired` reads an operation's attributes as paths and values (users get `active: true` unless mapped,
and `active: false` when the operation leaves them disabled; groups get an `externalId` unless mapped);
`diff` turns them into PATCH operations touching only what differs (`password`, never read back by a
server, is sent every time); `put_body` overlays them on the object for a PUT;
an entry of a multi-valued attribute left with nothing in it (see `paths.empty_entry`) is never sent:
the create and the PUT leave it out, a PATCH removes it whole (`emails[type eq "work"]`);
`member_patches` and `chunks_of` cut group members into PATCHes of `member_chunk_size` values.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from common.errors import PermanentError
from common.peers.scim_schemas import ObjectType
from queues.contracts import Operation
from workers.connectors.scim.paths import (
    AttrPath,
    attr_path,
    blank,
    clean_entries,
    empty_entry,
    entry_of,
    field_of,
    literal,
    overlay,
)

_WRITE_ONLY: Final = frozenset({"password"})
GROUP_NOT_DISABLED: Final = "a SCIM group has no active flag to disable; delete it instead"


def desired(op: Operation, kind: ObjectType) -> dict[AttrPath, Any]:
    """The attributes `op` wants, as paths and values (None removes an attribute)."""
    if kind == "group" and "members" in op.attributes:
        raise PermanentError("group members come from members_add/members_remove, not from an attribute")
    if kind == "group" and op.disabled:
        raise PermanentError(GROUP_NOT_DISABLED)
    wanted: dict[AttrPath, Any] = {}
    for name, value in op.attributes.items():
        path = attr_path(name)
        wanted[path] = clean_entries(path.name, value) if path.type is None and path.sub is None else value
    if kind == "user" and op.action in ("create", "update"):
        if op.disabled:
            wanted[attr_path("active")] = False  # to be disabled: whatever `active` is mapped to
        else:
            wanted.setdefault(attr_path("active"), True)
    if kind == "group" and op.action in ("create", "update"):
        wanted.setdefault(attr_path("externalId"), op.source_id)
    return wanted


def diff(current: Mapping[str, Any], wanted: Mapping[AttrPath, Any]) -> list[dict[str, Any]]:
    """PATCH operations that bring `current` to `wanted`, touching only what differs."""
    operations: list[dict[str, Any]] = []
    entries: dict[tuple[str | None, str, str], dict[str, Any]] = {}
    for path, value in wanted.items():
        if path.type is not None:
            entries.setdefault((path.schema, path.name, path.type), {})[path.sub or "value"] = value
            continue
        now = path.get(current)
        if path.name not in _WRITE_ONLY and now == value:
            continue
        if value is None:
            if now is not None:
                operations.append({"op": "remove", "path": path.scim()})
            continue
        operations.append({"op": "replace", "path": path.scim(), "value": value})
    for (schema, name, kind), subs in entries.items():
        operations += _entry_diff(current, schema, name, kind, subs)
    return operations


def _entry_diff(
    current: Mapping[str, Any], schema: str | None, name: str, kind: str, subs: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The PATCH operations for the entry of type `kind` of `name`: added whole when missing, removed
    whole when it would hold nothing, else its sub-attributes that differ."""
    container = field_of(current, schema) if schema else current
    now = entry_of(field_of(container, name), kind)
    after = {k: v for k, v in (now or {}).items() if k.lower() not in {s.lower() for s in subs}}
    after.update({sub: value for sub, value in subs.items() if not blank(value)})
    attribute = f"{schema + ':' if schema else ''}{name}"
    selector = f'{attribute}[type eq "{kind}"]'
    if empty_entry(name, after):
        return [] if now is None else [{"op": "remove", "path": selector}]
    if now is None:
        # No entry of that type yet: a replace through the selector would find no target.
        return [{"op": "add", "path": attribute, "value": [{"type": kind, **after}]}]
    operations: list[dict[str, Any]] = []
    for sub, value in subs.items():
        held = field_of(now, sub)
        if blank(value):
            if not blank(held):
                operations.append({"op": "remove", "path": f"{selector}.{sub}"})
        elif held != value:
            operations.append({"op": "replace", "path": f"{selector}.{sub}", "value": value})
    return operations


def put_body(
    kind: ObjectType, current: Mapping[str, Any], wanted: Mapping[AttrPath, Any], op: Operation | None
) -> dict[str, Any] | None:
    """`current` overlaid by `wanted` (attributes not mapped survive) and `op`'s members; None when
    that changes nothing."""
    body = copy.deepcopy(dict(current))
    body.pop("meta", None)
    overlay(body, wanted)
    if op is not None and kind == "group" and (op.members_add or op.members_remove):
        kept = [m for m in body.get("members") or [] if m.get("value") not in set(op.members_remove)]
        present = {m.get("value") for m in kept}
        groups = set(op.members_groups)
        kept += [member(m, groups) for m in dict.fromkeys(op.members_add) if m not in present]
        body["members"] = kept
    if body == {k: v for k, v in current.items() if k != "meta"}:
        return None
    return body


def member_patches(current: Mapping[str, Any], op: Operation, size: int) -> list[list[dict[str, Any]]]:
    """PATCH bodies for the members to remove then add, `size` values each, skipping what the group
    already shows.

    A group read without a `members` key (none yet, or a server that leaves them out) hides
    nothing: every removal and addition is then sent, which a server takes as a no-op if needed.
    """
    listed = current.get("members")
    present = {m.get("value") for m in listed if isinstance(m, dict)} if isinstance(listed, list) else None
    wanted = dict.fromkeys(op.members_add)  # an id in both lists stays: added after its removal
    removals = [
        m for m in dict.fromkeys(op.members_remove) if m not in wanted and (present is None or m in present)
    ]
    additions = [m for m in wanted if present is None or m not in present]
    requests = [
        [{"op": "remove", "path": f"members[value eq {literal(m)}]"} for m in removals[i : i + size]]
        for i in range(0, len(removals), size)
    ]
    groups = set(op.members_groups)
    requests += [[add_members(additions[i : i + size], groups)] for i in range(0, len(additions), size)]
    return requests


def add_members(members: Sequence[str], groups: Collection[str] = ()) -> dict[str, Any]:
    """The PATCH operation that adds `members` (target ids; those in `groups` are groups) to a group."""
    return {"op": "add", "path": "members", "value": [member(m, groups) for m in members]}


def member(target_id: str, groups: Collection[str] = ()) -> dict[str, str]:
    """A group's member as SCIM sends it: its id, and whether it is a user or a (nested) group."""
    return {"value": target_id, "type": "Group" if target_id in groups else "User"}


def chunks_of(items: list[str], size: int) -> tuple[list[str], list[list[str]]]:
    """The first chunk (sent with a create) and the rest."""
    return items[:size], [items[i : i + size] for i in range(size, len(items), size)]
