"""The planner: compares mapped source objects with the state and decides each object's operation.

Pure: it takes plain values (the state snapshot, mapped attributes) and returns `Operation`s, so it is
tested without a loop, a broker or a database. The cycle runner feeds it and publishes what it returns.

The snapshot holds a fingerprint per object, not its entry (see `engine.core.snapshot`): `prepare`
maps a batch ahead, settles the objects that are unchanged (most of them) and names the objects whose
entries the runner loads before planning the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Set
from typing import Any

from engine.core.collisions import Collisions
from engine.core.dates import DateSettings, next_boundary
from engine.core.membership import PENDING_PREFIX, MemberPlan, Membership
from engine.core.reconcile import ORPHAN_PREFIX
from engine.core.references import References
from engine.core.rehire import Departure, RehireSettings
from engine.core.scoping import ScopingFilter
from engine.core.snapshot import (
    Snapshot,
    desired_fingerprint,
    digest_fingerprint,
    encode_hash,
    fingerprint,
)
from engine.mapping.base import Mapper
from engine.mapping.functions.errors import MappingError
from engine.model import DISABLED, Deprovision, Mapped, SourceObject, StateEntry
from queues.contracts import Action, Operation, Result

PENDING_IDS_KEPT = 10_000
"""Pending member ids a cycle keeps to ask about: memory stays bounded however many are pending."""
DEFERRED_KEPT = 10_000
"""Objects skipped for an operation in flight that a cycle keeps, to plan them again once it ends."""


def plan_action(entry: StateEntry | None, desired_hash: str, *, disabled: bool = False) -> Action | None:
    """The operation that brings the target from `entry` to the desired attributes, if any (held
    `disabled`, before a start date: a create or update then leaves it disabled)."""
    if entry is None:
        return "create"
    if entry.applied_hash != desired_hash:
        return "update"
    if disabled:
        return None if entry.state == DISABLED else "disable"
    return "update" if entry.state == DISABLED else None  # an update of a disabled object re-enables it


def plan_missing(
    entry: StateEntry, policy: Deprovision, *, now: float | None = None, delete_after_s: float | None = None
) -> Action | None:
    """The operation for an object that left the source (or its scope), per the job's policy: with a
    grace (`delete_after_s`), a disabled one is deleted once it has been disabled that long at `now`."""
    if policy == "delete":
        return "delete"
    if policy == "disable" and entry.state != DISABLED:
        return "disable"
    if policy == "disable" and delete_after_s is not None and entry.disabled_at is not None:
        if (time.time() if now is None else now) >= entry.disabled_at + delete_after_s:
            return "delete"
    return None


class Planner:
    """Plans one cycle of one job against a snapshot of its state taken at the cycle's start.

    `in_flight` holds the source ids with an unfinished operation: they are not planned again, only
    remembered in `deferred` so that the caller can plan them once their result is in. A group job
    passes `membership`, which resolves each group's members to target ids (see `engine.core.membership`).
    """

    def __init__(
        self,
        *,
        job: str,
        target: str,
        object_type: str,
        cycle_id: str,
        mapper: Mapper,
        snapshot: Snapshot | Mapping[str, StateEntry],
        in_flight: frozenset[str] | set[str] = frozenset(),
        deprovision: Deprovision = "disable",
        scope: ScopingFilter | None = None,
        membership: Membership | None = None,
        references: References | None = None,
        moved: Mapping[str, Set[str]] | None = None,
        delete_after_s: float | None = None,
        now: float | None = None,
        dates: DateSettings | None = None,
        rehire: RehireSettings | None = None,
    ) -> None:
        self.job = job
        self.rehire = rehire
        self.departed: dict[str, Departure] = {}
        """The deleted accounts a create may be the rehire of, by key (`load_departures` fills it for
        the objects to plan)."""
        self.dates = dates
        """A user job's start and end dates (`engine.core.dates`), read at `now`."""
        self.disabled: set[str] = set()
        """The objects to hold disabled: before their start date (prehires, and those whose start
        moved later once created)."""
        self.ended = 0
        """Objects past their end date: left unseen, so deprovisioned as leavers (`plan_missing`)."""
        self.not_started = 0
        """Objects before their prehire days, not created yet: nothing is planned for them."""
        self.next_date: float | None = None
        """The first moment after `now` when an object this cycle read changes phase (Unix seconds)."""
        self.delete_after_s = delete_after_s
        """The job's leaver grace (`plan_missing`), counted up to `now` (Unix seconds)."""
        self.now = time.time() if now is None else now
        self.target = target
        self.object_type = object_type
        self.cycle_id = cycle_id
        self.mapper = mapper
        self.snapshot = snapshot if isinstance(snapshot, Snapshot) else Snapshot.of(snapshot)
        self.in_flight = in_flight
        self.deprovision = deprovision
        self.scope = scope if scope is not None and scope.groups else None
        self.membership = membership
        self.references = references
        self.collisions = Collisions(mapper.matching) if mapper.matching and object_type == "group" else None
        """Which group holds each matching value: a second one is not sent (`engine.core.collisions`)."""
        self.pending_references = 0
        """References sent empty because the object they name has no target id (yet)."""
        self.moved = {job: ids for job, ids in (moved or {}).items() if ids} if references else {}
        """The source ids, by job, of the objects whose target id changed or went since this job's last
        full cycle (`StateStore.moves`): an object whose references name one is updated."""
        self.forced: set[str] = set()
        """The objects planned for that, whatever their hash says."""
        self.newly_forced: list[str] = []
        """Those of the batch prepared last, which the cycle marks as not applied before it sends them
        (so that one whose update fails is planned again)."""
        self.pending_members = 0
        self.pending_member_ids: set[str] = set()
        """The members not provisioned that the groups name (at most `PENDING_IDS_KEPT` of them): the
        cycle asks the member job's log which of them failed, and says so."""
        self.seen = 0
        """Objects planned (in scope), whatever came of them."""
        self._prepared: dict[str, tuple[Mapped, MemberPlan | None, str, int] | MappingError] = {}
        self.out_of_scope = 0
        self.deferred: list[str] = []
        self.deferred_objects: list[SourceObject] = []
        """The objects deferred (at most `DEFERRED_KEPT`), as this cycle read them: the operation in
        flight was planned from an older read (a push planned on demand, a cycle before a restart),
        so the cycle plans them again once it ended (`plan_again`)."""
        self.unchanged = 0
        self._seq = 0

    def prepare(self, batch: Iterable[SourceObject]) -> tuple[list[SourceObject], list[str]]:
        """Map the objects of a batch ahead of `plan`. Those the target already holds as they are
        (most objects of most cycles) and those out of scope are settled here: counted, taken from
        the snapshot, never planned. Returns the others, which the caller plans in order (and no
        others: a settled object planned again would look new), and the source ids whose full
        entries they need (`Snapshot.add_entries`): those the state holds that changed, or whose
        mapping failed."""
        to_plan: list[SourceObject] = []
        wanted: list[str] = []
        prepared = self._prepared
        fingerprints = self.snapshot.fingerprints
        scope = self.scope
        collisions = self.collisions
        single = (collisions.single or "") if collisions is not None else ""
        unchanged = 0
        for obj in batch:
            source_id = obj.source_id
            try:
                if scope is not None and not scope.matches(obj.attributes):
                    self.out_of_scope += 1  # unseen: deprovisioned by `plan_missing` if provisioned
                    continue
                if self.dates is not None and self._set_aside(obj):
                    continue
                ready = self._map(obj)
            except MappingError as exc:
                prepared[source_id] = exc
                to_plan.append(obj)
                if source_id in fingerprints:
                    wanted.append(source_id)
                continue
            # Taken (seen) at once: one look into a table of a million rather than two, for the
            # unchanged; the others are put back for `plan` to take.
            held = fingerprints.pop(source_id, None)
            if held is not None and held == ready[3] and not (self.moved and self._force(obj)):
                unchanged += 1
                if ready[1] is not None and ready[1].pending:
                    self._pending(ready[1])
                if collisions is not None:
                    # Most: one matching attribute, a text value, nothing planned yet: put as it is.
                    raw = collisions.raw
                    value = ready[0].attributes.get(single) if raw is not None else None
                    if value is source_id:
                        pass  # its own source id, unique in the source (see `engine.core.collisions`)
                    elif raw is not None and type(value) is str:
                        raw.setdefault(value, source_id)  # an exact twin, unchanged too: nothing is sent
                    else:
                        collisions.linked(source_id, ready[0].attributes, changed=False)
                continue
            prepared[source_id] = ready
            to_plan.append(obj)
            if held is not None:
                fingerprints[source_id] = held
                wanted.append(source_id)
                if collisions is not None:
                    collisions.linked(source_id, ready[0].attributes, changed=True)
        self.seen += unchanged
        self.unchanged += unchanged
        return to_plan, wanted

    def plan_again(self, entries: Mapping[str, StateEntry], source_ids: Iterable[str]) -> None:
        """Make deferred objects plannable again, now that their operation in flight ended: their
        fingerprints are what the state holds now (`entries`; none: not in the target), and they are
        seen once, as the first time counted them."""
        fingerprints = self.snapshot.fingerprints
        again = set(source_ids)
        for source_id in again:
            entry = entries.get(source_id)
            if entry is not None:
                fingerprints[source_id] = fingerprint(encode_hash(entry.applied_hash), entry.state)
        self.seen -= len(again)
        self.deferred = [s for s in self.deferred if s not in again]

    def _pending(self, members: MemberPlan) -> None:
        self.pending_members += members.pending
        if len(self.pending_member_ids) < PENDING_IDS_KEPT:
            self.pending_member_ids.update(members.pending_ids)

    def _force(self, obj: SourceObject) -> bool:
        """Whether an unchanged object is planned all the same, since its references name what moved
        (and, if so, it is `forced`)."""
        assert self.references is not None  # `moved` is empty without references
        if not self.references.names_any(obj.attributes, self.moved):
            return False
        self.forced.add(obj.source_id)
        self.newly_forced.append(obj.source_id)
        return True

    def _set_aside(self, obj: SourceObject) -> bool:
        """Whether its dates keep `obj` out of this cycle's plan: past its end date (left unseen, to
        be deprovisioned as a leaver), or before its prehire days and not created yet. One before its
        start date is marked to be held disabled. Raises `MappingError` when a date cannot be read."""
        assert self.dates is not None
        standing = self.dates.standing(obj.attributes, self.now)
        self.next_date = next_boundary(self.next_date, standing.until)
        if standing.phase == "ended":
            self.ended += 1
            return True
        if standing.phase == "future" and self.snapshot.peek(obj.source_id) is None:
            self.not_started += 1
            return True
        if standing.phase != "active":
            self.disabled.add(obj.source_id)
        return False

    def _map(self, obj: SourceObject) -> tuple[Mapped, MemberPlan | None, str, int]:
        mapped = self.mapper.map(obj.attributes)
        if self.membership is None:
            if self.disabled and obj.source_id in self.disabled:  # the fingerprint of one held disabled
                return mapped, None, mapped.hash, digest_fingerprint(mapped.hash) | 1
            return mapped, None, mapped.hash, digest_fingerprint(mapped.hash)
        members = self.membership.plan(obj.source_id, obj.attributes, mapped.hash)
        return mapped, members, members.hash, desired_fingerprint(members.hash)

    def plan(self, obj: SourceObject) -> Operation | None:
        """The operation for one source object, or None when the target already holds it.

        An object out of scope is not planned here: unseen, it is deprovisioned by `plan_missing` if
        it was provisioned before. Raises `MappingError` when a mapping fails on this object, and
        `CollisionError` (one) when another object of the job holds its matching values. Its entry
        must be loaded if `prepare` named it (an object not prepared is mapped here).
        """
        source_id = obj.source_id
        ready = self._prepared.pop(source_id, None)  # prepared: in scope, or its scoping failed
        if ready is None and self.scope is not None:
            try:
                in_scope = self.scope.matches(obj.attributes)
            except MappingError as exc:
                ready = exc  # not known to be out of scope: seen, failed, never deprovisioned
            else:
                if not in_scope:
                    self.out_of_scope += 1
                    return None
        if ready is None and self.dates is not None:
            try:
                if self._set_aside(obj):
                    return None
            except MappingError as exc:
                ready = exc  # not known to have ended: seen, failed, never deprovisioned
        self.seen += 1
        held = self.snapshot.fingerprints.pop(source_id, None)  # from now on it counts as seen
        if ready is None:
            ready = self._map(obj)
        elif isinstance(ready, MappingError):
            raise ready
        mapped, members, desired_hash, desired = ready
        if members is not None and members.pending:
            self._pending(members)
        if self.references is not None and (pending := self.references.put(mapped.attributes)):
            # Sent empty, and not taken as applied until they resolve: the hash is marked pending.
            self.pending_references += pending
            if not desired_hash.startswith(PENDING_PREFIX):
                desired_hash = PENDING_PREFIX + desired_hash
            desired = desired_fingerprint(desired_hash) | (source_id in self.disabled)
        disabled = source_id in self.disabled
        if held is None:
            action: Action = "create"
        elif held != desired or source_id in self.forced:
            action = "update"  # an update of a disabled object re-enables it (unless `disabled`)
            if disabled and held == desired ^ 1 and source_id not in self.forced:
                action = "disable"  # the values it holds, enabled: only that changes
        else:
            self.unchanged += 1
            return None
        if source_id in self.in_flight:
            self.deferred.append(source_id)
            if len(self.deferred_objects) < DEFERRED_KEPT:
                self.deferred_objects.append(obj)
            return None
        attributes = mapped.attributes
        if action == "create" and mapped.create_only:
            attributes = {**attributes, **mapped.create_only}
        if action == "create" and self.departed:
            attributes = self._rehired(attributes)
        if self.collisions is not None:
            self.collisions.check(source_id, attributes, create=action == "create")
        entry = self._entry(source_id, action)
        if action == "disable":
            assert entry is not None
            return self._operation(action, source_id, entry, {}, entry.applied_hash or "")
        return self._operation(action, source_id, entry, attributes, desired_hash, members, disabled=disabled)

    def rehire_keys(self, objects: Iterable[SourceObject]) -> list[str]:
        """The rehire keys of those of `objects` the state does not hold (creates, if planned), for
        `departed`: none without `rehire`."""
        if self.rehire is None:
            return []
        keys = []
        for obj in objects:
            if obj.source_id in self.snapshot.fingerprints:
                continue
            ready = self._prepared.get(obj.source_id)
            if isinstance(ready, MappingError):
                continue
            try:
                mapped = ready[0] if ready is not None else self.mapper.map(obj.attributes)
            except MappingError:
                continue  # `plan` says so
            if (key := self.rehire.key_of({**mapped.attributes, **mapped.create_only})) is not None:
                keys.append(key)
        return keys

    def _rehired(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """A create's attributes, with the values kept by the deleted account whose key it has, if any
        (which is then taken: one rehire per departure)."""
        assert self.rehire is not None
        key = self.rehire.key_of(attributes)
        departure = self.departed.pop(key, None) if key is not None else None
        if departure is None:
            return attributes
        return {**attributes, **departure.kept}

    def _entry(self, source_id: str, action: Action) -> StateEntry | None:
        if action == "create":
            return None
        entry = self.snapshot.entry(source_id)
        if entry is None:
            raise LookupError(f"the entry of {source_id!r} was not loaded before planning it")
        return entry

    def failure(self, obj: SourceObject, error: Exception) -> Result:
        """The failed result of an object whose mappings could not be evaluated (after `plan`)."""
        self._seq += 1
        now = time.time()
        entry = self.snapshot.entry(obj.source_id)
        return Result(
            op_id=f"{self.cycle_id}-{self._seq}",
            job=self.job,
            target=self.target,
            cycle_id=self.cycle_id,
            source_id=obj.source_id,
            action="create" if entry is None else "update",
            status="failed",
            attempts=0,
            emitted_at=now,
            completed_at=now,
            target_id=entry.target_id if entry else None,
            error_class=type(error).__name__,
            error_message=str(error),
        )

    def refuse(self, obj: SourceObject, error: Exception) -> Result:
        """Count `obj` as seen (it is not deprovisioned) but not planned: its failed result for `error`
        (a group in a nesting loop). Its entry must be loaded if the state holds it."""
        self._prepared.pop(obj.source_id, None)
        self.snapshot.fingerprints.pop(obj.source_id, None)
        self.seen += 1
        return self.failure(obj, error)

    def unseen(self) -> list[str]:
        """The source ids the state holds that this cycle did not plan (nor has in flight): whose
        entries `plan_missing` needs. An orphan a reconciliation disabled is no source object, and
        its policy (`reconcile.orphan`), not the job's `deprovision`, decided what became of it."""
        in_flight = self.in_flight
        return [
            source_id
            for source_id in self.snapshot.unseen()
            if source_id not in in_flight and not source_id.startswith(ORPHAN_PREFIX)
        ]

    def plan_missing(self) -> Iterator[Operation]:
        """Deprovision what the state holds but this (full) import did not see (their entries loaded:
        see `unseen`)."""
        for source_id in self.unseen():
            entry = self.snapshot.entry(source_id)
            if entry is None:
                raise LookupError(f"the entry of {source_id!r} was not loaded before planning it")
            action = plan_missing(entry, self.deprovision, now=self.now, delete_after_s=self.delete_after_s)
            if action is not None:
                yield self._operation(action, source_id, entry, {}, entry.applied_hash or "")

    def plan_gone(self, source_ids: Iterable[str]) -> Iterator[Operation]:
        """Deprovision the objects an incremental read saw deleted from the source (their entries
        loaded), unless this cycle read them, has them in flight, or the state does not hold them."""
        for source_id in source_ids:
            if source_id in self.in_flight or source_id.startswith(ORPHAN_PREFIX):
                continue
            if self.snapshot.take(source_id) is None:  # not held, or read in this cycle
                continue
            entry = self.snapshot.entry(source_id)
            if entry is None:
                raise LookupError(f"the entry of {source_id!r} was not loaded before planning it")
            action = plan_missing(entry, self.deprovision, now=self.now, delete_after_s=self.delete_after_s)
            if action is not None:
                yield self._operation(action, source_id, entry, {}, entry.applied_hash or "")

    def _operation(
        self,
        action: Action,
        source_id: str,
        entry: StateEntry | None,
        attributes: dict[str, Any],
        desired_hash: str,
        members: MemberPlan | None = None,
        *,
        disabled: bool = False,
    ) -> Operation:
        self._seq += 1
        # Lists, not tuples: the pairs read back from the wire then equal what was planned.
        matching = [
            [name, value] for name in self.mapper.matching if (value := attributes.get(name)) is not None
        ]
        if members is None:
            add, remove, held, groups = [], [], None, []
        else:
            add, remove, held, groups = members.add, members.remove, members.record, members.groups
        return Operation(
            op_id=f"{self.cycle_id}-{self._seq}",
            job=self.job,
            target=self.target,
            cycle_id=self.cycle_id,
            action=action,
            object_type=self.object_type,
            source_id=source_id,
            attributes=attributes,
            desired_hash=desired_hash,
            target_id=entry.target_id if entry else None,
            matching=matching,
            members_add=add,
            members_remove=remove,
            members=held,
            members_groups=groups,
            disabled=disabled,
            emitted_at=time.time(),
        )
