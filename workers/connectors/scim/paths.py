"""Attribute paths into SCIM resources: the flat names operations use, read as places in a resource.

A name is written as a SCIM PATCH path would be:

* `userName`, `active`, `title`: a core attribute; `name.givenName`: a sub-attribute;
* `emails[type eq "work"].value` (or just `emails[type eq "work"]`, meaning its `value`): the entry of a
  multi-valued attribute with that `type`; `emails` with a list value replaces the whole attribute;
* `enterprise.department`, `enterprise.manager.value`, or the full URN form
  `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department` (any extension URN works).

`literal` writes a filter's comparison value; `field_of` and `entry_of` read a resource as servers
answer it (names in any case, entries picked by `type`).
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
        if self.type is not None:
            return f'{self.prefix}{self.name}[type eq "{self.type}" and {self.sub} eq {literal(value)}]'
        return f"{self.scim()} eq {literal(value)}"

    def get(self, resource: Mapping[str, Any]) -> Any:
        container = field_of(resource, self.schema) if self.schema else resource
        value = field_of(container, self.name) if isinstance(container, Mapping) else None
        if self.type is not None:
            value = entry_of(value, self.type)
        return field_of(value, self.sub) if self.sub and isinstance(value, Mapping) else value

    def set(self, resource: dict[str, Any], value: Any) -> None:
        """Write `value` into `resource` (None removes it), adding the extension to `schemas`."""
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
        _put(entry, self.sub or "value", value)


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
    kind = kind.lower()
    return next((e for e in entries if isinstance(e, dict) and str(e.get("type", "")).lower() == kind), None)


def _put(container: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        container.pop(key, None)
    else:
        container[key] = value
