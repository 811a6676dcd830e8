"""The cycle runner: import the source, plan against the state, publish, and wait for the results.

One cycle per job at a time. Deprovisioning of objects missing from the source happens only after
the whole source was read: a source that fails half-way must never look like half the company left.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from datetime import UTC, datetime
from functools import partial

from prometheus_client import CollectorRegistry

from common.errors import RosterError
from common.process.tuning import release_memory
from engine.config import EngineConfig, JobConfig
from engine.core.dates import next_boundary
from engine.core.membership import Membership, MembersSettings, member_ids
from engine.core.nesting import NestedGroups, NestingLoop
from engine.core.planner import Planner
from engine.core.references import ReferenceMapping, References
from engine.core.snapshot import Snapshot
from engine.mapping.functions.errors import MappingError
from engine.metrics import EngineMetrics
from engine.model import MEMBER_FAILURES_SHOWN, CycleSummary, Hold, SourceObject, StateEntry, Unapplied
from engine.pipeline.control import JobControl
from engine.pipeline.leases import CycleLeases
from engine.pipeline.listing import CycleLinks, Listings
from engine.pipeline.massgate import UpdateGate
from engine.pipeline.publisher import Publisher
from engine.pipeline.results import ResultConsumer
from engine.pipeline.tracker import CycleProgress, Tracker
from engine.pipeline.wire import WireVersions
from engine.sources.base import ReportsDeletions, Source
from engine.store.state import StateStore
from queues.broker import Broker
from queues.contracts import Operation, Result
from queues.versions import PeerVersions

log = logging.getLogger("roster.engine.cycle")

SOURCE_BATCH = 1_000
# The event loop gets a turn after this many objects planned. The worker and the result writer (whose
# every call to the state store's thread returns through the loop) wait for it: a batch planned in
# one stretch held them back for tens of milliseconds at a time, and results piled up behind it.
PLAN_SLICE = 100
CREATES_WAITING = 20_000
"""Creates a cycle holds back while linked objects are still unread (their operations' memory): the
first ones go on past it, checked by the result consumer only (see `_plan_and_publish`)."""


KEPT_BACK_RETRY_S = 60.0
"""How soon a job runs again whose disabled creates or updates were kept back from workers of the
previous build (`CycleRunner._kept_back`)."""


class CycleRunner:
    """Runs the cycles of the jobs in `config` against one broker and one state store."""

    def __init__(
        self,
        config: EngineConfig,
        broker: Broker,
        state: StateStore,
        *,
        metrics: EngineMetrics | None = None,
        peers: PeerVersions | None = None,
    ) -> None:
        """`peers`: the wire versions of the workers, when they may be of another build than this
        one (a scaled engine); without, every message is in this build's version (embedded)."""
        self.config = config
        self.broker = broker
        self.state = state
        self.metrics = metrics or EngineMetrics(CollectorRegistry())
        self.tracker = Tracker(redacted={job.name: job.redacted for job in config.jobs})
        self.wire = WireVersions(broker, peers)
        self.publisher = Publisher(
            broker, config.publish, self.metrics, versions=self.wire, refused=self._kept_back
        )
        self.control = JobControl(state, config.quarantine)
        self.listings = Listings(broker, versions=self.wire)
        self.results = ResultConsumer(
            broker,
            state,
            self.tracker,
            metrics=self.metrics,
            observers=(self.control.observe,),
            listings=self.listings,
            versions=self.wire,
        )
        self.results.group_jobs = frozenset(j.name for j in config.jobs if j.object_type == "group")
        self.results.rehire = {j.name: j.rehire for j in config.jobs if j.rehire is not None}
        self._job_locks: dict[str, asyncio.Lock] = {}
        self.leases = CycleLeases(state)
        self.clock: Callable[[], float] = time.time
        """Unix seconds, as planning counts a leaver's grace and reads dates (tests move it instead
        of waiting days)."""
        self.date_due: dict[str, float | None] = {}
        """For a job with `dates`: the first moment a person it read changes phase (a prehire's
        creation, a start, an end), when the scheduler runs it (None: none to come). Absent until a
        full read of the job in this process: its first cycle reads the whole source."""
        self._kept_back_due: dict[str, float] = {}
        self.cycle_observers: list[Callable[[CycleSummary], None]] = []
        """Told of each cycle that ends (not one interrupted), after its metrics: a serving command
        prints a line per cycle."""

    async def start(self) -> None:
        await self.control.load()
        await self.leases.start()
        await self.results.start()

    async def aclose(self) -> None:
        await self.publisher.aclose()
        await self.results.aclose()
        await self.leases.aclose()

    async def __aenter__(self) -> CycleRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def source_for(self, job: JobConfig, since: str | None = None) -> Source:
        return job.source.open(since, state=self.state)

    async def run_cycle(
        self,
        job: JobConfig,
        *,
        trigger: str = "manual",
        on_start: Callable[[CycleProgress], None] | None = None,
        approved: frozenset[str] = frozenset(),
    ) -> CycleSummary:
        """One cycle of `job`; deprovisions of the source ids in `approved` pass the deletion guard."""
        if job.members is None:
            async with self.job_lock(job.name):
                return await self._run(job, trigger, on_start, approved)
        # A group cycle reads the member jobs' state: never while one of their cycles is writing it.
        # Taken in the order of their names, so two group jobs that name each other never deadlock.
        async with contextlib.AsyncExitStack() as locks:
            for name in sorted({job.name, *job.members.jobs}):
                await locks.enter_async_context(self.job_lock(name))
            return await self._run(job, trigger, on_start, approved)

    def _dates_due(self, job: JobConfig) -> bool:
        """Whether a cycle of `job` must read the whole source for its dates: none read yet in this
        process, or a person's phase changes by now."""
        if job.dates is None:
            return False
        if job.name not in self.date_due:
            return True
        due = self.date_due[job.name]
        return due is not None and self.clock() >= due

    def _saw_dates(self, job: JobConfig, planner: Planner, *, whole: bool) -> None:
        """Keep the next date change the cycle read: all there is after a whole read; after part of
        one (incremental, or cut short), the earlier of it and what was known."""
        kept_back = self._kept_back_due.pop(job.name, None)
        if kept_back is not None and kept_back <= self.clock():
            kept_back = None  # kept back by an earlier cycle's last flush: this cycle sent them again
        if whole:
            self.date_due[job.name] = next_boundary(planner.next_date, kept_back)
        elif job.name in self.date_due:
            self.date_due[job.name] = next_boundary(self.date_due[job.name], planner.next_date)

    def job_lock(self, job: str) -> asyncio.Lock:
        """Held by whatever runs or reconciles `job`: one at a time."""
        return self._job_locks.setdefault(job, asyncio.Lock())

    async def planner_for(
        self,
        job: JobConfig,
        cycle_id: str,
        snapshot: Snapshot,
        *,
        only: str | None = None,
        moved: Mapping[str, Set[str]] | None = None,
    ) -> Planner:
        """A planner of `job` against `snapshot` (see `job_planner`) that skips the operations in flight."""
        in_flight = self.tracker.in_flight(job.name)
        return await job_planner(
            self.state, job, cycle_id, snapshot, in_flight=in_flight, only=only, moved=moved, now=self.clock()
        )

    async def moves_since(self, job: JobConfig) -> tuple[int, dict[str, set[str]]]:
        """The latest move, and what moved since the job's last full cycle in the jobs its references
        name (`StateStore.moves`)."""
        references = references_of(job)
        jobs = references.jobs if references is not None else ()
        return await self.state.moves(jobs, self.control.moves_seen(job.name))

    async def _saw_moves(self, job: JobConfig, planner: Planner, latest: int) -> None:
        """After a full read whose planning ended: the objects pointing at what moved up to `latest`
        were planned (unless one was in flight, then they are planned again next time); forget the
        moves every job with references has seen."""
        if not planner.forced & set(planner.deferred):
            await self.control.saw_moves(job.name, latest)
        seen = [self.control.moves_seen(j.name) for j in self.config.jobs if references_of(j) is not None]
        upto = min((s or 0 for s in seen), default=latest)
        if upto:
            await self.state.prune_moves(upto)

    async def _run(
        self,
        job: JobConfig,
        trigger: str,
        on_start: Callable[[CycleProgress], None] | None,
        approved: frozenset[str],
    ) -> CycleSummary:
        started = time.perf_counter()
        if self.control.switches(job.name).quarantine_reason is not None:
            await self.control.start_quarantined_cycle(job.name)
        cycle_id = _new_cycle_id()
        await self.state.start_cycle(cycle_id, job.name, trigger, **self.leases.claim())
        progress = self.tracker.start_cycle(cycle_id, job.name)
        if on_start is not None:
            on_start(progress)
        since = (
            self.control.since(job.name, job.source.full_import_every_s) if job.source.incremental else None
        )
        if since is not None and self._dates_due(job):
            since = None  # an incremental read sees no date pass on a row that did not change
        source = self.source_for(job, since)
        latest_move, moved = await self.moves_since(job)
        planner = await self.planner_for(job, cycle_id, await self.state.fingerprints(job.name), moved=moved)
        memberships = planner.membership.held_count if planner.membership is not None else None
        gate = UpdateGate(self.state, job, len(planner.snapshot), approved, memberships=memberships)
        from_empty = not len(planner.snapshot)
        if from_empty:
            self.results.linking_from_empty(job.name)
        try:
            read, error, quarantined = await self._plan_and_publish(
                job, cycle_id, planner, source, progress, gate
            )
            held: list[Operation | Unapplied] = list(gate.held)
            holds = gate.holds()
            full = source.full  # an incremental read does not see what is unchanged
            if job.dates is not None:
                self._saw_dates(job, planner, whole=full and error is None)
            judged = error is None and quarantined is None and full
            if judged:
                await self._saw_moves(job, planner, latest_move)
                missing, missing_holds = await self._deprovision(job, planner, approved, read, source.skipped)
                held += missing
                holds += missing_holds
            elif (
                error is None
                and quarantined is None
                and not source.skipped
                and isinstance(source, ReportsDeletions)
            ):  # a read that met errors deprovisions nobody; its deletions wait for the next full read
                gone, gone_holds = await self._deprovision_gone(job, planner, approved, source.deleted)
                held += gone
                holds += gone_holds
            staged = await self._stage(job, cycle_id, held, holds, clear=judged)
            await self.publisher.flush()
            deadline_s = self.config.deadline.for_ops(progress.outstanding, self.config.publish.batch_size)
            self.tracker.planning_done(cycle_id, deadline_s)
            await self.results.wait_or_expire(progress)
        except asyncio.CancelledError:
            # Stopped mid-cycle: what was published stays on the broker and its results update the
            # state whenever an engine consumes them; the cycle itself is recorded as interrupted.
            await asyncio.shield(self.state.finish_cycle(cycle_id, "interrupted", {"read": progress.read}))
            raise
        finally:
            self.tracker.end_cycle(cycle_id)
            self.results.linking_done(job.name, from_empty=from_empty)
        quarantined = quarantined or self.control.verdict(job.name)
        summary = _summary(
            job, cycle_id, progress, planner, source, read, error, time.perf_counter() - started
        )
        status = summary.status
        if quarantined and status != "failed":
            status = "quarantined"
        elif staged and status == "succeeded":
            status = "held"
        staged_updates = len(gate.held) if staged else 0
        summary = dataclasses.replace(
            summary,
            staged=staged,
            staged_updates=staged_updates,
            holds=holds,
            quarantined=quarantined,
            status=status,
            last_reconciled=await self.state.last_reconciled(job.name),
            failed_members=await self._failed_members(job, planner),
        )
        await self._judge(job, summary)
        if job.source.incremental and summary.status == "succeeded":
            # Only after every object succeeded: a failed one is read (and tried) again next time.
            await self.control.read_done(job.name, source.watermark, full=full)
        lost = {"lost_in_transit": progress.lost} if progress.lost else {}
        await self.state.finish_cycle(cycle_id, summary.status, {**summary.counts(), **lost})
        self.metrics.record_cycle(summary)
        for observe in self.cycle_observers:
            observe(summary)
        log.info(
            "event=cycle_done job=%s cycle=%s status=%s %s",
            job.name,
            cycle_id,
            summary.status,
            " ".join(f"{k}={v}" for k, v in summary.counts().items()),
        )
        release_memory()  # what the cycle held (its snapshot, the ids read) is not kept until the next
        return summary

    async def _failed_members(self, job: JobConfig, planner: Planner) -> tuple[tuple[str, str], ...]:
        """The pending members whose own operation failed last (in the member job's log), with why."""
        if job.members is None or not planner.pending_member_ids:
            return ()
        failed: dict[str, str] = {}
        for name in reversed(job.members.jobs):  # the first job that knows a member wins
            failed.update(await self.state.last_failures(name, sorted(planner.pending_member_ids)))
        return tuple(sorted(failed.items()))[:MEMBER_FAILURES_SHOWN]

    async def _plan_and_publish(
        self,
        job: JobConfig,
        cycle_id: str,
        planner: Planner,
        source: Source,
        progress: CycleProgress,
        gate: UpdateGate,
    ) -> tuple[int, str | None, str | None]:
        """Read the source, plan each object and publish its operation, the updates through the
        mass-change `gate` (those that wait go once the read is complete, not after a read cut
        short: the next cycle plans them again). Returns the count read, the error that cut the read
        short, and the reason for a quarantine that stopped it, if any."""
        read = 0
        links = CycleLinks(
            self.listings,
            job=job.name,
            target=job.target,
            object_type=job.object_type,
            matching=list(job.matching),
            min_creates=job.listing_min_creates,
            timeout_s=job.listing_timeout_s,
            send=self._publish,
        )

        waiting: deque[Operation] = deque()

        async def send(op: Operation) -> None:
            # While linked objects are not read yet (their fingerprints are left), a create waits
            # until every one was read (`engine.core.collisions`); past `CREATES_WAITING`, the first
            # that waited goes on (the result consumer still never links it to another's entry).
            if op.action == "create" and planner.collisions is not None and planner.snapshot.fingerprints:
                waiting.append(op)
                if len(waiting) <= CREATES_WAITING:
                    return
                op = waiting.popleft()
            if not gate.keep(op):
                await links.add(op)

        nested = NestedGroups() if job.members is not None and job.name in job.members.groups else None
        try:
            async for batch in source.batches(SOURCE_BATCH):
                # Checked per batch too: most objects are settled unchanged in `prepare_batch`, unplanned.
                reason = await self._hold_or_stop(job.name, cycle_id, read)
                if reason is not None:
                    await links.finish()
                    return read, None, reason
                now = batch if nested is None else await hold_nested(self.state, job, nested, batch)
                reason = await self._plan_batch(job, cycle_id, planner, now, read, send)
                if reason is not None:
                    await links.finish()
                    return read, None, reason
                for op in await gate.release():
                    await links.add(op)
                read += len(batch)
                progress.read = read
            if nested is not None and len(nested):
                # A level's groups are members of the next: its creates go before the next is planned.
                waited = partial(self._send_waiting, planner, cycle_id, waiting, links.add)
                reason = await self._plan_nested(
                    job, cycle_id, planner, nested, progress, read, send, links, waited
                )
                if reason is not None:
                    await links.finish()
                    return read, None, reason
                for op in await gate.release():
                    await links.add(op)
        except RosterError as exc:
            log.error("event=cycle_source_failed job=%s cycle=%s error=%r", job.name, cycle_id, str(exc))
            await links.finish()
            return read, str(exc), None
        if planner.deferred_objects:
            reason = await self._plan_deferred(job, cycle_id, planner, read, send)
            if reason is not None:
                await links.finish()
                return read, None, reason
        for op in gate.finish():
            await links.add(op)
        await self._send_waiting(planner, cycle_id, waiting, links.add)
        await links.finish()
        return read, None, None

    async def _plan_batch(
        self,
        job: JobConfig,
        cycle_id: str,
        planner: Planner,
        batch: list[SourceObject],
        read: int,
        send: Callable[[Operation], Awaitable[None]],
    ) -> str | None:
        """Plan a batch of source objects and send their operations; the reason to stop, if any."""
        failures: list[Result] = []
        to_plan, loaded = await prepare_batch(self.state, job, planner, batch)
        if planner.newly_forced:  # not applied until their update succeeds: planned again if not
            await self.state.mark_drifted(job.name, planner.newly_forced)
            planner.newly_forced.clear()
        for start in range(0, len(to_plan), PLAN_SLICE):
            if start:
                await asyncio.sleep(0)
            for obj in to_plan[start : start + PLAN_SLICE]:
                # Checked per object, so that a pause or a quarantine takes hold at once.
                reason = await self._hold_or_stop(job.name, cycle_id, read)
                if reason is not None:
                    await self._record_failures(cycle_id, failures)
                    return reason
                await self._plan_object(planner, obj, failures, send)
        await self._record_failures(cycle_id, failures)
        planner.snapshot.drop_entries(loaded)
        planner.snapshot.shrink()
        return None

    async def _plan_deferred(
        self,
        job: JobConfig,
        cycle_id: str,
        planner: Planner,
        read: int,
        send: Callable[[Operation], Awaitable[None]],
    ) -> str | None:
        """Plan again the objects the read found with an operation in flight, once it ended: that
        operation was planned from an older read (a push planned on demand, a group whose members were
        still pending, a cycle's before a restart), and without this the object would stay as it left
        it until the next cycle, which a job without a schedule never has. One still in flight past
        the cycle's deadline for them is left to the next cycle. The reason to stop, if any."""
        objects, planner.deferred_objects = planner.deferred_objects, []
        deadline_s = self.config.deadline.for_ops(len(objects), self.config.publish.batch_size)
        busy = await self._until_settled(job.name, cycle_id, [obj.source_id for obj in objects], deadline_s)
        ready = [obj for obj in objects if obj.source_id not in busy]
        if not ready:
            return None
        ids = [obj.source_id for obj in ready]
        planner.plan_again(await self.state.entries(job.name, ids), ids)
        log.info("event=deferred_planned job=%s cycle=%s objects=%d", job.name, cycle_id, len(ready))
        return await self._plan_batch(job, cycle_id, planner, ready, read, send)

    async def _until_settled(
        self, job: str, cycle_id: str, source_ids: Sequence[str], timeout_s: float
    ) -> set[str]:
        """Wait until no operation of `source_ids` is in flight, at most `timeout_s`; those still in
        flight then (their own cycle gives them up at its deadline)."""
        in_flight = self.tracker.in_flight(job)
        until = time.monotonic() + timeout_s
        while any(s in in_flight for s in source_ids) and time.monotonic() < until:
            await asyncio.sleep(0.02)
        busy = {s for s in source_ids if s in in_flight}
        if busy:
            log.warning("event=still_in_flight job=%s cycle=%s objects=%d", job, cycle_id, len(busy))
        return busy

    async def _plan_nested(
        self,
        job: JobConfig,
        cycle_id: str,
        planner: Planner,
        nested: NestedGroups,
        progress: CycleProgress,
        read: int,
        send: Callable[[Operation], Awaitable[None]],
        links: CycleLinks,
        waited: Callable[[], Awaitable[None]],
    ) -> str | None:
        """Plan the groups held back for their nested members (see `engine.core.nesting`), a level
        at a time, after the results of what was sent before (`waited` sends the creates that wait
        for the linked objects still unread); refuse those in a nesting loop."""
        levels, loops = nested.order()
        busy = [obj for obj, _ in loops if obj.source_id in planner.in_flight]
        for obj in busy:  # refused once its operation's result is in, like any change meanwhile
            planner.deferred.append(obj.source_id)
        loops = [(obj, loop) for obj, loop in loops if obj.source_id not in planner.in_flight]
        if loops:
            ids = [obj.source_id for obj, _ in loops]
            planner.snapshot.add_entries(await self.state.entries(job.name, ids))
            refused = [planner.refuse(obj, NestingLoop(loop)) for obj, loop in loops]
            planner.snapshot.drop_entries(ids)
            await self._record_failures(cycle_id, refused)
            log.warning("event=nesting_loop job=%s cycle=%s groups=%s", job.name, cycle_id, sorted(ids))
        for level in levels:
            await waited()
            await links.finish()
            await self.publisher.flush()
            await self._settled(job.name, cycle_id, progress)
            for start in range(0, len(level), SOURCE_BATCH):
                reason = await self._plan_batch(
                    job, cycle_id, planner, level[start : start + SOURCE_BATCH], read, send
                )
                if reason is not None:
                    return reason
        return None

    async def _settled(self, job: str, cycle_id: str, progress: CycleProgress) -> None:
        """Wait until every operation the cycle sent so far has its result (their target ids are then in
        the state), or until none came for the cycle's deadline: then the groups planned next get the
        members still unknown as pending, for a later cycle."""
        deadline_s = self.config.deadline.for_ops(progress.outstanding, self.config.publish.batch_size)
        left, since = progress.outstanding, time.monotonic()
        while progress.outstanding:
            if progress.outstanding < left:
                left, since = progress.outstanding, time.monotonic()
            elif time.monotonic() - since > deadline_s:
                log.warning(
                    "event=nested_groups_unsettled job=%s cycle=%s outstanding=%d",
                    job,
                    cycle_id,
                    progress.outstanding,
                )
                return
            await asyncio.sleep(0.02)

    async def _send_waiting(
        self,
        planner: Planner,
        cycle_id: str,
        waiting: deque[Operation],
        send: Callable[[Operation], Awaitable[None]],
    ) -> None:
        """After a whole read (or before a level of nested groups): send the creates held back, but
        those whose value a linked object read after them holds (they fail, naming it). A read cut
        short sends none: the next cycle plans them."""
        if planner.collisions is None or not waiting:
            return
        failures: list[Result] = []
        planned = 0
        while waiting:
            op = waiting.popleft()
            planned += 1
            error = planner.collisions.taken_from(op.source_id, op.attributes)
            if error is not None:
                failures.append(planner.failure(SourceObject(op.source_id, {}), error))
            else:
                await send(op)
            if planned % PLAN_SLICE == 0:
                await asyncio.sleep(0)
        await self._record_failures(cycle_id, failures)

    async def _hold_or_stop(self, job: str, cycle_id: str, read: int) -> str | None:
        """Wait while the job is paused; the reason to stop planning if it is to be quarantined."""
        control = self.control
        if control.paused(job):
            log.info("event=cycle_paused job=%s cycle=%s read=%d", job, cycle_id, read)
            await control.wait_resumed(job)
        return control.verdict(job)

    async def _deprovision(
        self,
        job: JobConfig,
        planner: Planner,
        approved: frozenset[str],
        read: int,
        skipped: int,
    ) -> tuple[list[Operation], tuple[Hold, ...]]:
        """After a full read of `read` objects (`skipped` more could not be read): publish the
        deprovisions, or, when a hold applies to those `approved` does not name (the read was
        incomplete, the source shrank, or the deletion guard trips), return them all to be staged,
        and why."""
        last_read = self.control.last_complete_read(job.name)
        found = await plan_deprovisions(
            self.state, job, planner, approved=approved, read=read, skipped=skipped, last_read=last_read
        )
        if found.complete_read:
            await self.control.complete_read(job.name, read)
        if found.forget:
            await self.state.unlink(job.name, found.forget)
            log.warning(
                "event=grace_end_shared job=%s forgotten=%s reason=%r",
                job.name,
                ",".join(found.forget[:20]),
                "their account is held by another object of the job now (back under a new source id)",
            )
        if found.holds:
            return found.ops, found.holds
        for planned, op in enumerate(found.ops, 1):
            await self._publish(op)
            if planned % PLAN_SLICE == 0:
                await asyncio.sleep(0)
        return [], ()

    async def _deprovision_gone(
        self, job: JobConfig, planner: Planner, approved: frozenset[str], gone: Sequence[str]
    ) -> tuple[list[Operation], tuple[Hold, ...]]:
        """After an incremental read that saw `gone` deleted from the source: publish their
        deprovisions, or, when the deletion guard trips for those `approved` does not name, return
        them all to be staged."""
        if not gone:
            return [], ()
        planner.snapshot.add_entries(await self.state.entries(job.name, gone))
        ops = list(planner.plan_gone(gone))
        unapproved = sum(1 for op in ops if op.source_id not in approved)
        holds = deprovision_holds(job, unapproved, len(planner.snapshot), 0, None) if unapproved else ()
        if holds:
            return ops, holds
        for planned, op in enumerate(ops, 1):
            await self._publish(op)
            if planned % PLAN_SLICE == 0:
                await asyncio.sleep(0)
        return [], ()

    async def _stage(
        self,
        job: JobConfig,
        cycle_id: str,
        ops: list[Operation | Unapplied],
        holds: tuple[Hold, ...],
        *,
        clear: bool,
    ) -> int:
        """Stage `ops` for approval, for `holds`, in place of what the job held before; with no hold,
        drop what it held before if the cycle judged its deprovisions (`clear`). Returns how many
        are staged."""
        if not holds:
            if clear:
                await self.control.clear_staged(job.name)
            return 0
        reason = "; ".join(str(hold) for hold in holds)
        await self.control.stage(job.name, cycle_id, reason, [(op.source_id, op.action) for op in ops])
        await self.state.log_staged(ops, f"({reason})")
        return len(ops)

    async def run_one(
        self,
        job: JobConfig,
        source_id: str,
        obj: SourceObject | None,
        entry: StateEntry | None,
        *,
        timeout_s: float,
        read: int | None = None,
        skipped: int = 0,
    ) -> tuple[str, dict[str, int]]:
        """A cycle of one object, on demand: plan and publish its operation alone (a deprovision if it
        left the source or its scope), wait for its result; returns the cycle id and its counts.

        `read` is the count of a whole read of the source that did not find the object (None: the
        object was found, or the read was not whole, and then a missing object is not deprovisioned);
        `skipped` the rows it could not read. A deprovision meets the holds of a cycle's (an incomplete
        read, a shrunk source, the deletion guard): when one applies it is not sent but logged as held,
        with the reason, and the cycle ends `held`. An object with an operation in flight (a cycle's,
        planned from an older read) is planned once that ended, from what it left: within `timeout_s`,
        else it is left to the next cycle, and nothing is sent."""
        await self._after_cycles_read(job)
        cycle_id = _new_cycle_id("-one")
        await self.state.start_cycle(cycle_id, job.name, "on_demand", **self.leases.claim())
        progress = self.tracker.start_cycle(cycle_id, job.name)
        if source_id in self.tracker.in_flight(job.name):  # planned after it, from what it leaves
            await self._until_settled(job.name, cycle_id, [source_id], timeout_s)
            entry = await self.state.entry(job.name, source_id)
        snapshot = Snapshot.of({source_id: entry} if entry else {})
        _latest, moved = await self.moves_since(job)  # consumed by the next full cycle, not this one
        planner = await self.planner_for(job, cycle_id, snapshot, only=source_id, moved=moved)
        held = 0
        try:
            failures: list[Result] = []
            if obj is not None:
                await resolve_references(self.state, planner.references, [obj])
                await load_departures(self.state, planner, [obj])
                await self._plan_object(planner, obj, failures)
            if (obj is not None and not planner.seen) or (obj is None and read is not None):
                held = await self._deprovision_one(job, planner, read, skipped)
            await self._settle_one(cycle_id, progress, failures, timeout_s)
        finally:
            self.tracker.end_cycle(cycle_id)
        return cycle_id, await self._finish_one(cycle_id, progress, held)

    async def run_some(
        self,
        job: JobConfig,
        objects: Mapping[str, SourceObject | None],
        *,
        timeout_s: float,
        read: int | None = None,
    ) -> tuple[str, dict[str, int]]:
        """`run_one` for several objects of a job without group members, in one on-demand cycle: each
        planned (None: it left the source, deprovisioned only when `read` is given, as in `run_one`),
        published together, their results waited for; returns the cycle id and its counts. The
        holds of a cycle apply to the deprovisions as in `run_one`, and an object with an operation in
        flight is planned once that ended, as there."""
        if job.members is not None:
            raise ValueError(f"job {job.name} has group members: plan its groups with run_one")
        await self._after_cycles_read(job)
        cycle_id = _new_cycle_id("-some")
        await self.state.start_cycle(cycle_id, job.name, "on_demand", **self.leases.claim())
        progress = self.tracker.start_cycle(cycle_id, job.name)
        await self._until_settled(job.name, cycle_id, list(objects), timeout_s)
        wanted = [s for s, obj in objects.items() if obj is not None or read is not None]
        snapshot = Snapshot.of(await self.state.entries(job.name, wanted))
        _latest, moved = await self.moves_since(job)
        planner = await self.planner_for(job, cycle_id, snapshot, moved=moved)
        present = [obj for obj in objects.values() if obj is not None]
        held = 0
        try:
            failures: list[Result] = []
            await resolve_references(self.state, planner.references, present)
            await load_departures(self.state, planner, present)
            for obj in present:
                await self._plan_object(planner, obj, failures)
            held = await self._deprovision_one(job, planner, read, 0)  # out of scope, or gone (with `read`)
            await self._settle_one(cycle_id, progress, failures, timeout_s)
        finally:
            self.tracker.end_cycle(cycle_id)
        return cycle_id, await self._finish_one(cycle_id, progress, held)

    async def _after_cycles_read(self, job: JobConfig) -> None:
        """Wait for the cycles running of the jobs whose objects planning `job` looks up (its members'
        jobs, the jobs its references name): planned on demand meanwhile, an object would find those a
        cycle is creating not there yet and go out with them pending, and a job over the inbound
        service may have no later cycle to send them (a push after a restart, while the first cycles
        create what was stored before it). Not held: a cycle that starts next reads what this sends."""
        references = references_of(job)
        names = {
            *(job.members.jobs if job.members is not None else ()),
            *(references.jobs if references else ()),
        }
        for name in sorted(names):
            lock = self.job_lock(name)
            if lock.locked():
                async with lock:
                    pass

    async def _deprovision_one(self, job: JobConfig, planner: Planner, read: int | None, skipped: int) -> int:
        """Publish what an on-demand cycle leaves to deprovision, unless a cycle's hold applies: then
        log it as held with the reason. Returns how many were held."""
        missing = list(planner.plan_missing())
        holds = await self._one_holds(job, len(missing), read, skipped) if missing else ()
        if holds:
            await self.state.log_staged(missing, f"({'; '.join(str(hold) for hold in holds)})")
            return len(missing)
        for op in missing:
            await self._publish(op)
        return 0

    async def _settle_one(
        self, cycle_id: str, progress: CycleProgress, failures: list[Result], timeout_s: float
    ) -> None:
        """Send what an on-demand cycle planned and wait for its results. Past `timeout_s` an operation
        is given up like any other whose result never came: it gets its final log record and is not
        left in flight, where it would block its object."""
        await self._record_failures(cycle_id, failures)
        await self.publisher.flush()
        self.tracker.planning_done(cycle_id, timeout_s)
        await self.results.wait_or_expire(progress)

    async def _finish_one(self, cycle_id: str, progress: CycleProgress, held: int) -> dict[str, int]:
        """Record how an on-demand cycle ended; its counts."""
        counts = dict(progress.counts)
        status = "failed" if counts.get("failed") else "held" if held else "succeeded"
        await self.state.finish_cycle(cycle_id, status, {**counts, **({"staged": held} if held else {})})
        return counts

    async def _one_holds(
        self, job: JobConfig, deprovisions: int, read: int | None, skipped: int
    ) -> tuple[Hold, ...]:
        """A cycle's holds (`deprovision_holds`) on an on-demand deprovision; `read` as in `run_one`."""
        shrink = None
        if read is not None:
            shrink = job.source_shrink.describe(read, self.control.last_complete_read(job.name))
        return deprovision_holds(job, deprovisions, await self.state.count(job.name), skipped, shrink)

    async def _plan_object(
        self,
        planner: Planner,
        obj: SourceObject,
        failures: list[Result],
        send: Callable[[Operation], Awaitable[None]] | None = None,
    ) -> None:
        """Plan one object and publish its operation (through `send` if given); a mapping that fails on
        it joins `failures`."""
        try:
            op = planner.plan(obj)
        except MappingError as exc:
            failures.append(planner.failure(obj, exc))
            return
        if op is not None:
            await (send or self._publish)(op)

    async def _publish(self, op: Operation) -> None:
        self.tracker.register(op)
        await self.publisher.add(op)

    async def _kept_back(self, failures: list[Result]) -> None:
        """Operations the publisher did not send, their target's workers reading a version that cannot
        carry them (`engine.pipeline.wire.expressible`): logged and counted as failed, so the next
        cycle plans them again. Not told to the job control: the target did not fail them. Only a
        job's dates make such operations (prehires), so that job's next cycle comes within
        `KEPT_BACK_RETRY_S` (`date_due`), by when presence has told the engine its workers' versions
        (an engine just started knows none, and writes the previous version)."""
        await self.state.apply_results(failures, self.tracker.sent(failures))
        self.tracker.settle(failures)
        again = self.clock() + KEPT_BACK_RETRY_S
        for job in {r.job for r in failures}:
            self._kept_back_due[job] = again  # kept through the end of the cycle sending them
            self.date_due[job] = next_boundary(self.date_due.get(job), again)

    async def _record_failures(self, cycle_id: str, failures: list[Result]) -> None:
        """Failures found before publishing (a mapping that failed): logged and counted as results."""
        if failures:
            await self.state.apply_results(failures)
            self.tracker.record_unpublished(cycle_id, failures)

    async def _judge(self, job: JobConfig, summary: CycleSummary) -> None:
        """Quarantine the job if its results say so; release it after a cycle that went well."""
        if summary.quarantined is not None:
            await self.control.quarantine(job.name, summary.quarantined)
        elif summary.status in ("succeeded", "held", "incomplete"):  # the target took every operation
            await self.control.release(job.name, f"cycle {summary.cycle_id} {summary.status}")


async def job_planner(
    state: StateStore,
    job: JobConfig,
    cycle_id: str,
    snapshot: Snapshot,
    *,
    in_flight: frozenset[str] | set[str] = frozenset(),
    only: str | None = None,
    moved: Mapping[str, Set[str]] | None = None,
    now: float | None = None,
) -> Planner:
    """A planner of `job` against `snapshot`; a group job's also resolves members from the state
    (of every group, or `only` that one). `moved`: what moved since the job's last full cycle
    (`CycleRunner.moves_since`)."""
    return Planner(
        job=job.name,
        target=job.target,
        object_type=job.object_type,
        cycle_id=cycle_id,
        mapper=job.mapper(),
        snapshot=snapshot,
        in_flight=in_flight,
        deprovision=job.deprovision,
        scope=job.scoping,
        membership=await load_membership(state, job, only, per_batch=only is None),
        references=references_of(job),
        moved=moved,
        delete_after_s=job.delete_after_s,
        now=now,
        dates=job.dates,
        rehire=job.rehire,
    )


def references_of(job: JobConfig) -> References | None:
    """The job's reference attributes, unresolved (`resolve_references` loads a batch's)."""
    mappings = [m for m in job.mappings if isinstance(m, ReferenceMapping)]
    return References(mappings) if mappings else None


async def resolve_references(
    state: StateStore, references: References | None, batch: Sequence[SourceObject]
) -> None:
    """Load the target ids of the objects a batch's references name, before it is mapped."""
    if references is None:
        return
    for job, ids in (await _referenced(state, references, batch)).items():
        references.resolve(job, ids)


async def _referenced(
    state: StateStore, references: References, batch: Sequence[SourceObject]
) -> dict[str, dict[str, str]]:
    """The target ids of what a batch's references name, by the job that holds them."""
    return {
        job: await state.target_ids(job, ids) if ids else {} for job, ids in references.wanted(batch).items()
    }


async def prepare_batch(
    state: StateStore, job: JobConfig, planner: Planner, batch: list[SourceObject]
) -> tuple[list[SourceObject], list[str]]:
    """Map a batch ahead of planning it, a slice at a time (the loop gets its turns), settling the
    unchanged objects, and load the entries of the objects that need them in one query. Returns
    the objects left to plan and the source ids whose entries were loaded."""
    membership = planner.membership
    if membership is not None and job.members is not None:
        members = {m for obj in batch for m in membership.wanted(obj.source_id, obj.attributes)}
        membership.resolve(*await member_target_ids(state, job.members, members))
    to_plan: list[SourceObject] = []
    wanted: list[str] = []
    for start in range(0, len(batch), PLAN_SLICE):
        if start:
            await asyncio.sleep(0)
        planned, needed = planner.prepare(batch[start : start + PLAN_SLICE])
        to_plan += planned
        wanted += needed
    await resolve_references(state, planner.references, to_plan)  # only what is planned needs them
    await load_departures(state, planner, to_plan)
    if wanted:
        planner.snapshot.add_entries(await state.entries(job.name, wanted))
    return to_plan, wanted


async def load_departures(state: StateStore, planner: Planner, objects: Sequence[SourceObject]) -> None:
    """The deleted accounts that creates of these objects may be the rehire of (`engine.core.rehire`)."""
    if keys := planner.rehire_keys(objects):
        planner.departed.update(await state.departed(planner.job, keys))


@dataclasses.dataclass(frozen=True, slots=True)
class Deprovisions:
    """What a full read leaves to deprovision, the holds that apply to it, and whether the read counts
    as complete for the source shrink check (the next reads compare with it)."""

    ops: list[Operation]
    holds: tuple[Hold, ...]
    complete_read: bool
    forget: list[str] = dataclasses.field(default_factory=list)
    """Leavers at the end of their grace whose account another object holds: forgotten, not deleted."""


async def plan_deprovisions(
    state: StateStore,
    job: JobConfig,
    planner: Planner,
    *,
    approved: frozenset[str],
    read: int,
    skipped: int,
    last_read: int | None,
) -> Deprovisions:
    """After a full read of `read` objects (`skipped` more could not be read; the last complete read
    had `last_read`): the deprovisions of what the read did not see, and the holds that apply to
    those `approved` does not name (an incomplete read, a shrunk source, the deletion guard)."""
    planner.snapshot.add_entries(await state.entries(job.name, planner.unseen()))
    missing = list(planner.plan_missing())
    shared = await _shared_at_grace_end(state, job, missing)
    if shared:
        forgotten = set(shared)
        missing = [op for op in missing if op.source_id not in forgotten]
    unapproved = sum(1 for op in missing if op.source_id not in approved)
    shrink = job.source_shrink.describe(read, last_read)
    holds = deprovision_holds(job, unapproved, len(planner.snapshot), skipped, shrink) if unapproved else ()
    return Deprovisions(missing, holds, skipped == 0 and (shrink is None or unapproved == 0), shared)


async def _shared_at_grace_end(state: StateStore, job: JobConfig, missing: Sequence[Operation]) -> list[str]:
    """The leavers whose grace is over but whose account another object of the job holds now (one back
    under a new source id, whose create matched the old account): deleting it would take it from them,
    so they are only forgotten."""
    if job.delete_after_s is None:
        return []
    ending = {op.target_id: op.source_id for op in missing if op.action == "delete" and op.target_id}
    if not ending:
        return []
    sharers = await state.sharers(job.name, ending)
    return sorted(
        source_id for target_id, source_id in ending.items() if sharers.get(target_id, set()) - {source_id}
    )


def deprovision_holds(
    job: JobConfig, unapproved: int, held: int, skipped: int, shrink: str | None
) -> tuple[Hold, ...]:
    """The checks that hold `unapproved` deprovisions of a job that holds `held` objects."""
    holds = []
    if skipped:
        lost = f"{skipped:,} source row(s) could not be read, so whoever they hold looks gone from the source"
        holds.append(Hold("incomplete_read", lost))
    if shrink is not None:
        holds.append(Hold("source_shrink", shrink))
    if job.deletion_guard.trips(unapproved, held):
        holds.append(Hold("deletion_guard", job.deletion_guard.describe(unapproved, held)))
    return tuple(holds)


def _new_cycle_id(suffix: str = "") -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}{suffix}"


async def load_membership(
    state: StateStore, job: JobConfig, only: str | None = None, *, per_batch: bool = False
) -> Membership | None:
    """For a group job, its members' target ids and what its groups (or group `only`) hold as applied.
    `per_batch`: no target ids yet; a cycle loads those of each batch's members (`prepare_batch`)."""
    if job.members is None:
        return None
    target_ids, groups = ({}, set()) if per_batch else await member_target_ids(state, job.members)
    return Membership(
        job.members,
        target_ids=target_ids,
        applied=await state.applied_members(job.name, only),
        groups=groups,
    )


async def member_target_ids(
    state: StateStore, settings: MembersSettings, source_ids: set[str] | None = None
) -> tuple[dict[str, str], set[str]]:
    """The target ids of the members `source_ids` (None: of every object of the member jobs), each
    looked up in `settings.job` then in each of `settings.groups`, the first job that knows it winning;
    and the set of those target ids that are groups."""
    found = await state.target_ids(settings.job, source_ids)
    groups: set[str] = set()
    for name in settings.groups:
        left = None if source_ids is None else source_ids - found.keys()
        if left is not None and not left:
            break
        more = await state.target_ids(name, left)
        if source_ids is None:
            more = {m: t for m, t in more.items() if m not in found}
        found.update(more)
        groups.update(more.values())
    return found, groups


async def hold_nested(
    state: StateStore, job: JobConfig, nested: NestedGroups, batch: list[SourceObject]
) -> list[SourceObject]:
    """The groups of a batch to plan now; holds back in `nested` those naming members that may be
    groups of the job (not known to a job looked up before it), to plan after the read."""
    assert job.members is not None
    settings = job.members
    named = [member_ids(obj.attributes.get(settings.source), settings.separator) for obj in batch]
    ids = {m for members in named for m in members}
    known: set[str] = set()
    for name in settings.jobs[: settings.jobs.index(job.name)]:
        if ids - known:
            known.update(await state.target_ids(name, ids - known))
    now: list[SourceObject] = []
    for obj, members in zip(batch, named, strict=True):
        nested.see(obj.source_id)
        maybe_groups = [m for m in members if m not in known]
        if maybe_groups:
            nested.hold(obj, maybe_groups)
        else:
            now.append(obj)
    return now


def _summary(
    job: JobConfig,
    cycle_id: str,
    progress: CycleProgress,
    planner: Planner,
    source: Source,
    read: int,
    error: str | None,
    elapsed_s: float,
) -> CycleSummary:
    counts = progress.counts
    latencies = sorted(progress.latencies_s)
    p50 = p99 = None
    if latencies:
        p50 = statistics.median(latencies) * 1000.0
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000.0
    failed = counts["failed"]
    if error:
        status = "failed"
    elif failed:
        status = "completed_with_failures"
    elif source.skipped:
        status = "incomplete"  # whoever the skipped rows hold was neither updated nor deprovisioned
    else:
        status = "succeeded"  # "held" when deprovisions are staged: `_run` knows that after this
    return CycleSummary(
        cycle_id=cycle_id,
        job=job.name,
        status=status,
        read=read,
        created=counts["created"],
        updated=counts["updated"],
        disabled=counts["disabled"],
        deleted=counts["deleted"],
        unchanged=planner.unchanged,
        out_of_scope=planner.out_of_scope,
        not_started=planner.not_started,
        ended=planner.ended,
        failed=failed,
        retries=progress.retries,
        skipped_rows=source.skipped,
        pending_members=planner.pending_members,
        pending_references=planner.pending_references,
        elapsed_s=elapsed_s,
        p50_latency_ms=p50,
        p99_latency_ms=p99,
        error=error,
        problems=tuple(source.problems),
    )
