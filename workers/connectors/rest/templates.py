"""The two template kinds of a REST target: a request's URL and its JSON body, filled from an operation.

A placeholder is `{name}`: an attribute the job maps, or one of `SPECIAL` (the object's `target_id`, its
`source_id`, `enabled`: false for an operation that leaves the account disabled, else true unless the job
maps an `enabled` of its own, and in a group's member calls the `member_id`). `{{` and `}}` stand for
braces. Nothing is evaluated: a placeholder is a name looked up, never an expression.

**URL** (`UrlTemplate`), below the service's `url`, such as `/users/{target_id}` or `/users?login={login}`:
each value is percent-encoded whole (`/`, `?`, `#`, `%`, `&`, quotes and spaces included; text as UTF-8),
so a value never changes the path or adds a query parameter. `true`/`false` for booleans, numbers as
written. A placeholder without a value (absent, None, empty text) or with a list or mapping refuses the
request (`Unfilled`): a URL is never sent with a hole in it.

**Body** (`BodyTemplate`), a JSON structure written in YAML. A string leaf that is exactly `"{name}"`
takes the value with its JSON type (a number stays a number, a list a list, None is null); a string
with placeholders among other text takes their values as text (None as empty); anything else is sent
as written. A leaf whose placeholders name an attribute the operation does not carry is left out, as is
one naming `target_id` when there is none; so is, in an update that sends only what changed, a leaf
whose attributes all kept their values (a leaf without attributes is always sent); an object or a list
left empty by this is left out too (the whole body is then `{}`). No body template
means the attributes themselves, as a flat JSON object.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

ENABLED: Final = "enabled"
SPECIAL: Final = frozenset({"target_id", "source_id", "member_id", ENABLED})
_PART: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
_URL_SAFE: Final = "/?&=:@!$'()*+,;%-._~"  # what the literal text of a URL template may hold as is


class Unfilled(ValueError):
    """A URL template's placeholder that the operation gives no usable value for."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{{{name}}} {why}")
        self.name = name


def _parts(text: str) -> list[str | tuple[str]]:
    """Literal text (str) and placeholders (a 1-tuple of the name); `ValueError` for a stray brace."""
    parts: list[str | tuple[str]] = []
    for found in _PART.finditer(text):
        token = found.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif found.group(1) is not None:
            name = found.group(1).strip()
            if not _NAME.fullmatch(name):
                raise ValueError(f"{token!r} in {text!r} is not a placeholder: write {{attribute}}")
            parts.append((name,))
        elif token in ("{", "}"):
            raise ValueError(f"a lone {token!r} in {text!r}: write {token * 2} for the brace itself")
        else:
            parts.append(token)
    return parts


def _names(parts: list[str | tuple[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p[0] for p in parts if isinstance(p, tuple)))


def as_text(value: Any) -> str:
    """A scalar as it stands in a URL or a string: JSON's `true`/`false`, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class UrlTemplate:
    """A request's path and query below the service's URL; see the module docstring."""

    text: str
    parts: tuple[str | tuple[str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return _names(list(self.parts))

    def render(self, values: Mapping[str, Any]) -> tuple[str, str]:
        """The path and the query (both encoded); `Unfilled` for a placeholder without a usable value."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(quote(part, safe=_URL_SAFE))
                continue
            value = values.get(part[0])
            if value is None or value == "":
                raise Unfilled(part[0], "has no value")
            if isinstance(value, list | dict):
                raise Unfilled(part[0], f"holds a {type(value).__name__}, which a URL cannot carry")
            out.append(quote(as_text(value), safe=""))
        path, _, query = "".join(out).partition("?")
        return path, query


def parse_url_template(text: str) -> UrlTemplate:
    """`text` as a URL template; `ValueError` if it is not one."""
    if not text.startswith("/"):
        raise ValueError(f"{text!r} must start with / (it is below the service's url)")
    if "#" in text:
        raise ValueError(f"{text!r} holds a #: a fragment is never sent")
    return UrlTemplate(text, tuple(_parts(text)))


class _Dropped:
    """A leaf left out of a body."""


_DROPPED: Final = _Dropped()


@dataclass(frozen=True, slots=True)
class BodyTemplate:
    """A request's JSON body; see the module docstring."""

    structure: Any  # dicts, lists and leaves; a string leaf with placeholders is a `_Leaf`

    @property
    def names(self) -> tuple[str, ...]:
        found: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, _Leaf):
                found.extend(node.names)
            elif isinstance(node, dict):
                for child in node.values():
                    walk(child)
            elif isinstance(node, list):
                for child in node:
                    walk(child)

        walk(self.structure)
        return tuple(dict.fromkeys(found))

    def render(self, values: Mapping[str, Any], *, changed: Collection[str] | None = None) -> Any:
        """The body for `values` (attributes and `SPECIAL` names); with `changed`, only the leaves that
        name one of those attributes, or none."""

        def walk(node: Any) -> Any:
            if isinstance(node, _Leaf):
                return node.render(values, changed)
            if isinstance(node, dict):
                kept = {key: walk(child) for key, child in node.items()}
                out = {key: child for key, child in kept.items() if child is not _DROPPED}
                return _DROPPED if node and not out else out
            if isinstance(node, list):
                items = [item for item in (walk(child) for child in node) if item is not _DROPPED]
                return _DROPPED if node and not items else items
            return node

        body = walk(self.structure)
        return {} if body is _DROPPED else body


@dataclass(frozen=True, slots=True)
class _Leaf:
    parts: tuple[str | tuple[str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return _names(list(self.parts))

    def render(self, values: Mapping[str, Any], changed: Collection[str] | None) -> Any:
        attributes = [name for name in self.names if name not in SPECIAL]
        if any(name not in values for name in self.names):
            return _DROPPED
        if changed is not None and attributes and not any(name in changed for name in attributes):
            return _DROPPED
        if len(self.parts) == 1 and isinstance(self.parts[0], tuple):
            return values[self.parts[0][0]]
        return "".join(
            part if isinstance(part, str) else ("" if values[part[0]] is None else as_text(values[part[0]]))
            for part in self.parts
        )


def parse_body_template(raw: Any) -> BodyTemplate:
    """A YAML structure as a body template; `ValueError` naming a bad string leaf."""

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            parts = _parts(node)
            if not _names(parts):
                return "".join(p for p in parts if isinstance(p, str))
            return _Leaf(tuple(parts))
        if isinstance(node, dict):
            return {str(key): walk(child) for key, child in node.items()}
        if isinstance(node, list):
            return [walk(child) for child in node]
        if node is None or isinstance(node, bool | int | float):
            return node
        raise ValueError(f"{type(node).__name__} {node!r} cannot be sent as JSON")

    return BodyTemplate(walk(raw))
