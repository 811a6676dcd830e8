"""One operation read against the LDAP target's settings, and the writes an entry needs, without a call.

`plan_operation()` turns an operation into a `Plan`: its LDAP attributes (names mapped through `attributes:`,
values as LDAP text), the DN its template renders, and the value its entry is matched on. The rest build
what the connector sends: the filter that finds entries by matching value, the attributes to read back
for a diff, and the modify changes that bring an entry to the desired values.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ldap3

from common.errors import PermanentError
from common.peers.ldap_names import DnError, escape_filter_value, first_rdn, join_dn, rdn_values, split_dn
from common.unique import unique_candidates
from queues.contracts import MEMBERS, Operation
from workers.connectors.ldap.settings import Disable, KindSettings, LdapSettings

Entry = tuple[str, dict[str, list[str]]]
"""A DN and its attributes, keyed by lowercased name, as text."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """One operation read against its kind's settings, before any call."""

    op: Operation
    kind: KindSettings
    desired: dict[str, list[str]]  # by LDAP name as configured; [] removes
    dn: str | None  # the rendered DN, when the attributes allow it
    match_value: str | None
    password: str | None = field(default=None, repr=False)  # an initial password, never written out


def plan_operation(op: Operation, settings: LdapSettings) -> Plan:
    """`op` as its kind's settings read it; a `PermanentError` when they cannot."""
    kind = _kind_of(op, settings)
    if op.disabled and op.action in ("create", "update"):
        disable_of(kind)  # refused before anything is written, never created enabled
    desired: dict[str, list[str]] = {}
    for name, value in op.attributes.items():
        ldap_name = kind.ldap_name(name)
        if kind.member_attribute and ldap_name.lower() == kind.member_attribute.lower():
            raise PermanentError("group members come from members_add/members_remove, not from an attribute")
        if unique_candidates(value) is not None:  # resolved before planning (unique.py): never written
            raise PermanentError(f"{name!r} holds SelectUniqueValue's candidates, not resolved to a value")
        desired[ldap_name] = ldap_values(value)
    dn = None
    if op.action in ("create", "update"):
        try:
            dn = kind.dn.render(op.attributes)
        except KeyError as missing:
            if op.action == "update" and op.target_id:
                # An attribute set on create only (a SelectUniqueValue uid) names the entry: an update
                # without it addresses the entry where it is, and renames nothing.
                return _plan(op, kind, desired, None)
            raise PermanentError(
                f"the DN template {kind.dn.text!r} needs {missing.args[0]!r}, "
                f"which this {op.object_type} lacks; map it"
            ) from None
    return _plan(op, kind, desired, dn)


def _plan(op: Operation, kind: KindSettings, desired: dict[str, list[str]], dn: str | None) -> Plan:
    match_value = None
    values = next((v for k, v in desired.items() if k.lower() == kind.match.lower()), None)
    if values:
        match_value = values[0]
    else:
        match_value = next(
            (
                str(value)
                for name, value in op.matching
                if kind.ldap_name(name).lower() == kind.match.lower()
                and value not in (None, "")
                and value != op.target_id
            ),
            None,
        )
    return Plan(op=op, kind=kind, desired=desired, dn=dn, match_value=match_value)


def _kind_of(op: Operation, settings: LdapSettings) -> KindSettings:
    return kind_settings(op.object_type, settings)


def kind_settings(object_type: str, settings: LdapSettings) -> KindSettings:
    kind = {"user": settings.users, "group": settings.groups}.get(object_type, None)
    if object_type not in ("user", "group"):
        raise PermanentError(f"object type {object_type!r} is not one of user, group")
    if kind is None:
        raise PermanentError(
            f"this target has no `{object_type}s:` settings; add them with at least `dn:`",
            code="config",
        )
    return kind


def disable_of(kind: KindSettings) -> Disable:
    """How `kind`'s entries are disabled; a `PermanentError` saying what to set when they cannot be."""
    if kind.kind == "group":
        raise PermanentError("a directory group has no disabled state; deprovision groups with delete")
    if kind.disable is None:
        raise PermanentError(
            "users.disable is not set: say how this directory marks a disabled account "
            "(attribute and value, or move_to), or deprovision with delete",
            code="config",
        )
    return kind.disable


def disabled_dn(dn: str, disable: Disable) -> str:
    """Where the entry at `dn` is once disabled: under `move_to` with the same RDN, if set; else there."""
    return dn if disable.move_to is None else f"{first_rdn(dn)},{disable.move_to}"


def listing_fields(kind: KindSettings, attributes: Sequence[str]) -> list[str]:
    """`attributes`, then the operation attribute that the matching LDAP attribute stands for."""
    match_name = next(
        (name for name, ldap in kind.attributes.items() if ldap.lower() == kind.match.lower()), None
    )
    return list(dict.fromkeys([*attributes, match_name or kind.match]))


def listing_filter(kind: KindSettings) -> str:
    """Every entry of `kind`: those of its first object class."""
    return f"(objectClass={escape_filter_value(kind.object_classes[0])})"


def listing_row(
    kind: KindSettings, fields: Sequence[str], dn: str, raw: Mapping[str, list[Any]]
) -> list[Any]:
    """One listed entry: its DN, then per field its values (one as text, several as a list, none as None).

    The DN is written as this connector writes the DNs it reports (`join_dn`), not as the server
    escaped it (`\\2B` for `+`): a DN listed is then the same text as the one the state holds."""
    _, attributes = to_entry(dn, raw)
    row: list[Any] = [dn_as_written(dn)]  # as the server wrote it if it cannot be read: still an id
    for name in fields:
        values = attributes.get(listed_name(kind, name).lower(), [])
        if name == MEMBERS and kind.member_attribute is not None:
            row.append([dn_as_written(member) for member in values])  # DNs, as the connector writes them
            continue
        row.append(None if not values else values[0] if len(values) == 1 else values)
    return row


def listed_name(kind: KindSettings, name: str) -> str:
    """The LDAP attribute a listed field is read from: a group's members from its member attribute."""
    if name == MEMBERS and kind.member_attribute is not None:
        return kind.member_attribute
    return kind.ldap_name(name)


def dn_as_written(dn: str) -> str:
    """`dn` as this connector writes DNs; as it is if it cannot be read."""
    try:
        return join_dn(split_dn(dn))
    except DnError:
        return dn


def ldap_values(value: Any) -> list[str]:
    """An operation value as LDAP values: None and "" are none, booleans TRUE/FALSE, lists one each."""
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if item is None or item == "":
            continue
        if isinstance(item, bool):
            out.append("TRUE" if item else "FALSE")
        else:
            out.append(str(item))
    return out


def to_entry(dn: str, raw: Mapping[str, list[Any]]) -> Entry:
    """An entry as the server returned it (raw values), with lowercased names and text values."""
    attributes = {}
    for name, values in raw.items():
        if name.lower() == "objectguid":  # AD's binary GUID, as the text `<GUID=...>` names it by
            attributes["objectguid"] = [
                str(uuid.UUID(bytes_le=v)) if isinstance(v, bytes) and len(v) == 16 else str(v)
                for v in values
            ]
            continue
        attributes[name.lower()] = [
            v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values
        ]
    return dn, attributes


def _guid_text(value: Any) -> str:
    return str(uuid.UUID(bytes_le=value)) if isinstance(value, bytes) and len(value) == 16 else str(value)


def match_filter(kind: KindSettings, values: list[str]) -> str:
    """The filter that finds the entries of `kind` whose matching attribute holds one of `values`."""
    terms = "".join(f"({kind.match}={escape_filter_value(v)})" for v in values)
    either = terms if len(values) == 1 else f"(|{terms})"
    return f"(&(objectClass={escape_filter_value(kind.object_classes[0])}){either})"


def read_names(kind: KindSettings, plans: Sequence[Plan]) -> list[str]:
    """The attributes to read back for a diff: those the plans set, the matching and disable ones."""
    names = {"objectClass", kind.match}
    for one in plans:
        names.update(one.desired)
    if kind.disable and kind.disable.attribute:
        names.add(kind.disable.attribute)
    names.update(rdn_values(kind.dn.text.replace("{", "").replace("}", "")))
    return sorted(names)


def entry_changes(
    current: Mapping[str, list[str]], desired: Mapping[str, list[str]], classes: Sequence[str]
) -> dict[str, list[tuple[str, list[str]]]]:
    """Modify changes for the attributes whose values differ, as sets, from `current`."""
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for name, values in desired.items():
        now = current.get(name.lower(), [])
        if sorted(now) == sorted(values):
            continue
        if not values and not now:
            continue
        found[name] = [(ldap3.MODIFY_REPLACE, values)]
    have = {c.lower() for c in current.get("objectclass", [])}
    missing = [c for c in classes if c.lower() not in have]
    if missing and have:
        found["objectClass"] = [(ldap3.MODIFY_ADD, missing)]
    return found


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
