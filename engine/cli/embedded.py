"""Embedded mode: the engine and the workers in one process, joined by the in-memory broker.

The one module that composes `engine` and `workers`; each side gets only its own section of the file.
`roster run` and `roster provision` run here. What they do to the jobs is recorded in the audit trail
under the login of who ran them, from the address `local` (the API records its own callers).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry
from rich.console import Console

from common.config.problems import Parts
from common.errors import ConfigError
from common.process.cli import EXIT_INTERRUPTED, listen_address
from common.process.signals import install_stop_handlers
from common.process.status_server import StatusServer
from common.process.tuning import tune_process
from engine.api.admin import Admin
from engine.api.server import ApiSettings, operated
from engine.cli.report import (
    ProgressView,
    cycle_line,
    exit_code,
    line_printer,
    print_provisioned,
    print_summary,
)
from engine.cli.serve import export_watched, observed
from engine.cli.settings import (
    announcer,
    api_from,
    exposure_warnings,
    print_warnings,
    state_exists,
    state_location,
)
from engine.config import EngineConfig, JobConfig, in_dependency_order, load_engine_config
from engine.inbound.server import served
from engine.metrics import EngineMetrics
from engine.model import CycleSummary
from engine.notify.notifier import notifying
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.fleet import Fleet
from engine.pipeline.ondemand import Provisioned, provision
from engine.pipeline.presence import EnginePresence, export_fleet
from engine.pipeline.reconciling import ReconcileSummary
from engine.pipeline.scheduler import Scheduler
from engine.pipeline.tracker import CycleProgress
from engine.store import audit
from engine.store.audit import LOCAL, Entry, local_user
from engine.store.state import StateStore
from queues.memory import MemoryBroker
from queues.topology import RESULTS_QUEUE
from workers.config import TargetConfig, load_targets
from workers.metrics import WorkerMetrics
from workers.presence import PresenceSettings, WorkerPresence
from workers.worker import Worker

WORKER_GRACE_S = 10.0
"""How long a stopped `roster run` lets its worker finish the batches it is applying."""


@dataclass(frozen=True, slots=True)
class Embedded:
    """Engine and workers in one process, joined by the in-memory broker."""

    broker: MemoryBroker
    state: StateStore
    worker: Worker
    runner: CycleRunner
    targets: Sequence[TargetConfig]
    fleet: Fleet
    """What the engine hears on the presence exchange: the in-process worker."""


@asynccontextmanager
async def embedded(
    config: EngineConfig,
    targets: Sequence[TargetConfig],
    state_location: str,
    *,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[Embedded]:
    """Start the pipeline for `config`'s jobs with the workers of `targets`; close it in reverse order.
    The engine's and the workers' metrics go to `registry` (one of their own if None)."""
    used = {job.target for job in config.jobs}
    targets = [t for t in targets if t.name in used]
    registry = registry or CollectorRegistry()
    async with MemoryBroker() as broker, StateStore(state_location) as state:
        worker = Worker(broker, [t.runtime() for t in targets], metrics=WorkerMetrics(registry))
        metrics = EngineMetrics(registry)
        heartbeat = PresenceSettings(interval_s=config.presence.interval_s)
        async with (
            worker,
            CycleRunner(config, broker, state, metrics=metrics) as runner,
            EnginePresence(broker, Fleet(config.presence)) as presence,
            WorkerPresence(broker, worker, heartbeat),
        ):
            yield Embedded(broker, state, worker, runner, targets, presence.fleet)


def load_both(path: Path) -> tuple[EngineConfig, tuple[TargetConfig, ...]]:
    """The jobs and the targets of one file; every job's target must be among them."""
    config = load_engine_config(path)
    targets = load_targets(path)
    check_job_targets(config, {t.name for t in targets})
    return config, targets


def check_job_targets(config: EngineConfig, names: Collection[str]) -> None:
    """Every job's target is among the target `names` (each job checked when `common.config.problems`
    collects)."""
    parts = Parts()
    for i, job in enumerate(config.jobs):
        parts(partial(_check_job_target, job.path or f"jobs[{i}]", job, names))


def _check_job_target(path: str, job: JobConfig, names: Collection[str]) -> None:
    if job.target not in names:
        raise ConfigError(
            f"{path}.target",
            f"no target named {job.target!r}",
            f"targets in this file: {', '.join(sorted(names)) or 'none'}",
        )


def run_command(args: argparse.Namespace, console: Console) -> int:
    """`roster run`: one cycle of each job (or, with `--serve`, every job on its schedule)."""
    config, targets = load_both(args.file)
    jobs = in_dependency_order([config.job(name) for name in args.job] if args.job else config.jobs)
    state = state_location(args, config)
    api = api_from(args, state, config) if args.serve else None
    listen = listen_address(args.listen) if args.serve else None
    warnings = exposure_warnings(config, api=api, targets=targets)
    print_warnings(console, warnings)
    tune_process()
    summaries = asyncio.run(_run(config, targets, jobs, state, args, console, api, listen, warnings))
    if summaries is None:
        return EXIT_INTERRUPTED
    if not args.serve:
        print_summary(console, summaries)
    return exit_code(summaries)


def provision_command(args: argparse.Namespace, console: Console) -> int:
    """`roster provision`: one source object now, each step shown."""
    config, targets = load_both(args.file)
    job = config.job(args.job)
    location = state_location(args, config)
    tune_process()

    async def run() -> Provisioned:
        async with embedded(config, targets, location) as pipeline:
            done = await provision(pipeline.runner, job, args.source_id)
            await _record(pipeline.state, "provision", job.name, args.source_id)
            return done

    done = asyncio.run(run())
    print_provisioned(console, done)
    return 0 if all(r["status"] in ("succeeded", "retrying") for r in done.records) else 1


def reconcile_command(args: argparse.Namespace, console: Console) -> int:
    """`roster reconcile`: list the job's target, classify each object and act per the job's policy."""
    from engine.cli.reconcile_report import print_reconciliation, reconcile_exit_code
    from engine.pipeline.reconciling import reconcile

    config, targets = load_both(args.file)
    job = config.job(args.job)
    location = state_location(args, config)
    tune_process()

    async def run() -> ReconcileSummary:
        async with embedded(config, targets, location) as pipeline:
            done = await reconcile(
                pipeline.runner,
                job,
                trigger="cli",
                act=not args.report_only,
                approve_orphans=args.approve_orphans,
            )
            if not args.report_only:  # a report changes nothing
                action = "approve_orphans" if args.approve_orphans else "reconcile"
                await _record(pipeline.state, action, job.name, done.cycle_id)
            return done

    summary = asyncio.run(run())
    print_reconciliation(console, summary)
    return reconcile_exit_code(summary)


def reconcile_plan_command(args: argparse.Namespace, console: Console) -> int:
    """`roster plan --reconcile`: each job's target read back through its connector and classified, per
    object what a reconciliation would do and each attribute as the target holds it -> as the job
    maps it; nothing is acted on or written (a state store that does not exist is not created)."""
    from engine.cli.reconcile_report import print_reconcile_plan, reconcile_plan_lines
    from engine.pipeline.reconciling import reconcile

    config, targets = load_both(args.file)
    jobs = in_dependency_order([config.job(name) for name in args.job] if args.job else config.jobs)
    location = state_location(args, config)
    if not state_exists(location):
        location = "sqlite+aiosqlite:///:memory:"
    tune_process()

    async def run() -> list[ReconcileSummary]:
        async with embedded(config, targets, location) as pipeline:
            return [await reconcile(pipeline.runner, job, trigger="plan", record=False) for job in jobs]

    summaries = asyncio.run(run())
    for job, summary in zip(jobs, summaries, strict=True):
        if args.output == "json":
            sys.stdout.buffer.write(reconcile_plan_lines(job, summary))
            sys.stdout.buffer.flush()
        else:
            print_reconcile_plan(console, job, summary, args.limit)
    return 1 if any(s.status == "failed" for s in summaries) else 0


async def _run(
    config: EngineConfig,
    targets: tuple[TargetConfig, ...],
    jobs: list[JobConfig],
    state_location: str,
    args: argparse.Namespace,
    console: Console,
    api: ApiSettings | None,
    listen: tuple[str, int] | None,
    warnings: list[str],
) -> list[CycleSummary] | None:
    """The cycles' summaries; None when a signal interrupted them."""
    registry = CollectorRegistry()
    async with embedded(config, targets, state_location, registry=registry) as pipeline:
        if api is not None and listen is not None:  # --serve
            await _serve(pipeline, jobs, api, registry, listen, warnings, console)
            return []
        async with notifying(pipeline.runner, pipeline.fleet) as notifier:
            work = asyncio.create_task(_cycles(pipeline.runner, jobs, args, console))
            stopping = Stopping(pipeline, console)
            install_stop_handlers(
                work.cancel, say=stopping.say, waiting=stopping.waiting, leaving=stopping.leaving
            )
            try:
                summaries = await work
            except asyncio.CancelledError:
                if not work.cancelled():
                    raise
                await stopping.finish()
                return None
            if notifier is not None:  # what the run said goes out before it ends (retries: next time)
                await notifier.tried(timeout_s=NOTIFY_WAIT_S)
            return summaries


NOTIFY_WAIT_S = 30.0
"""How long `roster run` waits, once its cycles ended, for the first try of each notification it said."""


async def _cycles(
    runner: CycleRunner, jobs: list[JobConfig], args: argparse.Namespace, console: Console
) -> list[CycleSummary]:
    summaries = []

    def sent() -> int:
        return runner.publisher.published_ops

    for job in jobs:
        with ProgressView(console, job.name, enabled=not args.no_progress, sent=sent) as view:
            summaries.append(await runner.run_cycle(job, trigger="cli", on_start=view.follow))
        await _record(runner.state, "trigger", job.name, summaries[-1].cycle_id)
    return summaries


async def _record(state: StateStore, action: str, job: str, acted_on: str | None) -> None:
    """Add to the audit trail what the person at this command line did."""
    entry = Entry(actor=local_user(), address=LOCAL, action=action, job=job, object=acted_on)
    await audit.record(state, entry)


class Stopping:
    """What `roster run` says and does when stopped mid-cycle: the cycle is interrupted at once (it
    publishes nothing more), the batches a worker is applying are let finish within the worker's grace
    period and their results recorded; the operations no worker took are given up with a final
    `lost-in-transit` record each, since the in-memory queues end with the process. The next run plans
    them again."""

    def __init__(self, pipeline: Embedded, console: Console) -> None:
        self._pipeline = pipeline
        self._console = console
        self._cycles: list[str] = []

    def say(self, line: str) -> None:
        line_printer(self._console)(line)

    def waiting(self) -> str:
        self._cycles = [p.cycle_id for p in self._running()]
        batches, ops, listings = self._pipeline.worker.in_flight()
        awaited = [f"{batches} batch(es) in flight ({ops:,} operations) to come back"] if batches else []
        awaited += [f"{listings} listing(s) of the target to end"] if listings else []
        if not awaited:
            return "no batch is being applied"
        return f"waiting for {' and '.join(awaited)} (at most {WORKER_GRACE_S:g} s)"

    def leaving(self) -> str:
        cycles = ", ".join(self._cycles) or "none"
        return (
            f"cycle(s) {cycles} interrupted; what was applied and not recorded is matched again by the "
            "next run (creates and updates are idempotent)"
        )

    async def finish(self) -> None:
        """After the cycle task was cancelled: let the worker finish, record what came back, give up
        on the rest, and say what happened."""
        pipeline = self._pipeline
        await pipeline.worker.stop(grace_s=WORKER_GRACE_S)
        while await pipeline.broker.depth(RESULTS_QUEUE):
            await asyncio.sleep(0.01)  # the result consumer takes what the worker sent
        await asyncio.sleep(0)  # (a result that still came after the give-up replaces its record)
        reason = "roster run was stopped before a worker applied this operation; the next run plans it again"
        for cycle_id in self._cycles:
            lost = await pipeline.runner.results.expire(cycle_id, reason)
            left = f"{lost:,} operation(s) not sent, planned again" if lost else "nothing was left in flight"
            self.say(f"stopped: cycle {cycle_id} interrupted; {left}")

    def _running(self) -> list[CycleProgress]:
        tracker = self._pipeline.runner.tracker
        return [p for job in self._pipeline.runner.config.jobs for p in tracker.running(job.name)]


async def _serve(
    pipeline: Embedded,
    jobs: list[JobConfig],
    api: ApiSettings,
    registry: CollectorRegistry,
    listen: tuple[str, int],
    warnings: list[str],
    console: Console,
) -> None:
    """Run every job now, then on its schedule, with the admin API and `/metrics`, until SIGTERM or
    SIGINT; a line per cycle as each ends."""
    runner, worker = pipeline.runner, pipeline.worker
    scheduler = Scheduler(runner, jobs)
    export_watched(runner)
    export_fleet(runner.metrics, pipeline.fleet, [job.target for job in runner.config.jobs])
    say = line_printer(console)
    runner.cycle_observers.append(lambda summary: say(cycle_line(summary)))
    install_stop_handlers(
        scheduler.stop,
        say=say,
        waiting=lambda: _serving_wait(runner),
    )
    server = StatusServer(registry, lambda: _health(runner, worker), host=listen[0], port=listen[1])
    await server.start()
    try:
        async with (
            observed(runner, jobs),
            operated(
                Admin(runner, scheduler, warnings=warnings, fleet=pipeline.fleet),
                api,
                retention_days=runner.config.log_retention_days,
                on_listening=announcer(console),
            ),
            served(runner, jobs) as inbound,
            notifying(runner, pipeline.fleet),
        ):
            if inbound is not None:
                say(f"inbound SCIM service: {inbound.url}")
            await scheduler.run(until_stopped=inbound is not None)
    finally:
        await server.aclose()


def _serving_wait(runner: CycleRunner) -> str:
    running = [p for job in runner.config.jobs for p in runner.tracker.running(job.name)]
    if not running:
        return "no cycle is running"
    each = ", ".join(f"{p.job} ({p.settled:,} of {p.planned:,} operations done)" for p in running)
    return f"the running cycle(s) finish first: {each}"


def _health(runner: CycleRunner, worker: Worker) -> tuple[bool, dict[str, object]]:
    """Healthy while the worker and the result consumer run and no cycle is stuck past its deadline."""
    cycles_healthy, cycles = runner.tracker.health()
    healthy = worker.started and runner.results.running and cycles_healthy
    return healthy, {"role": "embedded", "jobs": [j.name for j in runner.config.jobs], **cycles}
