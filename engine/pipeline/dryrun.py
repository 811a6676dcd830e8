"""The next cycle of a job as a dry run (`roster plan`): every operation it would send, attribute by
attribute, and the holds that would apply, without writing anything anywhere.

It reads the source and plans with the cycle's own parts (`prepare_batch`, the `Planner`, the
mass-change guard's count, `plan_deprovisions`), so its counts are the cycle's; it only reads the
state store (the fingerprints, the entries, the job's switches, and the last applied attributes from
the provisioning log), opens no cycle, writes no log record and talks to no broker.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from common.errors import RosterError
from engine.config import JobConfig
from engine.core.changes import Diff
from engine.core.masschange import MassChanges
from engine.core.references import ResolvedReference
from engine.mapping.functions.errors import MappingError
from engine.model import DISABLED, Hold, SourceProblem
from engine.pipeline.control import JobControl
from engine.pipeline.cycles import (
    SOURCE_BATCH,
    job_planner,
    plan_deprovisions,
    prepare_batch,
    references_of,
)
from engine.pipeline.massgate import diffs, noun, removals_hold
from engine.pipeline.tracker import ACTION_COUNTS
from engine.store.state import StateStore
from queues.contracts import Operation

PLAN_CYCLE_ID = "plan"
"""The cycle id a dry run's operations carry (no cycle is recorded)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedObject:
    """One object's operation in the plan and what it changes.

    `old_known` is False for an update whose last applied attributes the provisioning log no longer
    holds (pruned, or written after a restart of the engine that sent them): its diff then shows
    every attribute as it would be sent."""

    source_id: str
    action: str
    """create, update, disable, delete, or fail (a mapping fails on the object)"""
    diff: Diff = field(default_factory=Diff)
    old_known: bool = True
    enables: bool = False
    """An update of a disabled object, which enables it again."""
    held: str | None = None
    """The kind of the hold that would stage the operation for approval, if one would."""
    error: str | None = None
    references: tuple[ResolvedReference, ...] = ()
    """The source ids the object's reference attributes name, and the target ids they are sent as."""


@dataclass(slots=True, kw_only=True)
class JobPlan:
    """What the cycle would do, in totals that count as the cycle's summary does."""

    job: str
    object_type: str
    read: int = 0
    full: bool = True
    """A full read: only after one are objects missing from the source deprovisioned."""
    totals: Counter[str] = field(default_factory=Counter)
    holds: tuple[Hold, ...] = ()
    skipped_rows: int = 0
    problems: tuple[SourceProblem, ...] = ()
    error: str | None = None
    """Why the source could not be read to the end (nothing is deprovisioned then)."""
    elapsed_s: float = 0.0

    def counts(self) -> dict[str, int]:
        """The totals under the names of the cycle summary's counts."""
        names = ("created", "updated", "disabled", "deleted", "unchanged", "out_of_scope", "failed")
        return {
            **{name: self.totals[name] for name in names},
            "staged": self.totals["staged"],
            "staged_updates": self.totals["staged_updates"],
            "pending_members": self.totals["pending_members"],
            "pending_references": self.totals["pending_references"],
        }


async def plan_job(job: JobConfig, state: StateStore, emit: Callable[[PlannedObject], None]) -> JobPlan:
    """Plan the next cycle of `job` against `state`, handing each object with an operation to `emit`
    as it is planned (the unchanged ones are only counted). Writes nothing."""
    started = time.perf_counter()
    control = JobControl(state)
    await control.load()  # reads the switches: the watermark and the last complete read
    since = control.since(job.name, job.source.full_import_every_s) if job.source.incremental else None
    source = job.source.open(since, state=state)
    references = references_of(job)
    _latest, moved = await state.moves(references.jobs if references else (), control.moves_seen(job.name))
    planner = await job_planner(state, job, PLAN_CYCLE_ID, await state.fingerprints(job.name), moved=moved)
    plan = JobPlan(job=job.name, object_type=job.object_type)
    counts: MassChanges[PlannedObject, PlannedObject] = MassChanges(
        job.mass_change_guard, len(planner.snapshot), held_as=_held, noun=noun(job)
    )
    removing = _Removing(job, planner.membership.held_count if planner.membership is not None else None)
    try:
        async for batch in source.batches(SOURCE_BATCH):
            to_plan, loaded = await prepare_batch(state, job, planner, batch)
            planner.newly_forced.clear()  # a cycle marks them not applied; a plan writes nothing
            ops: list[tuple[Operation, bool, tuple[ResolvedReference, ...]]] = []
            references = planner.references
            for obj in to_plan:
                try:
                    op = planner.plan(obj)
                except MappingError as exc:
                    plan.totals["failed"] += 1
                    emit(PlannedObject(source_id=obj.source_id, action="fail", error=str(exc)))
                    continue
                if op is not None:
                    entry = planner.snapshot.entry(op.source_id)
                    shown = () if references is None else tuple(references.shown(obj.attributes))
                    enables = entry is not None and entry.state == DISABLED and not op.disabled
                    ops.append((op, enables, shown))
            await _emit_changes(state, job, ops, counts, removing.emit(plan, emit))
            planner.snapshot.drop_entries(loaded)
            planner.snapshot.shrink()
            plan.read += len(batch)
    except RosterError as exc:
        plan.error = str(exc)  # what waited on the mass-change guard is not sent, as in a cycle
    else:
        for planned in counts.finish():
            removing.emit(plan, emit)(planned)
    plan.holds = counts.holds()
    if plan.error is None:
        plan.holds += removing.finish(plan, emit)
    plan.full = source.full
    plan.skipped_rows = source.skipped
    plan.problems = tuple(source.problems)
    if plan.error is None and source.full:
        found = await plan_deprovisions(
            state,
            job,
            planner,
            approved=frozenset(),
            read=plan.read,
            skipped=source.skipped,
            last_read=control.last_complete_read(job.name),
        )
        plan.holds += found.holds
        held = found.holds[0].kind if found.holds else None
        for op in found.ops:
            _count_and_emit(PlannedObject(source_id=op.source_id, action=op.action, held=held), plan, emit)
    plan.totals["unchanged"] = planner.unchanged
    plan.totals["out_of_scope"] = planner.out_of_scope
    plan.totals["pending_members"] = planner.pending_members
    plan.totals["pending_references"] = planner.pending_references
    plan.elapsed_s = time.perf_counter() - started
    return plan


async def _emit_changes(
    state: StateStore,
    job: JobConfig,
    ops: list[tuple[Operation, bool, tuple[ResolvedReference, ...]]],
    counts: MassChanges[PlannedObject, PlannedObject],
    sink: Callable[[PlannedObject], None],
) -> None:
    """Each planned operation with its diff against the last applied attributes (one read of the log
    for the batch's updates), the updates through the mass-change guard's count as in a cycle, to
    `sink` (which counts and shows it)."""
    found = await diffs(state, job, [op for op, _, _ in ops])
    for (op, enables, references), (changes, known) in zip(ops, found, strict=True):
        planned = PlannedObject(
            source_id=op.source_id,
            action=op.action,
            diff=changes,
            old_known=known,
            enables=enables,
            references=references,
        )
        if op.action != "update":
            sink(planned)
            continue
        for ready in counts.add(planned, changes if known else None):
            sink(ready)
    for stopped in counts.held:  # held for good: shown now rather than kept to the end
        sink(stopped)
    counts.held.clear()


class _Removing:
    """A group job's updates that remove members wait for the end of the read, then meet the
    mass-change guard over the memberships held, as a cycle's (`engine.pipeline.massgate.UpdateGate`)."""

    def __init__(self, job: JobConfig, memberships: int | None) -> None:
        self._job = job
        self._memberships = memberships if job.mass_change_guard.enabled else None
        self._waiting: list[PlannedObject] = []
        self._removals = 0

    def emit(self, plan: JobPlan, emit: Callable[[PlannedObject], None]) -> Callable[[PlannedObject], None]:
        """What `_count_and_emit` does, but for the updates that remove members: they wait."""

        def take(planned: PlannedObject) -> None:
            removes = len(planned.diff.members_removed) if planned.diff is not None else 0
            if self._memberships is not None and planned.action == "update" and removes and not planned.held:
                self._waiting.append(planned)
                self._removals += removes
            else:
                _count_and_emit(planned, plan, emit)

        return take

    def finish(self, plan: JobPlan, emit: Callable[[PlannedObject], None]) -> tuple[Hold, ...]:
        """The read is complete: the waiting updates, held if their removals pass the guard."""
        hold = removals_hold(self._job, self._removals, self._memberships)
        for planned in self._waiting:
            _count_and_emit(dataclasses.replace(planned, held=hold.kind) if hold else planned, plan, emit)
        return (hold,) if hold is not None else ()


def _held(planned: PlannedObject) -> PlannedObject:
    """An update the mass-change guard holds (not `dataclasses.replace`, which looks the fields up
    again for each of what may be hundreds of thousands)."""
    return PlannedObject(
        source_id=planned.source_id,
        action=planned.action,
        diff=planned.diff,
        old_known=planned.old_known,
        enables=planned.enables,
        held="mass_change",
        references=planned.references,
    )


def _count_and_emit(planned: PlannedObject, plan: JobPlan, emit: Callable[[PlannedObject], None]) -> None:
    if planned.held:
        plan.totals["staged"] += 1
        plan.totals["staged_updates"] += planned.action == "update"
    else:
        plan.totals[ACTION_COUNTS[planned.action]] += 1
    emit(planned)
