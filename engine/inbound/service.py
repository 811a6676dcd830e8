"""What a push to the inbound SCIM service does: store the resource, then plan it at once.

A write is stored in the mirror (`engine.store.mirror`) in one transaction before it is answered, so
what the client was told is durable. Then every job whose source is the inbound service's resources of
that type plans that object, as `roster provision` does: the same mappings, scoping, references,
guards, queue and provisioning log as a cycle, without waiting for one.

Pushes are planned in batches: what was pushed while the batches in flight (at most `MAX_BATCHES`)
were planned forms the next one, up to `MAX_BATCH` objects, each job plans a batch in one on-demand
cycle (`CycleRunner.run_some`; a group job's groups one by one, `run_one`). A push that arrives alone
is planned at once, alone; under load, one cycle carries many, so its fixed cost (the cycle's records,
the state store's transactions) is shared. An object is never in two batches at once: pushed again
while in flight, it waits for that batch to end and is then planned from its latest write, so
planning never sends an older state after a newer one, and a burst of PATCHes to one user costs one
operation after the one in flight. An object that names others (a group its members, a user its
manager) waits for those pushed before it to be planned and applied: planned beside them, it would find
no target id for them and leave them pending until a cycle. If the engine stops in between, the next
cycle over the mirror finds the difference, as it finds any source change.

`respond: stored` (the default) answers as soon as the write is durable; `respond: applied` answers
after the target confirmed, with the target's error as the answer's (`Applied`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from common.peers.scim_schemas import ENTERPRISE_SCHEMA
from engine.config import JobConfig
from engine.inbound.oauth import IssuedTokens
from engine.inbound.settings import InboundSettings, InboundToken
from engine.model import LOST
from engine.pipeline.cycles import CycleRunner
from engine.sources.inbound import RESOURCE_TYPES, as_source_object
from engine.store.mirror import Mirror, Stored

log = logging.getLogger("roster.engine.inbound")


@dataclass(frozen=True, slots=True)
class Applied:
    """What the jobs made of one push: per job, the cycle id and the error of its failed operation."""

    failures: tuple[tuple[str, str], ...] = ()
    """(job, the target's error) of each job whose operation failed."""
    timed_out: tuple[str, ...] = ()
    """Jobs whose target did not answer within `apply_timeout_s`."""


MAX_BATCH = 500
"""Objects planned in one on-demand cycle, at most."""
MAX_BATCHES = 4
"""Batches planned at once, at most: the concurrency of the pushes' planning is bounded."""
FULL_BATCH = 250
"""While a batch is planned, another starts beside it only with this many objects; fewer wait for
a batch to end and go with what came meanwhile. A push alone is planned at once, and under load a
cycle's fixed cost (its records, its queries) is shared by many."""

Key = tuple[str, str]
"""(resource type, id) of a pushed object."""


class InboundService:
    """The inbound service's work: the mirror, and the jobs a push is planned in."""

    def __init__(self, settings: InboundSettings, runner: CycleRunner, jobs: Sequence[JobConfig]) -> None:
        self.settings = settings
        self.runner = runner
        self.mirror = Mirror(runner.state)
        self.readers: dict[str, tuple[JobConfig, ...]] = {
            resource_type: tuple(
                j
                for j in jobs
                if j.source.type == "scim_inbound" and j.source.settings.resource_type == resource_type
            )
            for resource_type in RESOURCE_TYPES.values()
        }
        # pushed, not yet taken into a batch (in push order), with who waits for each (respond: applied)
        self._pending: dict[Key, list[asyncio.Future[Applied]]] = {}
        self._latest: dict[Key, Stored | None] = {}
        """What the mirror holds of each pending object, as its latest write left it (None: deleted)."""
        self._names: dict[Key, frozenset[str]] = {}
        """The ids each pending object's latest write names (`named`), if it names any."""
        self._order: dict[str, int] = {}
        """When each pending object was pushed (first, since it is pending), by id."""
        self._pushes = itertools.count()
        self._in_flight: set[Key] = set()
        self._in_flight_ids: set[str] = set()
        self._batches: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self.issued = IssuedTokens(settings.token_lifetime_s)
        """The tokens issued to OAuth clients (`engine.inbound.oauth`)."""

    def token(self, presented: str) -> InboundToken | None:
        """The configured token, or the token issued to a client, that `presented` is, if any."""
        return self.settings.token(presented) or self.issued.find(presented)

    def may_write(self, allowed: frozenset[str], resource_type: str) -> str | None:
        """Why a token allowed to write `allowed` jobs may not write this type, if it may not."""
        missing = [j.name for j in self.readers[resource_type] if j.name not in allowed]
        if missing:
            return f"this token may not write job(s) {', '.join(missing)}, which read {resource_type}s"
        return None

    async def pushed(self, resource_type: str, resource_id: str, stored: Stored | None) -> Applied:
        """Plan the object in every job that reads its type; with `respond: applied`, wait for the
        targets' results, else return at once (the work goes on in the background)."""
        waiter = self.push(resource_type, resource_id, stored)
        return Applied() if waiter is None else await asyncio.shield(waiter)

    def push(
        self, resource_type: str, resource_id: str, stored: Stored | None
    ) -> asyncio.Future[Applied] | None:
        """Have the object planned, as `stored` (what a committed write left; None: it was deleted);
        with `respond: applied`, the future of what the jobs made of it."""
        key = (resource_type, resource_id)
        if key not in self._latest or _later(stored, self._latest[key]):
            self._latest[key] = stored
            if names := named(stored):
                self._names[key] = names
            else:
                self._names.pop(key, None)
        if key not in self._pending:
            self._order[resource_id] = next(self._pushes)
        waiters = self._pending.setdefault(key, [])
        waiter: asyncio.Future[Applied] | None = None
        if self.settings.respond == "applied":
            waiter = asyncio.get_running_loop().create_future()
            waiters.append(waiter)
        self._wake.set()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return waiter

    async def aclose(self) -> None:
        """Stop what is in the background: an object not planned yet is planned by the next cycle."""
        await self.mirror.aclose()  # the writes under way were promised an answer
        tasks = [*self._batches, *([self._drainer] if self._drainer is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiters in self._pending.values():
            for waiter in waiters:
                waiter.cancel()

    async def _drain(self) -> None:
        """Take what was pushed into batches, as long as fewer than MAX_BATCHES are in flight."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while ready := self._ready():
                if len(self._batches) >= MAX_BATCHES or (self._batches and len(ready) < FULL_BATCH):
                    await asyncio.wait(self._batches, return_when=asyncio.FIRST_COMPLETED)
                    continue
                taken = {key: self._pending.pop(key) for key in ready}
                latest = {key: self._latest.pop(key) for key in ready}
                for key in ready:
                    self._names.pop(key, None)
                    del self._order[key[1]]
                self._in_flight.update(taken)
                self._in_flight_ids.update(resource_id for _, resource_id in taken)
                task = asyncio.ensure_future(self._run_batch(taken, latest))
                self._batches.add(task)
                task.add_done_callback(partial(self._batch_done, keys=tuple(taken)))

    def _ready(self) -> list[Key]:
        """The pending objects to plan next, in push order, at most MAX_BATCH: not in flight, and not
        waiting for others (`_waits`)."""
        ready: list[Key] = []
        for key in self._pending:
            if key in self._in_flight or ((names := self._names.get(key)) and self._waits(key, names)):
                continue
            ready.append(key)
            if len(ready) == MAX_BATCH:
                break
        return ready

    def _waits(self, key: Key, names: frozenset[str]) -> bool:
        """Whether the object names one in flight, or one pushed before it and not planned yet (taken
        with it into a batch, that one would have no target id when this is planned). Waiting only for
        objects ahead of it, the first pending object is ready once nothing is in flight."""
        mine = self._order[key[1]]
        return any(n in self._in_flight_ids or self._order.get(n, mine) < mine for n in names)

    def _batch_done(self, task: asyncio.Task[None], *, keys: tuple[Key, ...]) -> None:
        self._batches.discard(task)
        self._in_flight.difference_update(keys)
        self._in_flight_ids.difference_update(resource_id for _, resource_id in keys)
        self._wake.set()  # what was pushed again meanwhile may go now

    async def _run_batch(
        self, taken: dict[Key, list[asyncio.Future[Applied]]], latest: dict[Key, Stored | None]
    ) -> None:
        outcomes: dict[Key, Applied] = {}
        try:
            for resource_type in sorted({t for t, _ in taken}):
                of_type = {i: stored for (t, i), stored in latest.items() if t == resource_type}
                outcomes.update(await self._apply_batch(resource_type, of_type))
        except asyncio.CancelledError:
            for waiters in taken.values():
                for waiter in waiters:
                    waiter.cancel()
            raise
        except Exception:
            log.exception("event=push_batch_failed objects=%d", len(taken))
            failed = Applied(failures=(("", "planning failed; the engine's log has the cause"),))
            outcomes = {key: outcomes.get(key, failed) for key in taken}
        for key, waiters in taken.items():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(outcomes.get(key, Applied()))

    async def _apply_batch(self, resource_type: str, latest: dict[str, Stored | None]) -> dict[Key, Applied]:
        ids = list(latest)
        stored = {i: s for i, s in latest.items() if s is not None}
        read = None if len(stored) == len(ids) else await self.mirror.count(resource_type)
        failures: dict[str, list[tuple[str, str]]] = {i: [] for i in ids}
        timed_out: dict[str, list[str]] = {i: [] for i in ids}
        for job in self.readers[resource_type]:
            if job.members is not None:  # a group's members are loaded for it alone
                for resource_id in ids:
                    outcome = await self._plan(job, resource_id, stored.get(resource_id), read)
                    if outcome == "timed_out":
                        timed_out[resource_id].append(job.name)
                    elif outcome is not None:
                        failures[resource_id].append((job.name, outcome))
                continue
            objects = {i: as_source_object(stored[i]) if i in stored else None for i in ids}
            cycle_id, counts = await self.runner.run_some(
                job, objects, timeout_s=self.settings.apply_timeout_s, read=read
            )
            if not counts.get("failed") and not counts.get(LOST):
                continue
            for record in await self.runner.state.log_records(job.name, cycle_id=cycle_id):
                resource_id = record["source_id"]
                if resource_id not in failures:
                    continue
                if record["status"] == LOST:  # no result within apply_timeout_s: given up on
                    timed_out[resource_id].append(job.name)
                elif record["status"] == "failed":
                    log.warning(
                        "event=push_failed job=%s source_id=%s cycle=%s", job.name, resource_id, cycle_id
                    )
                    error = record.get("error_message") or "the operation failed (see the provisioning log)"
                    failures[resource_id].append((job.name, error))
        return {(resource_type, i): Applied(tuple(failures[i]), tuple(timed_out[i])) for i in ids}

    async def _plan(
        self, job: JobConfig, resource_id: str, stored: Stored | None, read: int | None
    ) -> str | None:
        """Plan one object in one job and wait for its result: None when it succeeded (or nothing was
        to do), `timed_out`, or the target's error."""
        obj = as_source_object(stored) if stored is not None else None
        entry = await self.runner.state.entry(job.name, resource_id)
        cycle_id, counts = await self.runner.run_one(
            job, resource_id, obj, entry, timeout_s=self.settings.apply_timeout_s, read=read
        )
        if counts.get(LOST):  # no result within apply_timeout_s: given up on, as a cycle gives up
            return "timed_out"
        if not counts.get("failed"):
            return None
        records = await self.runner.state.log_records(job.name, cycle_id=cycle_id)
        errors = [r["error_message"] for r in records if r.get("error_message")]
        log.warning("event=push_failed job=%s source_id=%s cycle=%s", job.name, resource_id, cycle_id)
        return errors[-1] if errors else "the operation failed (see the provisioning log)"


def named(stored: Stored | None) -> frozenset[str]:
    """The ids of the other resources a resource names, as the jobs read them (`as_source_object`): a
    group's members and a user's manager."""
    if stored is None:
        return frozenset()
    body = stored.body
    members = body.get("members")
    ids = [m.get("value") for m in members if isinstance(m, dict)] if isinstance(members, list) else []
    enterprise = body.get(ENTERPRISE_SCHEMA)
    manager = enterprise.get("manager") if isinstance(enterprise, dict) else None
    if isinstance(manager, dict):
        ids.append(manager.get("value"))
    return frozenset(i for i in ids if isinstance(i, str) and i != stored.id)


def _later(stored: Stored | None, known: Stored | None) -> bool:
    """Whether `stored` is a later state of an object than `known`. Writes are pushed in the order
    they committed (the mirror has one writer, whose callers resume in that order), so this only
    keeps a write pushed twice, or two of one bulk, from going back; a deletion is an id's last state
    (ids are never given again)."""
    if known is None:
        return False
    return stored is None or stored.version > known.version
