"""What the admin API (and through it the CLI) can see and do, as plain async methods.

The HTTP layer (`engine.api.routes`) only parses requests and renders these answers as JSON; everything a
route does is here, so it is tested without HTTP too. An unknown job raises `UnknownJob`, which the API
turns into a 404 that names the jobs it knows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, Literal

from common.errors import RosterError
from engine.config import JobConfig
from engine.model import CycleSummary
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.ondemand import preview_from_state, provision
from engine.pipeline.scheduler import Scheduler
from engine.store.history import LogFilter, csv_rows, cycle_history, iter_log, jsonl, query_log

log = logging.getLogger("roster.engine.admin")


class UnknownJob(RosterError):
    """No job of that name runs in this engine."""


class Admin:
    """The engine's jobs, their cycles, their logs and their switches, for the API."""

    def __init__(self, runner: CycleRunner, scheduler: Scheduler | None = None) -> None:
        self.runner = runner
        self.scheduler = scheduler
        self._triggered: set[asyncio.Task[CycleSummary]] = set()

    def job(self, name: str) -> JobConfig:
        for job in self.runner.config.jobs:
            if job.name == name:
                return job
        known = ", ".join(j.name for j in self.runner.config.jobs)
        raise UnknownJob(f"no job named {name!r} (jobs: {known})")

    # -- Seeing --------------------------------------------------------------------------------------

    async def jobs(self) -> list[dict[str, Any]]:
        return [await self.status(job.name) for job in self.runner.config.jobs]

    async def status(self, name: str) -> dict[str, Any]:
        """State (active, paused, quarantined, waiting_for_approval) and why, the running cycle's
        progress, the last cycles, and the next scheduled run."""
        job = self.job(name)
        switches = self.runner.control.switches(name)
        staged = await self.runner.control.staged(name) if switches.approval_reason else []
        next_run = self.scheduler.next_run.get(name) if self.scheduler is not None else None
        return {
            "job": name,
            "target": job.target,
            "object_type": job.object_type,
            "state": switches.state,
            "paused": switches.paused,
            "quarantine": {
                "reason": switches.quarantine_reason,
                "since": switches.quarantined_at,
                "cycles": switches.quarantined_cycles,
            }
            if switches.quarantine_reason is not None
            else None,
            "approval": {"reason": switches.approval_reason, "staged": len(staged)}
            if switches.approval_reason is not None
            else None,
            "running": [
                {
                    "cycle_id": p.cycle_id,
                    "read": p.read,
                    "planned": p.planned,
                    "settled": p.settled,
                    "retries": p.retries,
                    "counts": dict(p.counts),
                }
                for p in self.runner.tracker.running(name)
            ],
            "last_cycles": await cycle_history(self.runner.state, name, 5),
            "next_run": next_run.isoformat() if next_run is not None else None,
        }

    async def cycles(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        self.job(name)
        return await cycle_history(self.runner.state, name, limit)

    async def logs(self, where: LogFilter) -> list[dict[str, Any]]:
        if where.job is not None:
            self.job(where.job)
        return await query_log(self.runner.state, where)

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

    async def preview(self, name: str, source_id: str) -> dict[str, Any]:
        shown = await preview_from_state(self.job(name), source_id, self.runner.state)
        return _plain(asdict(shown))

    # -- Doing ---------------------------------------------------------------------------------------

    async def trigger(self, name: str) -> dict[str, Any]:
        """Start a cycle now, in the background (it waits for one already running)."""
        job = self.job(name)
        if self.runner.control.paused(name):
            return {"job": name, "started": False, "reason": "the job is paused: resume it first"}
        task = asyncio.create_task(self.runner.run_cycle(job, trigger="api"), name=f"roster-api-{name}")
        self._triggered.add(task)
        task.add_done_callback(self._done)
        return {"job": name, "started": True}

    async def provision(self, name: str, source_id: str) -> dict[str, Any]:
        done = await provision(self.runner, self.job(name), source_id)
        return _plain({"cycle_id": done.cycle_id, "preview": asdict(done.preview), "records": done.records})

    async def pause(self, name: str) -> dict[str, Any]:
        self.job(name)
        await self.runner.control.pause(name)
        return await self.status(name)

    async def resume(self, name: str) -> dict[str, Any]:
        self.job(name)
        await self.runner.control.resume(name)
        return await self.status(name)

    async def restart(self, name: str) -> dict[str, Any]:
        self.job(name)
        await self.runner.control.restart(name)
        return await self.status(name)

    async def reset(self, name: str) -> dict[str, Any]:
        self.job(name)
        await self.runner.control.reset(name)
        return await self.status(name)

    async def approve(self, name: str) -> dict[str, Any]:
        """Run a cycle now in which the staged deprovisions pass the guard (those still missing)."""
        job = self.job(name)
        staged = await self.runner.control.staged(name)
        if not staged:
            return {"job": name, "approved": 0, "reason": "nothing is waiting for approval"}
        approved = frozenset(source_id for source_id, _ in staged)
        summary = await self.runner.run_cycle(job, trigger="approval", approved=approved)
        return {"job": name, "approved": len(approved), "cycle": _plain(asdict(summary))}

    async def reject(self, name: str) -> dict[str, Any]:
        """Drop the staged deprovisions; the next cycle stages them again if the source still lacks them."""
        self.job(name)
        staged = await self.runner.control.staged(name)
        await self.runner.control.clear_staged(name)
        return {"job": name, "rejected": len(staged)}

    async def aclose(self) -> None:
        for task in list(self._triggered):
            task.cancel()
        await asyncio.gather(*self._triggered, return_exceptions=True)

    def _done(self, task: asyncio.Task[CycleSummary]) -> None:
        self._triggered.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=api_cycle_crashed error=%r", task.exception())


def _plain(value: Any) -> Any:
    """JSON-ready: tuples and sets as lists, dataclass leftovers and other objects as text; private
    fields (a scoping clause's compiled test) left out."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
