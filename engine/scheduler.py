"""The scheduler: runs each job's cycles on its interval or cron schedule until stopped.

A job runs once at start, then at each moment its schedule gives after the end of the previous cycle
(so a cycle longer than the interval never piles up runs). A job without a schedule runs once. A cycle
that fails is logged and the job goes on at its next moment: one bad run never stops the schedule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from engine.config import JobConfig
from engine.cycles import CycleRunner, CycleSummary

log = logging.getLogger("roster.engine.scheduler")


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

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until `stop()`; a cycle in progress is let finish, then no new one starts."""
        await asyncio.gather(*(self._job_loop(job) for job in self._jobs))

    async def _job_loop(self, job: JobConfig) -> None:
        while not self._stop.is_set():
            try:
                summary = await self._runner.run_cycle(job, trigger="schedule")
                self.history.append(summary)
            except Exception:
                log.exception("event=cycle_crashed job=%s", job.name)
            if job.schedule is None:
                return
            now = self._clock()
            delay_s = (job.schedule.next_after(now) - now).total_seconds()
            log.info("event=next_cycle job=%s in_s=%.1f", job.name, delay_s)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, delay_s))
            except TimeoutError:
                pass
