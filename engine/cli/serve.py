"""`roster engine`: the engine process of scaled mode (scheduler, cycles, result consumer, HTTP).

It never needs a target's credentials: it publishes operations to the broker and reads results back.
On SIGTERM it stops the admin API, then the scheduler; a cycle in progress is interrupted (its
operations are already on the broker, and their results wait in the results queue for the next
engine), then the result consumer, the HTTP server, the state store and the broker are closed in
that order. On a PostgreSQL
store a second engine waits as a standby and takes over when the first dies (`engine/pipeline/failover.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from rich.console import Console

from common.process.cli import broker_url, listen_address
from common.process.signals import install_stop_handlers
from common.process.status_server import StatusServer
from common.process.tuning import tune_process
from engine.api.admin import Admin
from engine.api.app import ApiGate
from engine.api.server import ApiServer, ApiSettings, operated
from engine.cli.report import cycle_line, exit_code, line_printer, print_summary
from engine.cli.settings import announcer, api_from, exposure_warnings, print_warnings, state_location
from engine.config import EngineConfig, JobConfig, in_dependency_order, load_engine_config
from engine.core.schedule import Schedule
from engine.inbound.server import InboundServer
from engine.metrics import EngineMetrics
from engine.model import CycleSummary
from engine.notify.notifier import notifying
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.failover import EngineLock, take_over
from engine.pipeline.fleet import Fleet
from engine.pipeline.presence import EnginePresence, export_fleet
from engine.pipeline.scheduler import Scheduler
from engine.store.state import StateStore
from queues.broker import Broker
from queues.connect import broker_from_url
from queues.versions import SPOKEN, VERSIONS_VARIABLE, PeerVersions, spoken_from

log = logging.getLogger("roster.engine.process")


def engine_command(args: argparse.Namespace, console: Console) -> int:
    """`roster engine`: serve the jobs of `args.file` over the broker (with `--once`, one cycle each)."""
    config = load_engine_config(args.file)
    jobs = in_dependency_order([config.job(name) for name in args.job] if args.job else config.jobs)
    state = state_location(args, config)
    wire_versions = spoken_from(os.environ.get(VERSIONS_VARIABLE))
    url = broker_url(args.broker, config.broker, args.file)
    if args.check:
        from engine.cli.check import check_command

        return check_command(args, console, url=url, state=state, jobs=jobs)
    broker = broker_from_url(url, ca_file=args.broker_ca_file)
    host, port = listen_address(args.listen)
    api = api_from(args, state, config)
    warnings = exposure_warnings(config, api=api, broker=url)
    print_warnings(console, warnings)
    tune_process()
    code, summaries = asyncio.run(
        run_engine(
            config,
            jobs,
            broker,
            state,
            host=host,
            port=port,
            once=args.once,
            record_metrics=not args.no_metrics,
            wire_versions=wire_versions,
            api=api,
            warnings=warnings,
            on_listening=announcer(console),
            say=line_printer(console),
        )
    )
    if args.once:
        print_summary(console, summaries)
    return code


async def run_engine(
    config: EngineConfig,
    jobs: Sequence[JobConfig],
    broker: Broker,
    state_location: str,
    *,
    host: str,
    port: int,
    once: bool = False,
    record_metrics: bool = True,
    api: ApiSettings | None = None,
    warnings: Sequence[str] = (),
    on_listening: Callable[[ApiServer], None] | None = None,
    say: Callable[[str], None] | None = None,
    wire_versions: Sequence[int] = SPOKEN,
) -> tuple[int, list[CycleSummary]]:
    """Run the scheduler until a signal (or, with `once`, one cycle of each job); returns the exit
        code and the summaries of the cycles that ended. On a PostgreSQL store the engine first waits
        for the engine lock, serving `/metrics` and `/healthz` as a standby meanwhile, and its admin API
        (`api`) answers 503 naming the active engine; the API works and the log pruner runs only while
        this engine is the active one. `say` gets a line per cycle that ends. The engine writes each target's
    messages in the newest of `wire_versions` that its workers all speak (`engine.pipeline.wire`)."""
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry, recording=record_metrics)
    metrics.active.set(0)
    peers = PeerVersions(spoken=wire_versions)  # fed by presence and by the workers' own messages
    async with (
        broker,
        StateStore(state_location) as state,
        EngineLock(state) as lock,
        EnginePresence(broker, Fleet(config.presence, versions=peers), spoken=wire_versions) as presence,
    ):
        runner = CycleRunner(config, broker, state, metrics=metrics, peers=peers)
        export_watched(runner)
        export_fleet(metrics, presence.fleet, [job.target for job in config.jobs])
        if say is not None:
            runner.cycle_observers.append(lambda summary: say(cycle_line(summary)))
        scheduler = Scheduler(runner, jobs)
        admin = Admin(runner, scheduler, warnings=warnings, fleet=presence.fleet)
        gate = ApiGate("standby", lambda: f"standby: the active engine is {lock.holder or 'not known yet'}")
        stopped = asyncio.Event()
        inbound = (
            InboundServer(config.inbound, runner, jobs, gate=gate) if config.inbound is not None else None
        )
        main = asyncio.create_task(
            _active(lock, admin, jobs, once=once, gate=gate, stopped=stopped, inbound=inbound)
        )

        def stop() -> None:
            # All three: the cancel stops a standby waiting for the lock; the event stops the working
            # engine, and the scheduler's own stop ends its loops, even where Python 3.11 loses a cancel
            # (asyncio.wait_for when its awaited task ends at once; seen once more in the standby test,
            # a SIGTERM during the first cycle after a takeover, under load).
            stopped.set()
            scheduler.stop()
            main.cancel()

        install_stop_handlers(stop)
        health = lambda: _health(runner, main, lock)  # noqa: E731
        server = StatusServer(registry, health, host=host, port=port)
        api_server = ApiServer(admin, api, health=health, gate=gate) if api is not None else None
        try:
            await server.start()
            if inbound is not None:
                await inbound.start()
            if api_server is not None:
                await api_server.start()
                if on_listening is not None:
                    on_listening(api_server)
            summaries = await main
        except asyncio.CancelledError:
            summaries = scheduler.history
            log.info("event=engine_stopping cycles=%d", len(summaries))
        finally:
            if not main.done():  # a listener could not start
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
            if api_server is not None:
                await api_server.aclose()
            if inbound is not None:
                await inbound.aclose()
            await server.aclose()
    return (exit_code(summaries) if once else 0), list(summaries)


async def _active(
    lock: EngineLock,
    admin: Admin,
    jobs: Sequence[JobConfig],
    *,
    once: bool,
    gate: ApiGate,
    stopped: asyncio.Event,
    inbound: InboundServer | None = None,
) -> list[CycleSummary]:
    """Wait for the lock, take over from the engine before, then work until done or the lock is lost.
    The pushes `inbound` still plans when the work ends are stopped with it (the mirror holds them:
    the next cycle plans them)."""
    await lock.acquire()
    runner, scheduler = admin.runner, admin.scheduler
    assert scheduler is not None
    async with runner:
        if lock.shared:
            await take_over(runner.state, runner.broker, runner.metrics, [j.target for j in jobs])
        async with observed(runner, jobs), notifying(runner, admin.fleet):
            watch = asyncio.create_task(lock.watch())
            serving = runner.config.inbound is not None  # pushes come whether or not a cycle is due
            work = asyncio.create_task(
                _run_once(runner, jobs) if once else scheduler.run(until_stopped=serving)
            )
            stop = asyncio.create_task(stopped.wait())
            try:
                retention_days = runner.config.log_retention_days
                async with operated(admin, None, retention_days=retention_days), gate.opened():
                    await asyncio.wait({work, watch, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not work.done() and watch.done():
                    watch.result()  # raises StateError: the lock is lost, stop working at once
                return (work.result() or []) if once and work.done() else scheduler.history
            finally:
                for task in (work, watch, stop):
                    task.cancel()
                await asyncio.gather(work, watch, stop, return_exceptions=True)
                if inbound is not None:
                    await inbound.service.aclose()


def export_watched(runner: CycleRunner) -> None:
    """Export what the metrics read at scrape time: the operations awaiting a result, and each job's
    control state (once per registry)."""
    jobs = runner.config.jobs
    runner.metrics.watch_awaiting(runner.tracker.in_flight_counts)
    runner.metrics.watch_jobs(lambda: {job.name: runner.control.switches(job.name).state for job in jobs})


@asynccontextmanager
async def observed(runner: CycleRunner, jobs: Sequence[JobConfig]) -> AsyncIterator[None]:
    """While the runner is the active engine (`roster engine`'s, or `roster run --serve`'s): the job
    gauges, `roster_engine_active` at 1, and the queue depths polled."""
    metrics = runner.metrics
    await _job_gauges(metrics, runner.state, jobs)
    metrics.active.set(1)
    depths = asyncio.create_task(metrics.poll_queue_depths(runner.broker, [j.target for j in jobs]))
    try:
        yield
    finally:
        metrics.active.set(0)
        depths.cancel()
        await asyncio.gather(depths, return_exceptions=True)


async def _job_gauges(metrics: EngineMetrics, state: StateStore, jobs: Sequence[JobConfig]) -> None:
    """Each job's schedule interval, and the end of its last successful cycle (or now, if it has
    none: the alert on missing successes then counts from this engine's start)."""
    now = time.time()
    for job in jobs:
        interval_s = _interval_s(job.schedule)
        if interval_s is not None:
            metrics.interval.labels(job.name).set(interval_s)
        metrics.last_success.labels(job.name).set(await state.last_success_at(job.name) or now)


def _interval_s(schedule: Schedule | None) -> float | None:
    if schedule is None:
        return None
    if schedule.interval_s is not None:
        return schedule.interval_s
    first = schedule.next_after(datetime.now(UTC))
    return (schedule.next_after(first) - first).total_seconds()


async def _run_once(runner: CycleRunner, jobs: Sequence[JobConfig]) -> list[CycleSummary]:
    return [await runner.run_cycle(job, trigger="cli") for job in jobs]


def _health(
    runner: CycleRunner, main: asyncio.Task[object], lock: EngineLock
) -> tuple[bool, dict[str, object]]:
    """A standby is healthy while it waits; the active engine while it consumes results and no cycle
    is stuck past its deadline."""
    healthy = not main.done() and (not lock.held or runner.results.running)
    role = "engine" if lock.held else "standby"
    cycles_healthy, cycles = runner.tracker.health()
    jobs = [j.name for j in runner.config.jobs]
    return healthy and cycles_healthy, {"role": role, "jobs": jobs, **cycles}
