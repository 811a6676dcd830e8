"""Objects of one job that would share a target entry: which object holds each matching value in a cycle.

Pure. Two objects of a job collide when their values of the job's matching attributes are equal once
normalized (case folded, leading and trailing spaces dropped, inner runs of spaces made one, as a
directory's naming attributes compare) on every matching attribute both have: the target would find
one entry for both, and the second would be linked to the first one's entry, its members and
attributes written over the first's. The object that keeps the value is the one already linked (in the
state); else the first in the source. The other is not sent: it fails with `CollisionError`, which names
both objects, the attribute and the value, and the fixes.

An unchanged object whose matching value is its own source id (the very text the source read, as
most user jobs match on their employee id) is not registered: source ids are unique in a read, and
registering every one (a table as large as the job) made preparing a batch of unchanged objects about
a third slower. So a new object whose id equals an unchanged one's only without case or
with other spaces is not caught here, but by the result consumer when the target links it there.

What a cycle can see: linked objects are registered as a batch is prepared (before any of the batch is
sent), creates as they are planned. While linked objects of the state are still unread, a cycle holds
its creates back until the read is whole, then sends those that still hold their values
(`taken_from`): a linked object read after a create keeps its value. What a cycle cannot see (an
incremental read does not read the unchanged objects; the target may match on what the job does not)
the result consumer catches: it never links a create to an entry another object of the job holds
(`refuse_shared`). A value that is a SelectUniqueValue's candidates (`on_collision: {next:}`)
is no matching value here: the worker picks one that no other entry holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from engine.mapping.functions.errors import MappingError
from queues.contracts import Result


class CollisionError(MappingError):
    """An object whose matching values another object of the job holds: it fails, and is not sent."""


def normalized(value: Any) -> str | None:
    """`value` as matching compares it, or None when it cannot be matched on. Runs of whitespace are
    made one space only in a value with a space (most values, ids, have none: one look, no split)."""
    if type(value) is str:  # most
        key = value.casefold()
        if " " in key:
            key = " ".join(key.split())
        return key or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


class Collisions:
    """Which object holds each normalized matching value this cycle; see the module docstring."""

    __slots__ = ("_creates", "_held", "_keys", "_names", "_unsent", "raw", "single")

    def __init__(self, matching: Sequence[str]) -> None:
        self._names = tuple(matching)
        self._held: tuple[dict[str, str], ...] = tuple({} for _ in self._names)
        """Per matching attribute: normalized value -> the source id that holds it."""
        self.single = self._names[0] if len(self._names) == 1 else None
        self.raw: dict[str, str] | None = {} if self.single is not None else None
        """With one matching attribute (most jobs), until an object is planned or changed: the text
        values of the unchanged objects as they are -> their source ids. The planner puts them here
        inline, a third of the cost of normalizing each, which a cycle in which nothing changed never
        needs; the first object that may collide with them normalizes them all (`_fold`)."""
        self._keys: dict[str, tuple[str | None, ...]] = {}
        """With several matching attributes: each holder's normalized values (to compare them all)."""
        self._creates: set[str] = set()
        """Holders that were not linked (planned as creates): a linked object takes their value."""
        self._unsent: set[str] = set()
        """Linked holders that changed and are not planned yet: an unchanged one takes their value."""

    def _fold(self) -> None:
        raw, self.raw = self.raw, None
        held = self._held[0]
        for value, source_id in (raw or {}).items():
            key = normalized(value)
            if key is not None:
                held.setdefault(key, source_id)

    def linked(self, source_id: str, attributes: Mapping[str, Any], *, changed: bool) -> None:
        """Register an object the state links to an entry, as its batch is prepared (before planning)."""
        names = self._names
        if len(names) == 1:  # most jobs: one matching attribute
            key = normalized(attributes.get(names[0]))
            if key is None:
                return
            if self.raw is not None:
                self._fold()
            held = self._held[0]
            holder = held.get(key)
            if holder is None or holder in self._creates or (not changed and holder in self._unsent):
                held[key] = source_id
                if changed:
                    self._unsent.add(source_id)
            return
        keys = self._normalized(attributes)
        holder = self._holder(source_id, keys)
        if holder is None or holder in self._creates or (not changed and holder in self._unsent):
            self._take(source_id, keys, replace=True)
            if changed:
                self._unsent.add(source_id)

    def check(self, source_id: str, attributes: Mapping[str, Any], *, create: bool) -> None:
        """Before an object is sent: raise `CollisionError` if another object holds its matching values;
        else the object holds them from now on."""
        self._unsent.discard(source_id)
        names = self._names
        if len(names) == 1:
            key = normalized(value := attributes.get(names[0]))
            if key is None:
                return
            if self.raw is not None:
                self._fold()
            held = self._held[0]
            holder = held.setdefault(key, source_id)
            if holder != source_id:
                raise _collision(source_id, holder, names[0], value)
            if create:
                self._creates.add(source_id)
            return
        keys = self._normalized(attributes)
        other = self._holder(source_id, keys)
        if other is not None:
            name, value = next(
                (n, attributes.get(n)) for n, k in zip(names, keys, strict=True) if k is not None
            )
            raise _collision(source_id, other, name, value)
        self._take(source_id, keys, replace=False)
        if create:
            self._creates.add(source_id)

    def taken_from(self, source_id: str, attributes: Mapping[str, Any]) -> CollisionError | None:
        """For a create checked before (`check`): the error naming the linked object that took its
        value since, read after it (the create waited for the whole read), or None if it still holds it."""
        names = self._names
        if len(names) == 1:
            key = normalized(value := attributes.get(names[0]))
            holder = self._held[0].get(key) if key is not None else None
            if holder is None or holder == source_id:
                return None
            return _collision(source_id, holder, names[0], value)
        keys = self._normalized(attributes)
        for name, held, key in zip(names, self._held, keys, strict=True):
            holder = held.get(key) if key is not None else None
            if holder is not None and holder != source_id and holder not in self._creates:
                return _collision(source_id, holder, name, attributes.get(name))
        return None

    def _normalized(self, attributes: Mapping[str, Any]) -> tuple[str | None, ...]:
        return tuple(normalized(attributes.get(name)) for name in self._names)

    def _holder(self, source_id: str, keys: tuple[str | None, ...]) -> str | None:
        """Another object whose values equal `keys` on every attribute both have (and on one at least)."""
        for held, key in zip(self._held, keys, strict=True):
            if key is None:
                continue
            holder = held.get(key)
            if holder is None or holder == source_id:
                continue
            theirs = self._keys.get(holder, ())
            if all(a is None or b is None or a == b for a, b in zip(keys, theirs, strict=True)):
                return holder
        return None

    def _take(self, source_id: str, keys: tuple[str | None, ...], *, replace: bool) -> None:
        """Hold `keys`: in place of their holders if `replace`, else where nobody holds them yet."""
        if all(key is None for key in keys):
            return
        self._keys[source_id] = keys
        for held, key in zip(self._held, keys, strict=True):
            if key is not None:
                if replace:
                    held[key] = source_id
                else:
                    held.setdefault(key, source_id)


def _collision(source_id: str, holder: str, name: str, value: Any) -> CollisionError:
    return CollisionError(
        f"{name} {value!r} is also that of {holder!r} of this job (compared as the target compares "
        f"names: without case, with runs of spaces as one): {source_id!r} would share its entry, so it "
        f"is not sent; rename one of them in the source, or give the mapping of {name} "
        f"`on_collision: {{next: [...]}}` with further candidates, such as "
        f'Join("", [name], " (", [id], ")")'
    )


def linking(results: Sequence[Result]) -> dict[str, set[str]]:
    """The target ids that `results` would link to a new object (a create that succeeded), by job."""
    wanted: dict[str, set[str]] = {}
    for r in results:
        if r.action == "create" and r.status == "succeeded" and r.target_id:
            wanted.setdefault(r.job, set()).add(r.target_id)
    return wanted


def refuse_shared(results: Sequence[Result], holders: Mapping[str, Mapping[str, str]]) -> list[Result]:
    """`results` with each create that would link its object to an entry another object of its job holds
    (`holders`: job -> target id -> source id, as the state has them) failed instead, naming the other:
    the last defence when the planner could not see the collision (the other was sent in an earlier
    batch, read by an earlier cycle, or the target matches on something the job does not). In order: a
    delete that succeeded before frees its entry, a create that links before holds it."""
    held = {job: dict(by_id) for job, by_id in holders.items()}
    out: list[Result] = []
    for r in results:
        if r.status != "succeeded" or not r.target_id:
            out.append(r)
            continue
        mine = held.setdefault(r.job, {})
        if r.action == "delete":
            if mine.get(r.target_id) == r.source_id:
                del mine[r.target_id]
        elif r.action == "create":
            holder = mine.setdefault(r.target_id, r.source_id)
            if holder != r.source_id:
                r = dataclasses.replace(
                    r,
                    status="failed",
                    target_id=None,
                    applied_hash=None,
                    members=None,
                    error_class="CollisionError",
                    error_code="shared",
                    error_message=(
                        f"the target matched {r.source_id!r} to {r.target_id}, the entry of {holder!r} of "
                        "this job: two objects never share an entry, so it is not linked (what the create "
                        "sent may have been written to that entry: a reconciliation finds it "
                        "drifted and sets it right); rename one of them in the source, or give the "
                        "matching attribute's mapping `on_collision: {next: [...]}`"
                    ),
                )
        out.append(r)
    return out
