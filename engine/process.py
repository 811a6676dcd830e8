"""`roster engine`: the engine process of scaled mode (scheduler, cycles, result consumer, HTTP).

It never needs a target's credentials: it publishes operations to the broker and reads results back.
On SIGTERM it stops the scheduler; a cycle in progress is interrupted (its operations are already on
the broker, and their results wait in the results queue for the next engine), then the result
consumer, the HTTP server, the state store and the broker are closed in that order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from engine.config import EngineConfig, JobConfig
from engine.cycles import CycleRunner, CycleSummary
from engine.metrics import EngineMetrics
from engine.scheduler import Scheduler
from engine.state import StateStore
from queues.broker import Broker
from queues.http import StatusServer
from queues.signals import install_stop_handlers

log = logging.getLogger("roster.engine.process")


async def run_engine(
    config: EngineConfig,
    jobs: Sequence[JobConfig],
    broker: Broker,
    state_location: str,
    *,
    host: str,
    port: int,
    once: bool = False,
) -> tuple[int, list[CycleSummary]]:
    """Run the scheduler until a signal (or, with `once`, one cycle of each job); returns the exit
    code and the summaries of the cycles that ended."""
    registry = CollectorRegistry()
    async with broker, StateStore(state_location) as state:
        runner = CycleRunner(config, broker, state, metrics=EngineMetrics(registry))
        scheduler = Scheduler(runner, jobs)
        work = asyncio.create_task(_run_once(runner, jobs) if once else scheduler.run())
        install_stop_handlers(work.cancel)
        server = StatusServer(registry, lambda: _health(runner, work), host=host, port=port)
        async with runner:
            await server.start()
            try:
                summaries = await work
            except asyncio.CancelledError:
                summaries = scheduler.history
                log.info("event=engine_stopping cycles=%d", len(summaries))
            finally:
                await server.aclose()
    failed = any(s.status != "succeeded" for s in summaries)
    return (1 if once and failed else 0), list(summaries)


async def _run_once(runner: CycleRunner, jobs: Sequence[JobConfig]) -> list[CycleSummary]:
    return [await runner.run_cycle(job, trigger="cli") for job in jobs]


def _health(runner: CycleRunner, work: asyncio.Task[object]) -> tuple[bool, dict[str, object]]:
    healthy = runner.results.running and not work.done()
    return healthy, {"role": "engine", "jobs": [j.name for j in runner.config.jobs]}
