"""The index of a target's listing: which object holds a matching value, and what a create makes of it.

Pure: `TargetIndex` is built from a listing's rows (id, then one value per listed attribute) and
answers for one planned create, asking its matching values in precedence order as a connector's
searches would, stopping at the first attribute that any object holds:

* `Found(target_id)`: exactly one object holds that value, exactly: link the create to it;
* `Absent(names)`: no object holds any of the create's values of the listed attributes `names`;
* None: several objects hold it, or one holds it only when case is ignored: the listing does not
  decide, and the connector searches as it would without one (and reports duplicates if so).

Values are compared with case folded when saying *absent*, so that a value that a case-insensitive
target holds in another case never looks absent (a 409, a duplicate); and exactly when saying *found*,
so that a case-sensitive target's other object is never linked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from common.peers.scim_schemas import IDENTIFIERS


@dataclass(frozen=True, slots=True)
class Found:
    target_id: str


@dataclass(frozen=True, slots=True)
class Absent:
    names: list[str]


class TargetIndex:
    """Matching value -> target ids, per listed attribute; see the module docstring."""

    def __init__(self, fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.fields = tuple(fields)
        self._by_field: dict[str, dict[str, list[tuple[str, str]]]] = {name: {} for name in self.fields}
        self.objects = 0
        columns = [self._by_field[name] for name in self.fields]
        self._rows: dict[str, Sequence[Any]] = {}
        for row in rows:
            self.objects += 1
            target_id = row[0]
            self._rows[target_id] = row
            for column, value in zip(columns, row[1:], strict=True):
                for one in value if isinstance(value, list) else (value,):
                    if _usable(one):
                        column.setdefault(_folded(one), []).append((target_id, str(one)))

    def __len__(self) -> int:
        return self.objects

    def link(self, matching: Sequence[Sequence[Any]], attributes: Mapping[str, Any]) -> Found | Absent | None:
        """What a create with `matching` pairs (precedence order) and `attributes` makes of the listing.

        The create's values of the listed attributes beyond its matching pairs count too (the target
        may match on more than the job does). A matching attribute that was not listed leaves it to
        the connector (None)."""
        keys: dict[str, Any] = {}
        for name, value in matching:
            if name not in self._by_field:
                return None
            keys.setdefault(name, value)
        for name in self.fields:
            if name not in keys and _usable(value := attributes.get(name)):
                keys[name] = value
        asked: list[str] = []
        for name, value in keys.items():
            if not _usable(value):
                continue
            hits = self._by_field[name].get(_folded(value))
            if not hits:
                asked.append(name)
                continue
            ids = {target_id for target_id, _ in hits}
            if len(ids) == 1 and self._someone_else(hits[0][0], asked, keys):
                asked.append(name)  # theirs: held by another object (see `_someone_else`)
                continue
            if len(ids) == 1 and any(held == str(value) for _, held in hits):
                return Found(hits[0][0])
            return None
        return Absent(asked) if asked else None

    def _someone_else(self, target_id: str, earlier: list[str], keys: Mapping[str, Any]) -> bool:
        """Whether the object holds another identifier (`IDENTIFIERS`) than the create's, asked before
        (of higher precedence): two groups named alike but told apart by their externalId are two
        objects, and a create is never linked to the other one's (the SCIM connector checks the same
        when it searches). A name asked before (a user's userName) is not an identifier: a user found
        by its externalId under another userName is the same user, renamed."""
        row = self._rows[target_id]
        for name in earlier:
            if name.lower() not in IDENTIFIERS:
                continue
            held = row[self.fields.index(name) + 1]
            values = held if isinstance(held, list) else [held]
            if any(_usable(v) for v in values) and _folded(keys[name]) not in {
                _folded(v) for v in values if _usable(v)
            }:
                return True
        return False


def _usable(value: Any) -> bool:
    """A value that can be matched on: a scalar, not empty (a unique-value candidate list is a dict)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


def _folded(value: Any) -> str:
    return str(value).casefold()
