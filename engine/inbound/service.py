"""What a push to the inbound SCIM service does: store the resource, then plan it at once.

A write is stored in the mirror (`engine.store.mirror`) in one transaction before it is answered, so
what the client was told is durable. Then every job whose source is the inbound service's resources of
that type plans that one object, as `roster provision` does (`CycleRunner.run_one`): the same mappings,
scoping, references, guards, queue and provisioning log as a cycle, without waiting for one.

Pushes of one object are applied one at a time and coalesced: a push that comes while the object's
previous one is still in flight marks it to be planned again when that one ends, from what the mirror
holds then. Planning never sends an older state after a newer one, and a burst of PATCHes to one user
costs one operation after the one in flight, not one each. If the engine stops in between, the next
cycle over the mirror finds the difference, as it finds any source change.

`respond: stored` (the default) answers as soon as the write is durable; `respond: applied` answers
after the target confirmed, with the target's error as the answer's (`Applied`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from engine.config import JobConfig
from engine.inbound.settings import InboundSettings
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
        self._running: dict[tuple[str, str], asyncio.Task[Applied]] = {}
        self._again: set[tuple[str, str]] = set()
        self._background: set[asyncio.Task[Applied]] = set()

    def may_write(self, allowed: frozenset[str], resource_type: str) -> str | None:
        """Why a token allowed to write `allowed` jobs may not write this type, if it may not."""
        missing = [j.name for j in self.readers[resource_type] if j.name not in allowed]
        if missing:
            return f"this token may not write job(s) {', '.join(missing)}, which read {resource_type}s"
        return None

    async def pushed(self, resource_type: str, resource_id: str) -> Applied:
        """Plan the object in every job that reads its type; with `respond: applied`, wait for the
        targets' results, else return at once (the work goes on in the background)."""
        work = asyncio.ensure_future(self._apply(resource_type, resource_id))
        if self.settings.respond == "applied":
            return await work
        self._background.add(work)
        work.add_done_callback(self._background.discard)
        return Applied()

    async def aclose(self) -> None:
        """Stop what is in the background: an object not planned yet is planned by the next cycle."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _apply(self, resource_type: str, resource_id: str) -> Applied:
        key = (resource_type, resource_id)
        running = self._running.get(key)
        if running is not None:  # planned again, from the mirror, once the one in flight ends
            self._again.add(key)
            return await asyncio.shield(running)
        task = asyncio.ensure_future(self._apply_until_settled(key))
        self._running[key] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._running.pop(key, None)

    async def _apply_until_settled(self, key: tuple[str, str]) -> Applied:
        try:
            while True:
                self._again.discard(key)
                applied = await self._apply_once(*key)
                if key not in self._again:
                    return applied
        finally:
            self._running.pop(key, None)

    async def _apply_once(self, resource_type: str, resource_id: str) -> Applied:
        stored = await self.mirror.get(resource_type, resource_id)
        read = None if stored is not None else await self.mirror.count(resource_type)
        failures: list[tuple[str, str]] = []
        timed_out: list[str] = []
        for job in self.readers[resource_type]:
            outcome = await self._plan(job, resource_id, stored, read)
            if outcome == "timed_out":
                timed_out.append(job.name)
            elif outcome is not None:
                failures.append((job.name, outcome))
        return Applied(tuple(failures), tuple(timed_out))

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
