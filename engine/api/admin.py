"""What the admin API (and through it the CLI) can see and do, as plain async methods.

The HTTP layer (`engine.api.routes`) only parses requests and renders these answers (the value types of
`engine.api.answers`) as JSON; everything a route does is here, so it is tested without HTTP too. An
unknown job raises `UnknownJob` (the API's 404, naming the jobs it knows); a job not in a state that
allows the request raises `NotNow` (the API's 409).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Literal, cast, get_args

from common.errors import RosterError
from engine.api.agents import AgentList, agent_list
from engine.api.answers import (
    Approval,
    Approved,
    AuditRecord,
    Cycle,
    FailureGroup,
    Gap,
    JobState,
    JobStatus,
    LastReconciled,
    LogRecord,
    ObjectType,
    PendingDeletion,
    PersonInJob,
    Provisioned,
    Quarantine,
    Reconciled,
    Rejected,
    Running,
    StoredRecord,
    Triggered,
)
from engine.config import JobConfig
from engine.core.reconcile import SITUATIONS
from engine.model import CycleSummary
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.fleet import Fleet
from engine.pipeline.ondemand import Preview, UnknownObject, preview_from_state, provision
from engine.pipeline.reconciling import reconcile
from engine.pipeline.scheduler import Scheduler
from engine.store import audit
from engine.store.audit import AuditFilter, Entry
from engine.store.history import LogFilter, csv_rows, cycle_history, iter_log, jsonl, query_log
from engine.store.state import StateStore

log = logging.getLogger("roster.engine.admin")

FAILURES_READ = 100_000
"""The most failed records of one cycle grouped for a page (a cycle's operations, in practice)."""


class UnknownJob(RosterError):
    """No job of that name runs in this engine."""


class NotNow(RosterError):
    """The job is not in a state that allows this now; `error` is a short code for machines."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error


class Admin:
    """The engine's jobs, their cycles, their logs and their switches, for the API."""

    def __init__(
        self,
        runner: CycleRunner,
        scheduler: Scheduler | None = None,
        *,
        warnings: Sequence[str] = (),
        fleet: Fleet | None = None,
    ) -> None:
        self.runner = runner
        self.fleet = fleet if fleet is not None else Fleet()
        """The engines and workers heard on the presence exchange (an empty one if none listens)."""
        self.scheduler = scheduler
        self.warnings = tuple(warnings)
        """What this engine exposes without protection (`common.process.exposure`), for `/jobs`."""
        self._triggered: set[asyncio.Task[CycleSummary]] = set()

    def job(self, name: str) -> JobConfig:
        for job in self.runner.config.jobs:
            if job.name == name:
                return job
        known = ", ".join(j.name for j in self.runner.config.jobs)
        raise UnknownJob(f"no job named {name!r} (jobs: {known})")

    # -- Seeing --------------------------------------------------------------------------------------

    async def jobs(self) -> list[JobStatus]:
        return [await self.status(job.name) for job in self.runner.config.jobs]

    async def agents(self) -> AgentList:
        """The engines and workers heard, and how many workers serve each target of a job."""
        return agent_list(self.fleet, [(job.name, job.target) for job in self.runner.config.jobs])

    async def status(self, name: str) -> JobStatus:
        """State (active, paused, quarantined, waiting_for_approval) and why, the running cycle's
        progress, the last cycles, and the next scheduled run."""
        job = self.job(name)
        switches = self.runner.control.switches(name)
        staged = await self.runner.control.staged(name) if switches.approval_reason else []
        next_run = self.scheduler.next_run.get(name) if self.scheduler is not None else None
        quarantine = None
        if switches.quarantine_reason is not None:
            quarantine = Quarantine(
                reason=switches.quarantine_reason,
                since=switches.quarantined_at,
                cycles=switches.quarantined_cycles,
            )
        approval = None
        if switches.approval_reason is not None:
            approval = Approval(switches.approval_reason, len(staged))
        return JobStatus(
            job=name,
            target=job.target,
            object_type=_object_type(job.object_type),
            state=_job_state(switches.state),
            paused=switches.paused,
            quarantine=quarantine,
            approval=approval,
            running=[
                Running(
                    cycle_id=p.cycle_id,
                    read=p.read,
                    planned=p.planned,
                    settled=p.settled,
                    retries=p.retries,
                    counts=dict(p.counts),
                    started_at=p.started_at,
                    awaiting=p.outstanding,
                    deadline_at=p.deadline_at,
                    past_deadline=p.past_deadline(),
                )
                for p in self.runner.tracker.running(name)
            ],
            last_cycles=await self._cycles(name, 5),
            next_run=next_run.isoformat() if next_run is not None else None,
            last_reconciled=await self._last_reconciled(name),
            pending_deletions=await self._pending_deletions(job),
            next_date_change=self.runner.date_due.get(name),
        )

    async def _pending_deletions(self, job: JobConfig) -> list[PendingDeletion]:
        grace = job.delete_after_s
        if grace is None:
            return []
        return [
            PendingDeletion(source_id=s, target_id=t, disabled_at=at, delete_at=at + grace)
            for s, t, at in await self.runner.state.disabled_since(job.name)
        ]

    async def _last_reconciled(self, name: str) -> LastReconciled | None:
        last = await self.runner.state.last_reconciled(name)
        if last is None:
            return None
        at, counts = last
        return LastReconciled(at, {s: int(counts.get(s) or 0) for s in SITUATIONS})

    async def cycles(self, name: str, limit: int = 20) -> list[Cycle]:
        self.job(name)
        return await self._cycles(name, limit)

    async def cycle(self, name: str, cycle_id: str) -> Cycle:
        self.job(name)
        found = await cycle_history(self.runner.state, name, 1, cycle_id=cycle_id)
        if not found:
            raise UnknownObject(f"job {name!r} has no cycle {cycle_id!r} (its log may have been pruned)")
        return Cycle(**found[0])

    async def failures(self, name: str, cycle_id: str, *, examples: int = 5) -> list[FailureGroup]:
        """The cycle's failed operations grouped by how they failed, the largest group first."""
        groups: dict[str, list[str]] = {}
        where = LogFilter(job=name, cycle_id=cycle_id, status="failed", limit=FAILURES_READ)
        for record in await self.logs(where):
            kind = " ".join(filter(None, (record.error_class, record.error_code)))
            error = f"{kind}: {record.error_message}" if kind else record.error_message or "no message"
            groups.setdefault(error, []).append(record.source_id or record.target_id or "?")
        ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        return [FailureGroup(error, len(ids), ids[:examples]) for error, ids in ordered]

    async def logs(self, where: LogFilter) -> list[LogRecord]:
        if where.job is not None:
            self.job(where.job)
        return [LogRecord(**row) for row in await query_log(self.runner.state, where)]

    async def export_logs(self, where: LogFilter, form: Literal["jsonl", "csv"]) -> AsyncIterator[bytes]:
        """The matching records as JSON Lines or CSV (with a header), a page at a time."""
        if where.job is not None:
            self.job(where.job)
        first = True
        async for page in iter_log(self.runner.state, where):
            yield jsonl(page) if form == "jsonl" else csv_rows(page, header=first).encode()
            first = False
        if first and form == "csv":
            yield csv_rows([], header=True).encode()

    async def person(self, source_id: str, *, history: int = 20) -> list[PersonInJob]:
        """What every job knows of the source object `source_id` (the jobs that know nothing of it
        left out), for the help desk's question "why has this person no account in Y?"."""
        state, jobs = self.runner.state, self.runner.config.jobs
        holders: dict[str, list[str]] = {}
        for group_job in (job for job in jobs if job.object_type == "group"):
            for group, members in (await state.applied_members(group_job.name)).items():
                if source_id in members:
                    holders.setdefault(group_job.name, []).append(group)
        found = []
        for job in jobs:
            entry = await state.entry(job.name, source_id)
            where = LogFilter(job=job.name, source_id=source_id, limit=history, newest_first=True)
            records = [LogRecord(**row) for row in await query_log(state, where)]
            if entry is None and not records:
                continue
            applied = (await state.applied_attributes(job.name, [source_id])).get(source_id)
            found.append(
                PersonInJob(
                    job=job.name,
                    target=job.target,
                    object_type=_object_type(job.object_type),
                    target_id=entry.target_id if entry is not None else None,
                    state=entry.state if entry is not None else None,
                    applied=applied,
                    groups=[
                        f"{group_job}: {group}"
                        for group_job, groups in holders.items()
                        if _feeds(jobs, group_job, job.name)
                        for group in sorted(groups)
                    ],
                    gaps=await _gaps(state, job, source_id),
                    history=records,
                )
            )
        return found

    async def audit(self, where: AuditFilter) -> list[AuditRecord]:
        """The audit trail's entries matching `where`, newest first."""
        return [AuditRecord(**row) for row in await audit.read(self.runner.state, where)]

    async def record(self, entry: Entry) -> None:
        """Add `entry` to the audit trail."""
        await audit.record(self.runner.state, entry)

    async def preview(self, name: str, source_id: str) -> Preview:
        return await preview_from_state(self.job(name), source_id, self.runner.state)

    # -- Doing ---------------------------------------------------------------------------------------

    async def trigger(self, name: str) -> Triggered:
        """Start a cycle now, in the background; one already running (of the job, or of the job whose
        members it reads) goes first, and the answer says which and for how long it has run."""
        job = self.job(name)
        if self.runner.control.paused(name):
            raise NotNow("job_paused", "the job is paused: resume it first")
        jobs = [name] if job.members is None else list(dict.fromkeys([name, *job.members.jobs]))
        ahead = [p for j in jobs for p in self.runner.tracker.running(j) if not p.cycle_id.endswith("-one")]
        task = asyncio.create_task(self.runner.run_cycle(job, trigger="api"), name=f"roster-api-{name}")
        self._triggered.add(task)
        task.add_done_callback(self._done)
        if not ahead:
            return Triggered(name, True, message="a cycle started")
        first = min(ahead, key=lambda p: p.started_at)
        running_s = max(0.0, time.time() - first.started_at)
        message = f"queued behind cycle {first.cycle_id} of {first.job}, running {_duration(running_s)}"
        if first.past_deadline():
            message += ", past its deadline"
        return Triggered(name, False, first.cycle_id, round(running_s, 1), message)

    async def reconcile(self, name: str) -> Reconciled:
        """Reconcile the job now and answer when done (corrections applied by the cycle that follows)."""
        job = self.job(name)
        if self.runner.control.paused(name):
            raise NotNow("job_paused", "the job is paused: resume it first")
        done = await reconcile(self.runner, job, trigger="api")
        return Reconciled(
            job=name,
            cycle_id=done.cycle_id,
            status=done.status,
            situations=done.situations,
            corrections=done.corrections,
            held=done.held,
            error=done.error,
            findings=[f"{f.source_id or f.target_id}: {f.describe()}" for f in done.findings],
            cycle=done.cycle,
        )

    async def provision(self, name: str, source_id: str) -> Provisioned:
        done = await provision(self.runner, self.job(name), source_id)
        return Provisioned(done.cycle_id, done.preview, [StoredRecord(**row) for row in done.records])

    async def pause(self, name: str) -> JobStatus:
        self.job(name)
        await self.runner.control.pause(name)
        return await self.status(name)

    async def resume(self, name: str) -> JobStatus:
        self.job(name)
        await self.runner.control.resume(name)
        return await self.status(name)

    async def restart(self, name: str) -> JobStatus:
        """Also gives up at once on the operations a running cycle still awaits after planning (as its
        deadline would), so that a cycle stuck on a lost batch ends now."""
        self.job(name)
        await self.runner.control.restart(name)
        for progress in self.runner.tracker.running(name):
            if progress.planning_done and not progress.done.is_set():
                await self.runner.results.expire(
                    progress.cycle_id, "given up by `roster restart`; the next cycle plans it again"
                )
        return await self.status(name)

    async def reset(self, name: str) -> JobStatus:
        self.job(name)
        await self.runner.control.reset(name)
        return await self.status(name)

    async def held(self, name: str) -> list[tuple[str, str]]:
        """The operations held for approval, as (source id, held action), by source id."""
        self.job(name)
        return await self.runner.control.staged(name)

    async def approve(self, name: str) -> Approved:
        """Run a cycle now in which the staged deprovisions pass the guards (those still missing), and
        the staged updates the mass-change guard (those the source still asks for)."""
        job = self.job(name)
        staged = await self.runner.control.staged(name)
        if not staged:
            raise NotNow("nothing_to_approve", "nothing is waiting for approval")
        approved = frozenset(source_id for source_id, _ in staged)
        summary = await self.runner.run_cycle(job, trigger="approval", approved=approved)
        return Approved(name, len(approved), summary)

    async def reject(self, name: str) -> Rejected:
        """Drop the staged operations; the next cycle stages them again if the source still asks for them."""
        self.job(name)
        staged = await self.runner.control.staged(name)
        await self.runner.control.clear_staged(name)
        return Rejected(name, len(staged))

    async def aclose(self) -> None:
        for task in list(self._triggered):
            task.cancel()
        await asyncio.gather(*self._triggered, return_exceptions=True)

    async def _cycles(self, name: str, limit: int) -> list[Cycle]:
        return [Cycle(**row) for row in await cycle_history(self.runner.state, name, limit)]

    def _done(self, task: asyncio.Task[CycleSummary]) -> None:
        self._triggered.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=api_cycle_crashed error=%r", task.exception())


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _job_state(state: str) -> JobState:
    if state not in get_args(JobState):
        raise ValueError(f"{state!r} is not a job state the API document knows")
    return cast(JobState, state)


def _object_type(kind: str) -> ObjectType:
    if kind not in get_args(ObjectType):
        raise ValueError(f"{kind!r} is not an object type the API document knows")
    return cast(ObjectType, kind)


def _feeds(jobs: Sequence[JobConfig], group_job: str, member_job: str) -> bool:
    """Whether the groups of `group_job` take the objects of `member_job` as members."""
    groups = next(job for job in jobs if job.name == group_job)
    return groups.members is not None and groups.members.job == member_job


async def _gaps(state: StateStore, job: JobConfig, source_id: str) -> list[Gap]:
    """When the person's account in `job` was deleted and they came back (`rehire:` only)."""
    if job.rehire is None:
        return []
    return [
        Gap(
            source_id=d.source_id,
            target_id=d.target_id,
            deleted_at=d.deleted_at,
            returned_as=d.returned_as,
            returned_at=d.returned_at,
            away_days=None if d.returned_at is None else (d.returned_at - d.deleted_at) / 86_400,
        )
        for d in await state.departures(job.name, source_id)
    ]
