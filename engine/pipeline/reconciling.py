"""Reconciling a job: read the target back, classify each object, and act on it per the job's policy.

A cycle compares the source with the state store, which says what Roster applied; only the target
says what it holds now. A reconciliation lists every object of the job's kind in the target through
its worker (the engine never holds the target's credentials: the request and its pages travel on the
queues, as a cycle's listing does), with every attribute the job maps; reads the whole source and maps
it with the job's own mappings; and classifies each object (`engine.core.reconcile`).

What it does about each situation (`engine.core.reconcile_policy`) goes through the ordinary path, so
it is logged, retried and guarded like any change:

* drifted, `correct`: the state forgets what it applied to the object, so the cycle that follows sends
  every mapped attribute again;
* missing, `recreate`: the state forgets the object, so the cycle creates it again (searching first);
* unlinked: the cycle's create finds it and links it, as a first cycle does;
* orphan, `disable` or `delete`: sent by the reconciliation itself (there is no source object to plan
  from), only after a complete read of the source, and held with the reason when the deletion guard
  trips; `report` (the default) touches nothing.

Each finding that is not in step becomes a log record (action `reconcile`, status its situation); the
counts per situation are the reconciliation's record among the cycles (trigger `reconcile`) and the
metric `roster_reconcile_objects{job,situation}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.errors import RosterError
from engine.config import JobConfig
from engine.core.membership import Membership
from engine.core.reconcile import ORPHAN_PREFIX, SITUATIONS, Finding, Reconciliation
from engine.core.references import map_object
from engine.mapping.functions.errors import MappingError
from engine.model import CycleSummary
from engine.pipeline.cycles import (
    SOURCE_BATCH,
    CycleRunner,
    load_membership,
    references_of,
    resolve_references,
)
from engine.pipeline.listing import Listing, ListingFailed
from engine.sources.base import Source
from engine.store.state import StateStore
from queues.contracts import MEMBERS, Operation

log = logging.getLogger("roster.engine.reconcile")

SHOWN_FINDINGS = 20
"""Findings a summary keeps to show; every one is in the log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileSummary:
    """What one reconciliation found and did."""

    cycle_id: str
    job: str
    status: str
    """`succeeded`, `failed` (nothing acted on: the listing or the read failed), or `held` (the orphan
    operations wait: the deletion guard tripped, or the read was incomplete)."""
    situations: dict[str, int]
    listed: int = 0
    read: int = 0
    skipped_rows: int = 0
    corrections: dict[str, int] = field(default_factory=dict)
    """What was set in motion: `correct` (drifted objects the next cycle updates), `recreate`,
    `link`, and the orphans' `disable` / `delete` sent."""
    held: str | None = None
    """Why orphan operations were not sent."""
    error: str | None = None
    findings: tuple[Finding, ...] = ()
    """The first findings not in step (`SHOWN_FINDINGS`), for a report."""
    cycle: CycleSummary | None = None
    """The cycle that applied the corrections, when one ran."""
    orphan_results: dict[str, int] = field(default_factory=dict)
    listing_s: float = 0.0
    elapsed_s: float = 0.0

    def counts(self) -> dict[str, int | float | None]:
        """As the cycle record's counts: per situation, then what was set in motion."""
        return {
            **{situation: self.situations.get(situation, 0) for situation in SITUATIONS},
            "listed": self.listed,
            "read": self.read,
            "skipped_rows": self.skipped_rows,
            **{f"to_{action}": count for action, count in self.corrections.items()},
            "elapsed_s": round(self.elapsed_s, 3),
        }

    @property
    def in_step(self) -> bool:
        """Every object in step (or deprovisioned as the policy wants): the target matches the source."""
        wrong = ("drifted", "missing", "unlinked", "orphan", "unknown")
        return self.status == "succeeded" and not any(self.situations.get(s) for s in wrong)


async def reconcile(
    runner: CycleRunner,
    job: JobConfig,
    *,
    trigger: str = "manual",
    act: bool = True,
    approve_orphans: bool = False,
    record: bool = True,
) -> ReconcileSummary:
    """Reconcile `job` (see the module docstring); `act=False` only reports, whatever the policy;
    `approve_orphans` lets the orphans' operations pass the deletion guard (never an incomplete read).
    When corrections were set in motion, a cycle of the job follows at once and applies them.

    `record=False` is a dry run (`roster plan --reconcile`): nothing is acted on or written (no cycle
    record, no log record, no metric), and the summary keeps every finding."""
    act = act and record
    async with runner.job_lock(job.name):
        summary = await _reconcile(runner, job, trigger, act, approve_orphans, record)
    if record:
        runner.metrics.record_reconcile(job.name, summary.situations)
    if act and summary.status != "failed" and (summary.corrections.keys() & {"correct", "recreate", "link"}):
        cycle = await runner.run_cycle(job, trigger="after_reconcile")
        summary = dataclasses.replace(summary, cycle=cycle)
    log.info(
        "event=reconciled job=%s cycle=%s status=%s %s",
        job.name,
        summary.cycle_id,
        summary.status,
        " ".join(f"{k}={v}" for k, v in summary.counts().items()),
    )
    return summary


async def _reconcile(
    runner: CycleRunner, job: JobConfig, trigger: str, act: bool, approve_orphans: bool, record: bool
) -> ReconcileSummary:
    started = time.perf_counter()
    state, settings = runner.state, job.reconcile
    cycle_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}-rec"
    if record:
        await state.start_cycle(cycle_id, job.name, f"reconcile:{trigger}", **runner.leases.claim())
    progress = runner.tracker.start_cycle(cycle_id, job.name)
    try:
        mapper = job.mapper()
        compared = settings.compared(mapper.targets)
        membership = await load_membership(state, job)
        if membership is not None:
            compared = [*compared, MEMBERS]
        names = list(dict.fromkeys([*job.matching, *compared]))
        listing_s = 0.0

        async def listed() -> Listing:
            nonlocal listing_s
            listing = await runner.listings.fetch(
                job=job.name,
                target=job.target,
                object_type=job.object_type,
                attributes=names,
                timeout_s=settings.timeout_s,
            )
            listing_s = time.perf_counter() - started
            return listing

        # The target lists while the source is read and mapped: the slower of the two sets the pace.
        listing_task = asyncio.ensure_future(listed())
        source = job.source.open(None, state=runner.state)
        try:
            expected, source_read = await _read_expected(state, job, source, names, membership)
        except RosterError as exc:
            listing_task.cancel()
            await asyncio.gather(listing_task, return_exceptions=True)
            return await _failed(
                runner, job, cycle_id, started, f"the source could not be read: {exc}", record=record
            )
        try:
            listing = await listing_task
        except ListingFailed as exc:
            return await _failed(
                runner, job, cycle_id, started, f"the target could not be listed: {exc}", record=record
            )
        entries = await state.links(job.name)
        managed = None if membership is None else membership.target_ids.values()
        found = Reconciliation(
            listing.fields, listing.rows, compared, entries, job.matching, managed, hidden=job.redacted
        )
        situations: Counter[str] = Counter()
        findings: list[Finding] = []
        drifted: list[str] = []
        missing: list[str] = []
        matching = [(i, name) for i, name in enumerate(names) if name in job.matching]
        for n, (source_id, values) in enumerate(expected):
            if values is None:
                finding = found.unreadable(source_id)
            else:
                pairs = [[name, values[i]] for i, name in matching if values[i] is not None]
                finding = found.expected(source_id, dict(zip(names, values, strict=True)), pairs)
            situations[finding.situation] += 1
            if finding.situation == "drifted":
                drifted.append(source_id)
            elif finding.situation == "missing":
                missing.append(source_id)
            if finding.situation != "in_step":
                findings.append(finding)
            if n % SOURCE_BATCH == 0:
                await asyncio.sleep(0)
        del expected
        orphans: list[Finding] = []
        for finding in found.leftovers():
            situations[finding.situation] += 1
            if finding.situation == "orphan":
                orphans.append(finding)
                findings.append(finding)
        if record:
            await state.log_findings(job.name, cycle_id, findings)
        corrections: Counter[str] = Counter()
        held = None
        if act:
            in_flight = runner.tracker.in_flight(job.name)
            if settings.drifted == "correct":
                ids = [s for s in drifted if s not in in_flight]
                if membership is not None:
                    await state.save_members(job.name, _held_members(ids, findings, found, membership))
                await state.mark_drifted(job.name, ids)
                corrections["correct"] = len(ids)
            if settings.missing == "recreate":
                ids = [s for s in missing if s not in in_flight]
                await state.unlink(job.name, ids)
                corrections["recreate"] = len(ids)
            corrections["link"] = situations["unlinked"]
            if settings.orphan != "report" and orphans:
                held = _orphan_hold(job, len(orphans), len(entries), source.skipped, approve_orphans)
                if held is None:
                    await _deprovision_orphans(runner, job, cycle_id, orphans)
                    corrections[settings.orphan] = len(orphans)
                    await runner.publisher.flush()
                    runner.tracker.planning_done(
                        cycle_id,
                        runner.config.deadline.for_ops(
                            progress.outstanding, runner.config.publish.batch_size
                        ),
                    )
                    await runner.results.wait_or_expire(progress)
        status = "held" if held else "succeeded"
        summary = ReconcileSummary(
            cycle_id=cycle_id,
            job=job.name,
            status=status,
            situations=dict(situations),
            listed=len(listing),
            read=source_read,
            skipped_rows=source.skipped,
            corrections={k: v for k, v in corrections.items() if v},
            held=held,
            findings=tuple(findings if not record else findings[:SHOWN_FINDINGS]),
            orphan_results=dict(progress.counts),
            listing_s=listing_s,
            elapsed_s=time.perf_counter() - started,
        )
        if record:
            await state.finish_cycle(cycle_id, status, summary.counts())
        return summary
    except asyncio.CancelledError:
        if record:
            await asyncio.shield(state.finish_cycle(cycle_id, "interrupted", {}))
        raise
    finally:
        runner.tracker.end_cycle(cycle_id)


def _orphan_hold(job: JobConfig, orphans: int, held: int, skipped: int, approved: bool) -> str | None:
    """Why orphans may not be disabled or deleted now, if so."""
    if skipped:
        return (
            f"{skipped:,} source row(s) could not be read, so an object they hold would look like an "
            "orphan: no orphan is touched until a complete read"
        )
    if job.deletion_guard.trips(orphans, held) and not approved:
        return (
            f"deletion guard: {job.deletion_guard.describe(orphans, held)}; the orphans are reported only "
            f"(`roster reconcile FILE {job.name} --approve-orphans` acts on them)"
        )
    return None


async def _deprovision_orphans(
    runner: CycleRunner, job: JobConfig, cycle_id: str, orphans: list[Finding]
) -> None:
    action = "delete" if job.reconcile.orphan == "delete" else "disable"
    now = time.time()
    for seq, finding in enumerate(orphans, 1):
        op = Operation(
            op_id=f"{cycle_id}-{seq}",
            job=job.name,
            target=job.target,
            cycle_id=cycle_id,
            action=action,  # type: ignore[arg-type]
            object_type=job.object_type,
            source_id=finding.source_id or f"{ORPHAN_PREFIX}{finding.target_id}",
            attributes={},
            desired_hash="",
            target_id=finding.target_id,
            emitted_at=now,
        )
        runner.tracker.register(op)
        await runner.publisher.add(op)


async def _read_expected(
    state: StateStore, job: JobConfig, source: Source, names: list[str], membership: Membership | None
) -> tuple[list[tuple[str, tuple[Any, ...] | None]], int]:
    """Each source object in scope with its mapped values of `names` (None where its mappings failed),
    its references as the target ids they name, as a cycle sends them, and, for a group, the target
    ids of the members it should hold (those provisioned) as `MEMBERS`; and how many objects were
    read. Read and mapped in full before the comparison, since a read that fails part-way compares
    nothing."""
    mapper = job.mapper()
    references = references_of(job)
    scope = job.scoping if job.scoping.groups else None
    expected: list[tuple[str, tuple[Any, ...] | None]] = []
    read = 0
    async for batch in source.batches(SOURCE_BATCH):
        read += len(batch)
        await resolve_references(state, references, batch)
        for obj in batch:
            try:
                if scope is not None and not scope.matches(obj.attributes):
                    continue
                mapped = map_object(mapper, obj.attributes, references)
            except MappingError:
                expected.append((obj.source_id, None))
                continue
            attributes = mapped.attributes
            if membership is not None:
                plan = membership.plan(obj.source_id, obj.attributes, mapped.hash)
                attributes = {**attributes, MEMBERS: sorted(plan.members.values())}
            expected.append((obj.source_id, tuple(attributes.get(name) for name in names)))
        await asyncio.sleep(0)
    return expected, read


def _held_members(
    ids: list[str], findings: list[Finding], found: Reconciliation, membership: Membership
) -> dict[str, dict[str, str]]:
    """What each drifted group holds in the target, as the state records members (member source id ->
    target id), of the members the member job provisioned: the cycle that follows then adds what is
    lacking and removes what is not expected, as it would after any change of the source."""
    source_of = {target_id.casefold(): source_id for source_id, target_id in membership.target_ids.items()}
    position = found.fields.index(MEMBERS) + 1
    wanted = set(ids)
    held: dict[str, dict[str, str]] = {}
    for finding in findings:
        if finding.source_id in wanted and finding.target_id is not None:
            row = found.rows.get(finding.target_id)
            values = row[position] if row is not None else None
            members = values if isinstance(values, list) else [values] if isinstance(values, str) else []
            held[finding.source_id] = {
                source_of[m.casefold()]: m for m in members if m.casefold() in source_of
            }
    return held


async def _failed(
    runner: CycleRunner,
    job: JobConfig,
    cycle_id: str,
    started: float,
    error: str,
    *,
    listed: int = 0,
    read: int = 0,
    record: bool = True,
) -> ReconcileSummary:
    log.error("event=reconcile_failed job=%s cycle=%s error=%r", job.name, cycle_id, error)
    summary = ReconcileSummary(
        cycle_id=cycle_id,
        job=job.name,
        status="failed",
        situations={},
        listed=listed,
        read=read,
        error=error,
        elapsed_s=time.perf_counter() - started,
    )
    if record:
        await runner.state.finish_cycle(cycle_id, "failed", {**summary.counts(), "error": error})
    return summary
