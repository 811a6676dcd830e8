"""Embedded mode: the engine and the workers in one process, joined by the in-memory broker.

The one module that composes `engine` and `workers`; each side gets only its own section of the file.
`roster run` and `roster provision` run here.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from common.errors import ConfigError
from common.process.signals import install_stop_handlers
from common.process.tuning import tune_process
from engine.api.admin import Admin
from engine.api.server import ApiSettings, operated
from engine.cli.report import ProgressView, exit_code, print_provisioned, print_summary
from engine.cli.settings import announcer, api_from, exposure_warnings, print_warnings, state_location
from engine.config import EngineConfig, JobConfig, in_dependency_order, load_engine_config
from engine.model import CycleSummary
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.ondemand import Provisioned, provision
from engine.pipeline.scheduler import Scheduler
from engine.store.state import StateStore
from queues.memory import MemoryBroker
from workers.config import TargetConfig, load_targets
from workers.worker import Worker


@dataclass(frozen=True, slots=True)
class Embedded:
    """Engine and workers in one process, joined by the in-memory broker."""

    broker: MemoryBroker
    state: StateStore
    worker: Worker
    runner: CycleRunner
    targets: Sequence[TargetConfig]


@asynccontextmanager
async def embedded(
    config: EngineConfig, targets: Sequence[TargetConfig], state_location: str
) -> AsyncIterator[Embedded]:
    """Start the pipeline for `config`'s jobs with the workers of `targets`; close it in reverse order."""
    used = {job.target for job in config.jobs}
    targets = [t for t in targets if t.name in used]
    async with MemoryBroker() as broker, StateStore(state_location) as state:
        worker = Worker(broker, [t.runtime() for t in targets])
        async with worker, CycleRunner(config, broker, state) as runner:
            yield Embedded(broker, state, worker, runner, targets)


def load_both(path: Path) -> tuple[EngineConfig, tuple[TargetConfig, ...]]:
    """The jobs and the targets of one file; every job's target must be among them."""
    config = load_engine_config(path)
    targets = load_targets(path)
    names = {t.name for t in targets}
    for i, job in enumerate(config.jobs):
        if job.target not in names:
            raise ConfigError(
                f"jobs[{i}].target",
                f"no target named {job.target!r}",
                f"targets in this file: {', '.join(sorted(names)) or 'none'}",
            )
    return config, targets


def run_command(args: argparse.Namespace, console: Console) -> int:
    """`roster run`: one cycle of each job (or, with `--serve`, every job on its schedule)."""
    config, targets = load_both(args.file)
    jobs = in_dependency_order([config.job(name) for name in args.job] if args.job else config.jobs)
    state = state_location(args, config)
    api = api_from(args, state, config) if args.serve else None
    warnings = exposure_warnings(config, api=api, targets=targets)
    print_warnings(console, warnings)
    tune_process()
    summaries = asyncio.run(_run(config, targets, jobs, state, args, console, api, warnings))
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
            return await provision(pipeline.runner, job, args.source_id)

    done = asyncio.run(run())
    print_provisioned(console, done)
    return 0 if all(r["status"] in ("succeeded", "retrying") for r in done.records) else 1


async def _run(
    config: EngineConfig,
    targets: tuple[TargetConfig, ...],
    jobs: list[JobConfig],
    state_location: str,
    args: argparse.Namespace,
    console: Console,
    api: ApiSettings | None,
    warnings: list[str],
) -> list[CycleSummary]:
    async with embedded(config, targets, state_location) as pipeline:
        if api is not None:  # --serve
            await _serve(pipeline.runner, jobs, api, warnings, console)
            return []
        summaries = []
        for job in jobs:
            with ProgressView(console, job.name, enabled=not args.no_progress) as view:
                summaries.append(await pipeline.runner.run_cycle(job, trigger="cli", on_start=view.follow))
        return summaries


async def _serve(
    runner: CycleRunner, jobs: list[JobConfig], api: ApiSettings, warnings: list[str], console: Console
) -> None:
    """Run every job now, then on its schedule, with the admin API, until SIGTERM or SIGINT."""
    scheduler = Scheduler(runner, jobs)
    admin = Admin(runner, scheduler, warnings=warnings)
    install_stop_handlers(scheduler.stop)
    retention_days = runner.config.log_retention_days
    async with operated(admin, api, retention_days=retention_days, on_listening=announcer(console)):
        await scheduler.run()
