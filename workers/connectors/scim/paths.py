"""Attribute paths into SCIM resources: the flat names operations use, read as places in a resource.

A name is written as a SCIM PATCH path would be:

* `userName`, `active`, `title`: a core attribute; `name.givenName`: a sub-attribute;
* `emails[type eq "work"].value` (or just `emails[type eq "work"]`, meaning its `value`): the entry of a
  multi-valued attribute with that `type`; `emails` with a list value replaces the whole attribute;
* `enterprise.department`, `enterprise.manager.value`, or the full URN form
  `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department` (any extension URN works).

`literal` writes a filter's comparison value; `field_of` and `entry_of` read a resource as servers
answer it (names in any case, entries picked by `type`).

**Empty entries.** An entry of a multi-valued attribute that holds nothing (`{"type": "work"}`) is never
written: `blank` says which values count as none (None, "", an empty list or object), `empty_entry` which
entries hold nothing (no `value` for emails, phoneNumbers, ims, photos, x509Certificates, entitlements and
roles; no sub-attribute at all beside `type` and `primary` for addresses and any other), and
`overlay` writes paths into a resource and then drops the entries that it left empty.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from common.errors import PermanentError
from common.peers.scim_schemas import ENTERPRISE_SCHEMA

# Multi-valued attributes whose entries mean their `value` (RFC 7643 §4.1.2, §4.1.3): without one, an
# entry is empty whatever else it holds. Other entries (addresses) are empty when every sub-attribute is.
_VALUE_KEYED: Final = frozenset(
    name.lower()
    for name in ("emails", "phoneNumbers", "ims", "photos", "x509Certificates", "entitlements", "roles")
)
_ENTRY_MARKERS: Final = frozenset({"type", "primary"})

_PATH_RE: Final = re.compile(
    r'(?P<name>[A-Za-z][\w-]*)(?:\[type eq "(?P<type>[^"\\]*)"\])?(?:\.(?P<sub>\$?[A-Za-z][\w-]*))?'
)


@dataclass(frozen=True, slots=True)
class AttrPath:
    """A flat attribute name read as a place in a SCIM resource (see the module docstring)."""

    name: str
    schema: str | None = None  # an extension URN; None for the core schema
    type: str | None = None  # selects the entry of a multi-valued attribute
    sub: str | None = None

    @property
    def prefix(self) -> str:
        return f"{self.schema}:" if self.schema else ""

    def scim(self) -> str:
        """The path as PATCH and filters write it."""
        selector = f'[type eq "{self.type}"]' if self.type is not None else ""
        return f"{self.prefix}{self.name}{selector}{'.' + self.sub if self.sub else ''}"

    def filter(self, value: Any) -> str:
        """A filter for the objects holding `value` here: `attr eq v`, or for a typed entry
        `emails.value eq v` (any entry: check `holds` on the answers). Never an `and` inside brackets
        (`emails[type eq "work" and value eq v]`): services that read only `eq` and `and`, such as AWS
        IAM Identity Center, refuse it, while `attr.sub eq v` is a plain attribute path (RFC 7644
        §3.4.2.2)."""
        if self.type is not None:
            return f"{self.prefix}{self.name}.{self.sub} eq {literal(value)}"
        return f"{self.scim()} eq {literal(value)}"

    def holds(self, resource: Mapping[str, Any], value: Any) -> bool:
        """Whether `resource` holds `value` here (for a typed entry: in an entry of that type), compared
        as `same_key` does."""
        if self.type is None:
            return same_key(self.get(resource), value)
        container = self._container_of(resource)
        entries = field_of(container, self.name) if isinstance(container, Mapping) else None
        return isinstance(entries, list) and any(
            _typed(e, self.type) and same_key(field_of(e, self.sub), value) for e in entries
        )

    def get(self, resource: Mapping[str, Any]) -> Any:
        container = field_of(resource, self.schema) if self.schema else resource
        value = field_of(container, self.name) if isinstance(container, Mapping) else None
        if self.type is not None:
            value = entry_of(value, self.type)
        return field_of(value, self.sub) if self.sub and isinstance(value, Mapping) else value

    def set(self, resource: dict[str, Any], value: Any) -> None:
        """Write `value` into `resource` (None removes it), adding the extension to `schemas`.

        A blank value for an entry of a multi-valued attribute that has none creates no entry; an entry
        left empty stays until `drop_if_empty` (see `overlay`), so the order of the paths does not matter.
        """
        if self.type is not None and blank(value):
            if entry_of(field_of(self._container_of(resource), self.name), self.type) is None:
                return
        container = resource
        if self.schema:
            container = resource.setdefault(self.schema, {})
            schemas = resource.setdefault("schemas", [])
            if self.schema not in schemas:
                schemas.append(self.schema)
        if self.type is None and self.sub is None:
            _put(container, self.name, value)
            return
        if self.type is None:
            _put(container.setdefault(self.name, {}), self.sub or "", value)
            return
        entries = container.setdefault(self.name, [])
        entry = entry_of(entries, self.type)
        if entry is None:
            entry = {"type": self.type}
            entries.append(entry)
        _put(entry, self.sub or "value", None if blank(value) else value)

    def drop_if_empty(self, resource: dict[str, Any]) -> None:
        """Remove the entry this path selects when it holds nothing, and the attribute if none is left."""
        if self.type is None:
            return
        container = self._container_of(resource)
        if not isinstance(container, dict):
            return
        key = next((k for k in container if k.lower() == self.name.lower()), None)
        entries = container.get(key) if key is not None else None
        if not isinstance(entries, list):
            return
        kept = [e for e in entries if not (_typed(e, self.type) and empty_entry(self.name, e))]
        if len(kept) == len(entries):
            return
        if kept:
            container[key] = kept
        else:
            del container[key]

    def _container_of(self, resource: Mapping[str, Any]) -> Any:
        return field_of(resource, self.schema) if self.schema else resource


def overlay(resource: dict[str, Any], wanted: Mapping[AttrPath, Any]) -> dict[str, Any]:
    """Write every path of `wanted` into `resource`, then drop the entries left holding nothing."""
    for path, value in wanted.items():
        path.set(resource, value)
    for path in wanted:
        path.drop_if_empty(resource)
    return resource


def blank(value: Any) -> bool:
    """Whether `value` amounts to no value: None, "", an empty list or an empty object."""
    return value is None or (isinstance(value, str | list | dict) and not value)


def empty_entry(name: str, entry: Mapping[str, Any]) -> bool:
    """Whether an entry of the multi-valued attribute `name` holds nothing worth sending."""
    if name.lower() in _VALUE_KEYED:
        return blank(field_of(entry, "value"))
    return all(blank(v) for k, v in entry.items() if k.lower() not in _ENTRY_MARKERS)


def clean_entries(name: str, value: Any) -> Any:
    """A whole multi-valued attribute without its blank sub-attributes and empty entries (None if none
    is left); any other value as it is."""
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        return value
    entries = [{k: v for k, v in e.items() if not blank(v)} for e in value]
    kept = [e for e in entries if not empty_entry(name, e)]
    return kept or None


@functools.lru_cache(maxsize=4096)
def parse_path(text: str) -> AttrPath:
    """Read a flat attribute name, or raise ValueError saying what is wrong with it."""
    schema = None
    rest = text
    if text.startswith("enterprise."):
        schema, rest = ENTERPRISE_SCHEMA, text.removeprefix("enterprise.")
    elif text[:4].lower() == "urn:":
        # The attribute follows the URN's last colon; a [type eq "..."] selector may hold colons too.
        end = text.split("[", 1)[0].rfind(":")
        schema, rest = text[:end], text[end + 1 :]
    found = _PATH_RE.fullmatch(rest)
    if not found:
        raise ValueError(
            f"{text!r} is not a SCIM attribute path; write name, name.sub, "
            'name[type eq "work"].sub, enterprise.name or urn:...:name'
        )
    kind = found["type"]
    return AttrPath(found["name"], schema, kind, found["sub"] or ("value" if kind is not None else None))


def attr_path(name: str) -> AttrPath:
    """`parse_path` for an operation's attribute name: a name it cannot read is a `PermanentError`."""
    try:
        return parse_path(name)
    except ValueError as exc:
        raise PermanentError(str(exc)) from None


def literal(value: Any) -> str:
    """A filter comparison value: strings as JSON strings (RFC 7644 §3.4.2.2), so `"` and `\\` are escaped."""
    if value is None or isinstance(value, bool | int | float | str):
        return orjson.dumps(value).decode()
    raise PermanentError(f"a {type(value).__name__} cannot be a matching value")


def same_key(current: Any, wanted: Any) -> bool:
    """Whether a value the target holds is `wanted`, as a matching key."""
    if isinstance(current, str) and isinstance(wanted, str):
        return current.casefold() == wanted.casefold()  # the server may compare without case
    return bool(current == wanted)


def field_of(container: Any, name: str | None) -> Any:
    """Attribute names are case-insensitive (RFC 7643 §2.1); servers answer in their own case."""
    if not isinstance(container, Mapping) or name is None:
        return None
    if name in container:
        return container[name]
    lowered = name.lower()
    return next((v for k, v in container.items() if k.lower() == lowered), None)


def entry_of(entries: Any, kind: str) -> Any:
    """The entry of a multi-valued attribute whose `type` is `kind` (in any case), or None."""
    if not isinstance(entries, list):
        return None
    return next((e for e in entries if _typed(e, kind)), None)


def _typed(entry: Any, kind: str) -> bool:
    return isinstance(entry, dict) and str(entry.get("type", "")).lower() == kind.lower()


def _put(container: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        container.pop(key, None)
    else:
        container[key] = value
