"""The mass-change guard over one cycle: how many objects each attribute changes on, and which updates
go now, wait, or are held for approval because of it (`MassChangeGuard` holds the threshold).

A cycle knows how many objects an attribute changes on only once it has read the whole source, and a
read may be millions of objects long: it cannot keep every update back until the end, nor publish one
before it knows. So an update waits only while some attribute it changes is still at or under the
threshold. The moment an attribute's count passes it, the attribute trips: the updates waiting on it
are held, and so is every later update that changes it. What still waits when the read ends goes out
then (the threshold was never passed). Before an attribute trips, at most the threshold's number of
updates wait on it, so what waits is bounded by the threshold (times the attributes mapped), never by
the size of the read. An update that overwrites or empties no attribute it can see (it only sets values
where there were none, its last applied values are not known, or only a group's members change) never
waits, and in a job that holds too few objects for any
count to pass the threshold nothing waits at all.

Pure: the caller reads the last applied values and makes each update's `Diff`
(`engine.core.changes`); the items counted are the caller's (operations, or a plan's objects), and
`held_as` makes what is kept of one held (the attributes it would send need not be kept).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar

from engine.core.changes import Diff
from engine.core.policies import MassChangeGuard
from engine.model import Hold

T = TypeVar("T")
H = TypeVar("H")


class MassChanges(Generic[T, H]):
    """Counts the updates of one cycle of a job that holds `held` objects, attribute by attribute."""

    def __init__(
        self, guard: MassChangeGuard, held: int, *, held_as: Callable[[T], H], noun: str = "objects"
    ) -> None:
        self.guard = guard
        self._held_as = held_as
        self.held_objects = held
        self.noun = noun
        self.active = guard.trips(held, held)
        """Whether any attribute could trip: if not, every update goes at once."""
        self.changed: Counter[str] = Counter()
        self.emptied: Counter[str] = Counter()
        self.tripped: dict[str, None] = {}
        self.held: list[H] = []
        """The updates held for approval, in the order planned."""
        self._waiting: dict[int, T] = {}
        self._waiting_on: dict[str, list[int]] = {}
        self._keys = itertools.count()

    def add(self, item: T, changes: Diff | None) -> list[T]:
        """Count one update (its `changes`, None when not known); returns what may go now: the update
        itself, or nothing (it waits, or is held)."""
        if not self.active or changes is None:
            return [item]
        # A value set where there was none (a newly mapped attribute, a reference now resolved) damages
        # nothing: what is counted is a value overwritten or emptied.
        counted = [change for change in changes.attributes if change.kind != "added"]
        if not counted:
            return [item]
        names = [change.attribute for change in counted]
        for change in counted:
            self.changed[change.attribute] += 1
            if change.kind == "emptied":
                self.emptied[change.attribute] += 1
        for name in names:
            if name not in self.tripped and self.guard.trips(self.changed[name], self.held_objects):
                self._trip(name)
        if any(name in self.tripped for name in names):
            self.held.append(self._held_as(item))
            return []
        key = next(self._keys)
        self._waiting[key] = item
        for name in names:
            self._waiting_on.setdefault(name, []).append(key)
        return []

    def _trip(self, name: str) -> None:
        self.tripped[name] = None
        for key in self._waiting_on.pop(name, ()):
            item = self._waiting.pop(key, None)  # gone already if another attribute of it tripped
            if item is not None:
                self.held.append(self._held_as(item))

    def finish(self) -> list[T]:
        """The read ended: every update still waiting goes (none of its attributes tripped)."""
        released = list(self._waiting.values())
        self._waiting.clear()
        self._waiting_on.clear()
        return released

    def holds(self) -> tuple[Hold, ...]:
        """One hold per attribute that tripped, its reason with the counts of the whole read."""
        return tuple(
            Hold(
                "mass_change",
                self.guard.describe(
                    name, self.changed[name], self.emptied[name], self.held_objects, self.noun
                ),
            )
            for name in self.tripped
        )
