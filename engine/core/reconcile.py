"""Reconciliation: what the target holds against what the job expects, object by object.

Pure: `Reconciliation` takes a listing of the target (rows of id and values, as a worker lists them),
the job's state entries and each mapped source object, and classifies every object into one
situation, as midPoint does:

* `in_step`: linked, found, every compared attribute as expected;
* `drifted`: linked, found, some attribute differs (each with the value expected and the one found);
* `missing`: linked in the state, gone from the target;
* `unlinked`: in the target, matched to a source object by the job's matching attributes, with no link;
* `unprovisioned`: in the source, never provisioned and not in the target (the next cycle creates it);
* `orphan`: in the target with no source object: created outside Roster, or left behind by one that
  left the source and was not deprovisioned;
* `deprovisioned`: in the target, linked to an object that left the source and was disabled, as the
  job's policy wants;
* `unknown`: the object's mappings failed, so what it should hold is not known; its target object is
  left alone (never an orphan).

A group's members are compared as sets of target ids (ids in any case), counting only members that the
member job provisioned: one someone else added is theirs, and left alone.

Values are compared as a target stores them: empty (None, "", an empty list) is one value, a list of
one is that one, lists compare as sets, booleans and numbers as their text (LDAP answers `TRUE` and
`42`, SQL `1`). Text compares exactly: a value changed in case is drift.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, Literal

from common.unique import unique_candidates
from engine.core.changes import REDACTED
from engine.core.links import Found, TargetIndex
from engine.model import DISABLED, StateEntry
from queues.contracts import MEMBERS

Situation = Literal[
    "in_step", "drifted", "missing", "unlinked", "unprovisioned", "orphan", "deprovisioned", "unknown"
]
SITUATIONS: Final[tuple[Situation, ...]] = (
    "in_step",
    "drifted",
    "missing",
    "unlinked",
    "unprovisioned",
    "orphan",
    "deprovisioned",
    "unknown",
)


ORPHAN_PREFIX = "orphan:"
"""The source id of an orphan's operation (`orphan:` and its target id): it has no source object. Once
disabled, its state entry links its target object, which later reconciliations then find deprovisioned,
not orphaned; a cycle never deprovisions it again (`Planner.unseen`)."""


@dataclass(frozen=True, slots=True)
class Drift:
    """One attribute that differs: what the job expects, what the target holds."""

    attribute: str
    expected: Any
    found: Any

    def __str__(self) -> str:
        if self.attribute == MEMBERS:  # expected: members not in the target; found: those not expected
            parts = [f"not in the target: {shown(self.expected)}"] if self.expected else []
            parts += [f"not expected: {shown(self.found)}"] if self.found else []
            return f"members: {', '.join(parts)}"
        return f"{self.attribute}: expected {shown(self.expected)}, found {shown(self.found)}"


@dataclass(frozen=True, slots=True)
class Finding:
    """What reconciliation found of one object; `source_id` None for an orphan, `target_id` None for
    an object that is not in the target."""

    situation: Situation
    source_id: str | None
    target_id: str | None
    drift: tuple[Drift, ...] = ()

    def describe(self) -> str:
        """The finding in words, for the log and the report."""
        if self.situation == "drifted":
            return "drifted: " + "; ".join(str(d) for d in self.drift)
        return _WORDS[self.situation]


_WORDS: Final[dict[str, str]] = {
    "in_step": "in step: the target holds what the job expects",
    "missing": "missing: linked in the state, but gone from the target",
    "unlinked": "unlinked: the target holds it (matched by the job's matching attributes) with no link",
    "unprovisioned": (
        "unprovisioned: in the source, not in the target nor the state (the next cycle creates it)"
    ),
    "orphan": "orphan: in the target, with no source object",
    "deprovisioned": "deprovisioned: left the source and was disabled, as the job's policy wants",
    "unknown": "unknown: its mappings failed, so what it should hold is not known; left alone",
}


def comparable(value: Any) -> Any:
    """A value as compared: see the module docstring."""
    if isinstance(value, list | tuple | set | frozenset):
        items = {c for v in value if (c := comparable(v)) is not None}
        if not items:
            return None
        return next(iter(items)) if len(items) == 1 else frozenset(items)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        lowered = value.lower()
        return lowered if lowered in ("true", "false") else value
    return str(value)


class Reconciliation:
    """Classifies the objects of one job against one listing of its target.

    Call `expected` for each source object in scope (or `unreadable` when its mappings failed), then
    `leftovers` once for the target objects no source object claimed.
    """

    def __init__(
        self,
        fields: Sequence[str],
        rows: Iterable[Sequence[Any]],
        compared: Sequence[str],
        entries: Mapping[str, StateEntry],
        matching: Sequence[str],
        managed: Collection[str] | None = None,
        hidden: Collection[str] = (),
    ) -> None:
        self.fields = tuple(fields)
        self.rows: dict[str, Sequence[Any]] = {}
        for row in rows:
            self.rows[str(row[0])] = row
        self._folded: dict[str, str] | None = None
        self._position = {name: i + 1 for i, name in enumerate(self.fields)}
        self.compared = tuple(name for name in compared if name in self._position)
        """The attributes compared: those asked that the listing carries."""
        # Most objects are in step with every value the same text: both sides read in C, compared at once.
        plain = [name for name in self.compared if name != MEMBERS]
        self._listed_values = itemgetter(*(self._position[n] for n in plain)) if plain else None
        self._plain = tuple(plain)
        self._members_compared = MEMBERS in self.compared
        self.entries = entries
        self._hidden = frozenset(hidden)
        """Attributes whose values never reach a log or a report (their expression uses Redact)."""
        self._managed = None if managed is None else {target_id.casefold() for target_id in managed}
        """For a group job: the target ids of the member job's objects. A member the group holds that is
        not one of them was added by someone else, and is left alone (`engine.core.membership`)."""
        self._matching = [name for name in matching if name in self._position]
        self._index: TargetIndex | None = None
        self._claimed: set[str] = set()

    def expected(
        self, source_id: str, attributes: Mapping[str, Any], matching: Sequence[Sequence[Any]]
    ) -> Finding:
        """The finding for one source object in scope, whose mapped attributes are `attributes`."""
        entry = self.entries.get(source_id)
        if entry is not None and entry.target_id is not None:
            row = self._take(entry.target_id)
            if row is None:
                return Finding("missing", source_id, entry.target_id)
            drift = self._drift(attributes, row)
            return Finding("drifted" if drift else "in_step", source_id, str(row[0]), drift)
        link = self._target_index().link(matching, attributes)
        if isinstance(link, Found) and link.target_id not in self._claimed:
            row = self._take(link.target_id)
            if row is not None:
                return Finding("unlinked", source_id, str(row[0]), self._drift(attributes, row))
        return Finding("unprovisioned", source_id, None)

    def unreadable(self, source_id: str) -> Finding:
        """The finding for a source object whose mappings failed: its target object is claimed (never
        an orphan) and left alone."""
        entry = self.entries.get(source_id)
        target_id = None
        if entry is not None and entry.target_id is not None:
            row = self._take(entry.target_id)
            target_id = str(row[0]) if row is not None else entry.target_id
        return Finding("unknown", source_id, target_id)

    def leftovers(self) -> Iterator[Finding]:
        """The target objects no source object claimed: deprovisioned as the policy wants, or orphans.
        Call once, after every source object."""
        linked = {}
        for source_id, entry in self.entries.items():
            if entry.target_id is not None:
                linked[entry.target_id.casefold()] = (source_id, entry)
        for target_id in self.rows:
            if target_id in self._claimed:
                continue
            owner = linked.get(target_id.casefold())
            if owner is not None and owner[1].state == DISABLED:
                yield Finding("deprovisioned", owner[0], target_id)
            else:
                yield Finding("orphan", None if owner is None else owner[0], target_id)

    def _target_index(self) -> TargetIndex:
        """The listing by matching value, made when a source object without a link first asks."""
        if self._index is None:
            position = self._position
            matching = self._matching
            self._index = TargetIndex(
                matching, ([r[0], *(r[position[n]] for n in matching)] for r in self.rows.values())
            )
        return self._index

    def _take(self, target_id: str) -> Sequence[Any] | None:
        key: str | None = target_id
        if target_id not in self.rows:  # the state may hold an id in another case than the target's
            if self._folded is None:
                self._folded = {listed.casefold(): listed for listed in self.rows}
            key = self._folded.get(target_id.casefold())
        if key is None or key in self._claimed:
            return None
        self._claimed.add(key)
        return self.rows[key]

    def _drift(self, attributes: Mapping[str, Any], row: Sequence[Any]) -> tuple[Drift, ...]:
        if self._listed_values is not None and not self._members_compared:
            listed = self._listed_values(row)
            wanted = tuple(map(attributes.get, self._plain))
            if (listed if len(wanted) > 1 else (listed,)) == wanted:
                return ()
        position = self._position
        drift = []
        for name in self.compared:
            expected = attributes.get(name)
            found = row[position[name]]
            if name == MEMBERS and self._managed is not None:
                members = self._members(expected, found)
                if members is not None:
                    drift.append(members)
                continue
            if expected == found and type(expected) is type(found):
                continue  # most values: the same text
            candidates = unique_candidates(expected)  # `on_collision: {next:}`: any one is in step
            if candidates is not None and comparable(found) in {comparable(c) for c in candidates}:
                continue
            if comparable(expected) != comparable(found):
                if name in self._hidden:  # a secret: that it differs is said, never its values
                    expected, found = REDACTED, REDACTED
                drift.append(Drift(name, expected, found))
        return tuple(drift)

    def _members(self, expected: Any, found: Any) -> Drift | None:
        """The members a group lacks and those it holds against the source (of the member job's)."""
        managed = self._managed or set()
        wanted = {target_id.casefold(): target_id for target_id in expected or ()}
        held = {
            m.casefold(): m for m in (found if isinstance(found, list) else [found]) if isinstance(m, str)
        }
        lacking = sorted(t for key, t in wanted.items() if key not in held)
        extra = sorted(m for key, m in held.items() if key not in wanted and key in managed)
        return Drift(MEMBERS, lacking, extra) if lacking or extra else None


def shown(value: Any) -> str:
    """A value as a finding or a plan says it: `(empty)`, or its repr cut to 80 characters."""
    if value is None or value == "" or value == []:
        return "(empty)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
