"""The planner: compares mapped source objects with the state and decides each object's operation.

Pure: it takes plain values (the state snapshot, mapped attributes) and returns `Operation`s, so it is
tested without a loop, a broker or a database. The cycle runner feeds it and publishes what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from engine.core.membership import MemberPlan, Membership
from engine.core.scoping import ScopingFilter
from engine.mapping.base import Mapper
from engine.model import DISABLED, Deprovision, SourceObject, StateEntry
from queues.contracts import Action, Operation, Result


def plan_action(entry: StateEntry | None, desired_hash: str) -> Action | None:
    """The operation that brings the target from `entry` to the desired attributes, if any."""
    if entry is None:
        return "create"
    if entry.state == DISABLED or entry.applied_hash != desired_hash:
        return "update"  # an update of a disabled object re-enables it
    return None


def plan_missing(entry: StateEntry, policy: Deprovision) -> Action | None:
    """The operation for an object that left the source (or its scope), per the job's policy."""
    if policy == "delete":
        return "delete"
    if policy == "disable" and entry.state != DISABLED:
        return "disable"
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
        snapshot: dict[str, StateEntry],
        in_flight: frozenset[str] | set[str] = frozenset(),
        deprovision: Deprovision = "disable",
        scope: ScopingFilter | None = None,
        membership: Membership | None = None,
    ) -> None:
        self.job = job
        self.target = target
        self.object_type = object_type
        self.cycle_id = cycle_id
        self.mapper = mapper
        self.snapshot = snapshot
        self.in_flight = in_flight
        self.deprovision = deprovision
        self.scope = scope if scope is not None and scope.groups else None
        self.membership = membership
        self.pending_members = 0
        self.seen: set[str] = set()
        self.out_of_scope = 0
        self.deferred: list[str] = []
        self.unchanged = 0
        self._seq = 0

    def plan(self, obj: SourceObject) -> Operation | None:
        """The operation for one source object, or None when the target already holds it.

        An object out of scope is not planned here: unseen, it is deprovisioned by `plan_missing` if
        it was provisioned before. Raises `MappingError` when a mapping fails on this object.
        """
        if self.scope is not None and not self.scope.matches(obj.attributes):
            self.out_of_scope += 1
            return None
        self.seen.add(obj.source_id)
        mapped = self.mapper.map(obj.attributes)
        entry = self.snapshot.get(obj.source_id)
        members = None
        desired_hash = mapped.hash
        if self.membership is not None:
            members = self.membership.plan(obj.source_id, obj.attributes, mapped.hash)
            self.pending_members += members.pending
            desired_hash = members.hash
        action = plan_action(entry, desired_hash)
        if action is None:
            self.unchanged += 1
            return None
        if obj.source_id in self.in_flight:
            self.deferred.append(obj.source_id)
            return None
        attributes = mapped.attributes
        if action == "create" and mapped.create_only:
            attributes = {**attributes, **mapped.create_only}
        return self._operation(action, obj.source_id, entry, attributes, desired_hash, members)

    def failure(self, obj: SourceObject, error: Exception) -> Result:
        """The failed result of an object whose mappings could not be evaluated."""
        self._seq += 1
        now = time.time()
        entry = self.snapshot.get(obj.source_id)
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

    def plan_missing(self) -> Iterator[Operation]:
        """Deprovision what the state holds but this (full) import did not see."""
        for source_id, entry in self.snapshot.items():
            if source_id in self.seen or source_id in self.in_flight:
                continue
            action = plan_missing(entry, self.deprovision)
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
    ) -> Operation:
        self._seq += 1
        # Lists, not tuples: the pairs read back from the wire then equal what was planned.
        matching = [
            [name, value] for name in self.mapper.matching if (value := attributes.get(name)) is not None
        ]
        if members is None:
            add, remove, held = [], [], None
        else:
            add, remove, held = members.add, members.remove, members.record
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
            emitted_at=time.time(),
        )
