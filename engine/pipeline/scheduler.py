"""The scheduler: runs each job's cycles on its interval or cron schedule until stopped.

A job runs once at start, then at each moment its schedule gives after the end of the previous cycle
(so a cycle longer than the interval never piles up runs), and at the end of each leaver's grace
(`delete_after_days`; at least daily then), and when a person's start or end date is reached (`dates`).
A job without any of these runs once. A cycle
that fails is logged and the job goes on at its next moment: one bad run never stops the schedule.
A paused job starts no cycle until resumed; a quarantined one waits a backed-off delay instead
(see `engine.core.policies.backoff_s`).

A job with a `reconcile: {schedule: ...}` is also reconciled at each moment that schedule gives, the
first one counted from the start (a reconciliation reads the whole target: never at every start),
and not while the job is paused or quarantined.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.config import JobConfig
from engine.core.policies import backoff_s
from engine.model import CycleSummary
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.reconciling import reconcile

log = logging.getLogger("roster.engine.scheduler")

GRACE_CHECK_S = 86_400.0
"""A job with a leaver's grace runs a cycle at least this often, to find the graces that end."""


class Scheduler:
    """Runs the cycles of `jobs` through `runner` until `stop()`."""

    def __init__(
        self,
        runner: CycleRunner,
        jobs: Sequence[JobConfig],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._runner = runner
        self._jobs = jobs
        self._clock = clock
        self._stop = asyncio.Event()
        self.history: list[CycleSummary] = []
        self.next_run: dict[str, datetime] = {}
        """When each job's next cycle is due (absent while one runs, or for a job that ran once)."""

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, until_stopped: bool = False) -> None:
        """Run until `stop()`; a cycle in progress is let finish, then no new one starts. Without
        `until_stopped` it also ends when no job has a schedule left to run (an engine that also
        serves pushes keeps running)."""
        await asyncio.gather(
            *(self._job_loop(job) for job in self._jobs),
            *(self._reconcile_loop(job) for job in self._jobs if job.reconcile.schedule is not None),
        )
        if until_stopped:
            await self._stop.wait()

    async def _job_loop(self, job: JobConfig) -> None:
        control = self._runner.control
        while not self._stop.is_set():
            if control.paused(job.name):
                await self._until_stopped(control.wait_resumed(job.name))
                continue
            self.next_run.pop(job.name, None)
            try:
                summary = await self._runner.run_cycle(job, trigger="schedule")
                self.history.append(summary)
            except Exception:
                log.exception("event=cycle_crashed job=%s", job.name)
            now = self._clock()
            delay_s = await self.delay_s(job, now)
            if delay_s is None:
                return
            switches = control.switches(job.name)
            if switches.quarantine_reason is not None:
                delay_s = backoff_s(delay_s, switches.quarantined_cycles, control.settings)
            self.next_run[job.name] = now + timedelta(seconds=delay_s)
            log.info("event=next_cycle job=%s in_s=%.1f", job.name, delay_s)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, delay_s))
            except TimeoutError:
                pass

    async def delay_s(self, job: JobConfig, now: datetime) -> float | None:
        """Seconds from `now` to the job's next cycle: its schedule's next moment, or sooner the end of
        the first leaver's grace still to come (`delete_after_days`), so that they are deleted on the
        day, not at the next cycle after it. None: neither (the job ran once)."""
        delay_s = None if job.schedule is None else (job.schedule.next_after(now) - now).total_seconds()
        if job.delete_after_s is not None:
            at = now.timestamp()
            since = await self._runner.state.first_disabled_after(job.name, at - job.delete_after_s)
            # None pending: a leaver disabled meanwhile by a push planned on demand is found at the
            # latest a day later, by a job without a schedule too.
            grace_s = GRACE_CHECK_S if since is None else min(GRACE_CHECK_S, since + job.delete_after_s - at)
            delay_s = grace_s if delay_s is None else min(delay_s, grace_s)
        if job.dates is not None and (due := self._runner.date_due.get(job.name)) is not None:
            # A prehire's creation, a start or an end: on time, not at the next cycle after it.
            date_s = max(0.0, due - now.timestamp())
            delay_s = date_s if delay_s is None else min(delay_s, date_s)
        return delay_s

    async def _reconcile_loop(self, job: JobConfig) -> None:
        schedule = job.reconcile.schedule
        assert schedule is not None
        control = self._runner.control
        while not self._stop.is_set():
            now = self._clock()
            delay_s = (schedule.next_after(now) - now).total_seconds()
            log.info("event=next_reconcile job=%s in_s=%.1f", job.name, delay_s)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, delay_s))
                return
            except TimeoutError:
                pass
            switches = control.switches(job.name)
            if control.paused(job.name) or switches.quarantine_reason is not None:
                log.info("event=reconcile_skipped job=%s reason=%s", job.name, "paused or quarantined")
                continue
            try:
                await reconcile(self._runner, job, trigger="schedule")
            except Exception:
                log.exception("event=reconcile_crashed job=%s", job.name)

    async def _until_stopped(self, waiting: Coroutine[Any, Any, None]) -> None:
        """Wait for `waiting`, or less if the scheduler is stopped meanwhile."""
        task = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()
            stop.cancel()
