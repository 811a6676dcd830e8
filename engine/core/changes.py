"""What an operation changes, attribute by attribute: the last applied values against the desired ones.

The last applied values come from the provisioning log (`StateStore.applied_attributes`), which keeps
the attributes each operation sent as JSON with redacted values as `***`. The desired values are
compared in that same form (`as_logged`), so a value that only looks different in Python (a tuple, a
`SelectUniqueValue` candidate) is not a change, and a redacted one never shows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

REDACTED = "***"

ChangeKind = Literal["added", "changed", "emptied"]


def _unencodable(value: object) -> object:
    wire = getattr(value, "wire", None)  # SelectUniqueValue candidates
    return wire() if wire is not None else str(value)


def log_text(attributes: Mapping[str, Any], hidden: Collection[str] = ()) -> str:
    """Attributes as the provisioning log keeps them: JSON, the values of `hidden` as `***`."""
    if hidden:
        attributes = {k: REDACTED if k in hidden else v for k, v in attributes.items()}
    return orjson.dumps(attributes, default=_unencodable).decode()


def as_logged(attributes: Mapping[str, Any], hidden: Collection[str] = ()) -> dict[str, Any]:
    """Attributes as they read back from the provisioning log (what `diff` compares)."""
    loaded: dict[str, Any] = orjson.loads(log_text(attributes, hidden))
    return loaded


def is_empty(value: Any) -> bool:
    """None, "" and [] all leave an attribute without a value."""
    return value is None or value == "" or value == []


@dataclass(frozen=True, slots=True)
class Change:
    """One attribute that an operation changes: from `old` (None: not set) to `new`."""

    attribute: str
    kind: ChangeKind
    old: Any
    new: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Diff:
    """What one operation changes: attributes, and a group's members (their target ids)."""

    attributes: tuple[Change, ...] = ()
    members_added: tuple[str, ...] = ()
    members_removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.attributes or self.members_added or self.members_removed)

    def changed(self) -> frozenset[str]:
        """The names of the attributes it changes."""
        return frozenset(change.attribute for change in self.attributes)


def diff(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    members_add: Sequence[str] = (),
    members_remove: Sequence[str] = (),
) -> Diff:
    """The changes from `old` (the last applied attributes; None for none) to `new`, both as logged.

    Only the attributes `new` holds count: an update sends those and leaves the others alone (a
    create-only attribute, one a mapping omitted). An attribute that goes from one empty value to
    another is not a change."""
    changes = []
    for name, value in new.items():
        before = old.get(name) if old is not None else None
        if before == value and type(before) is type(value):
            continue
        if is_empty(value):
            if is_empty(before):
                continue
            kind: ChangeKind = "emptied"
        else:
            kind = "added" if is_empty(before) else "changed"
        changes.append(Change(name, kind, before, value))
    return Diff(
        attributes=tuple(changes), members_added=tuple(members_add), members_removed=tuple(members_remove)
    )
