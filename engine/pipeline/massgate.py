"""The mass-change guard at work in a cycle: between the planner and the publisher, each batch's updates
are diffed against their last applied attributes (one read of the provisioning log per batch) and
counted (`engine.core.masschange`), so that an update goes out only once no attribute it changes can
still trip the guard. `roster plan` diffs its operations the same way (`diffs`).

A group job's membership removals meet the guard too: a rule that suddenly matches no one, or an
export whose department column came empty, would otherwise empty groups at once. The updates that
remove members wait for the end of the read (one per group at most), and go then unless their removals
together pass the job's mass-change guard over the memberships its groups hold (more than `count` and
more than `percent`: a small job's few removals never wait): then they are held for approval, and the
additions of the cycle go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from engine.config import JobConfig
from engine.core.changes import Diff, as_logged, diff
from engine.core.masschange import MassChanges
from engine.model import Hold, Unapplied
from engine.store.state import StateStore
from queues.contracts import Operation

log = logging.getLogger("roster.engine.massgate")


async def diffs(state: StateStore, job: JobConfig, ops: Sequence[Operation]) -> list[tuple[Diff, bool]]:
    """What each operation changes, and whether that is known: an update against the attributes last
    applied (not known when the provisioning log no longer holds them: then against nothing, every
    value as sent), anything else against nothing. One read of the log."""
    applied = await state.applied_attributes(job.name, [op.source_id for op in ops if op.action == "update"])
    hidden = job.redacted
    found = []
    for op in ops:
        old = applied.get(op.source_id) if op.action == "update" else None
        changes = diff(
            old,
            as_logged(op.attributes, hidden),
            members_add=op.members_add,
            members_remove=op.members_remove,
        )
        found.append((changes, op.action != "update" or old is not None))
    return found


def removals_hold(job: JobConfig, removals: int, memberships: int | None) -> Hold | None:
    """The mass-change guard's hold on a group job's membership removals, if they pass it
    (`memberships`: those its groups hold; None: not a group job, or the guard is off)."""
    guard = job.mass_change_guard
    if memberships is None or not guard.trips(removals, memberships):
        return None
    share = removals * 100.0 / max(memberships, 1)
    return Hold(
        "mass_change",
        f"members would be removed: {removals:,} of {memberships:,} group memberships ({share:.0f}%), "
        f"above the threshold of {guard.count:,} and {guard.percent:g}%",
    )


def staged(op: Operation) -> Unapplied:
    """What is kept of an update held for approval."""
    return Unapplied(op.op_id, op.cycle_id, op.job, op.source_id, op.action, op.target_id)


def noun(job: JobConfig) -> str:
    """What the guard's reason calls the job's objects."""
    return "accounts" if job.object_type == "user" else "groups"


class UpdateGate:
    """A cycle's updates on their way to the publisher: `keep` takes those the guard must see, `release`
    counts a batch of them and returns those that may go, `finish` the ones that waited to the end of
    the read; `counts.held` are the updates held for approval, `counts.holds()` why. Updates of the
    source ids in `approved` (released by `roster approve`) pass uncounted."""

    def __init__(
        self,
        state: StateStore,
        job: JobConfig,
        held: int,
        approved: frozenset[str],
        *,
        memberships: int | None = None,
    ) -> None:
        """`memberships`: for a group job, the memberships its groups hold (the deletion guard's
        measure of its removals)."""
        self._state = state
        self._job = job
        self._approved = approved
        self.counts: MassChanges[Operation, Unapplied] = MassChanges(
            job.mass_change_guard, held, held_as=staged, noun=noun(job)
        )
        self._kept: list[Operation] = []
        self.unjudged = 0
        """Updates the guard could not count: their last applied values are past the log's retention."""
        guarded = memberships is not None and job.mass_change_guard.enabled
        self._memberships = memberships if guarded else None
        self._removing: list[Operation] = []
        self.removals = 0
        """Members the updates waiting in `_removing` remove."""
        self.removals_held: list[Unapplied] = []
        self.removal_holds: tuple[Hold, ...] = ()

    @property
    def held(self) -> list[Unapplied]:
        """Every update held for approval: by the mass-change guard, or for its membership removals."""
        return [*self.counts.held, *self.removals_held]

    def holds(self) -> tuple[Hold, ...]:
        return (*self.counts.holds(), *self.removal_holds)

    def keep(self, op: Operation) -> bool:
        """Whether `op` waits for `release` (an update the guard must count) or for the end of the read
        (one that removes members); otherwise it goes now."""
        if op.action != "update" or op.source_id in self._approved:
            return False
        if self.counts.active:
            self._kept.append(op)
            return True
        return not self._divert([op])

    async def release(self) -> list[Operation]:
        """Count the updates kept since the last call; those that may go now."""
        kept, self._kept = self._kept, []
        if not kept:
            return []
        ready: list[Operation] = []
        for op, (changes, known) in zip(kept, await diffs(self._state, self._job, kept), strict=True):
            ready += self.counts.add(op, changes if known else None)
            self.unjudged += not known
        return self._divert(ready)

    def finish(self) -> list[Operation]:
        """The read is complete: the updates still waiting go, but those whose membership removals
        together pass the deletion guard, which are held."""
        if self.unjudged:
            log.warning(
                "event=mass_change_unjudged job=%s updates=%d reason=%r",
                self._job.name,
                self.unjudged,
                "their last applied values are no longer in the provisioning log (log_retention_days)",
            )
        ready = self._divert(self.counts.finish())
        removing, self._removing = self._removing, []
        hold = removals_hold(self._job, self.removals, self._memberships)
        if hold is None:
            return ready + removing
        self.removals_held = [staged(op) for op in removing]
        self.removal_holds = (hold,)
        log.warning(
            "event=membership_removals_held job=%s groups=%d reason=%r",
            self._job.name,
            len(removing),
            hold.reason,
        )
        return ready

    def _divert(self, ops: list[Operation]) -> list[Operation]:
        """Those of `ops` that may go now; the updates that remove members wait for `finish`."""
        if self._memberships is None:
            return ops
        ready = []
        for op in ops:
            if op.members_remove and op.source_id not in self._approved:
                self._removing.append(op)
                self.removals += len(op.members_remove)
            else:
                ready.append(op)
        return ready
