"""The `roster` command line.

`roster run FILE` is embedded mode: engine and workers in one process, the in-memory broker, a SQLite
state file. This is the one place that composes `engine` and `workers`; each side gets only its own
section of the file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from common.config.yamlfile import load_yaml
from common.errors import ConfigError, RosterError
from common.process.signals import install_stop_handlers
from common.process.status_server import parse_listen
from engine.api.admin import Admin
from engine.api.server import DEFAULT_LISTEN, ApiSettings, api_settings, operated
from engine.cli.commands import add_operating_commands
from engine.cli.report import ProgressView, print_preview, print_provisioned, print_summary
from engine.cli.serve import run_engine
from engine.config import EngineConfig, JobConfig, in_dependency_order, load_engine_config
from engine.model import CycleSummary
from engine.pipeline.cycles import CycleRunner
from engine.pipeline.ondemand import Preview, Provisioned, preview_from_state, provision
from engine.pipeline.scheduler import Scheduler
from engine.store.state import StateStore, state_url
from queues.connect import broker_from_url
from queues.memory import MemoryBroker
from workers.config import TargetConfig, load_targets
from workers.process import run_worker
from workers.worker import Worker

log = logging.getLogger("roster.cli")

GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (see _prepare_process)
GIL_SWITCH_INTERVAL_S = 0.001  # how long a driver thread waits for the GIL (see _prepare_process)

DEFAULT_STATE = ".roster/state.db"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    console = Console(stderr=False)
    try:
        return args.func(args, console)
    except ConfigError as exc:
        console.print(f"[bold red]config error[/] {exc}", highlight=False)
        return 2
    except RosterError as exc:
        console.print(f"[bold red]error[/] {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roster", description="Identity provisioning engine.")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run one cycle of each job, embedded (engine and workers in one process)"
    )
    run.add_argument("file", type=Path, help="a YAML file with jobs: and targets:")
    run.add_argument("--job", action="append", help="run only this job (repeatable)")
    run.add_argument(
        "--state", help=f"state store: a SQLite path or URL (default: {DEFAULT_STATE} beside the file)"
    )
    run.add_argument("--serve", action="store_true", help="keep running the jobs on their schedules")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")
    _api_arguments(run)
    run.set_defaults(func=_run)

    engine = commands.add_parser(
        "engine", help="run the engine of scaled mode (workers run apart, over RabbitMQ)"
    )
    engine.add_argument("file", type=Path, help="a YAML file with jobs:")
    engine.add_argument("--job", action="append", help="run only this job (repeatable)")
    _broker_arguments(engine)
    engine.add_argument(
        "--state",
        default=os.environ.get("ROSTER_STATE"),
        help="state store: a SQLite path or a postgresql:// URL (env ROSTER_STATE)",
    )
    engine.add_argument(
        "--listen",
        default=os.environ.get("ROSTER_LISTEN", "127.0.0.1:9100"),
        help="HOST:PORT for /metrics and /healthz (env ROSTER_LISTEN)",
    )
    engine.add_argument("--once", action="store_true", help="run one cycle of each job, then exit")
    _metrics_argument(engine)
    _api_arguments(engine)
    engine.set_defaults(func=_engine)

    worker = commands.add_parser("worker", help="run a worker: drain the queues of the targets in FILE")
    worker.add_argument("file", type=Path, help="a YAML file with targets: (and their credentials)")
    worker.add_argument("--target", action="append", help="serve only this target (repeatable)")
    _broker_arguments(worker)
    worker.add_argument(
        "--listen",
        default=os.environ.get("ROSTER_LISTEN", "127.0.0.1:9101"),
        help="HOST:PORT for /metrics and /healthz (env ROSTER_LISTEN)",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        help="batches applied at once per target (default: the target's max_inflight)",
    )
    worker.add_argument(
        "--prefetch", type=int, help="batches held unacked per target (default: twice the concurrency)"
    )
    worker.add_argument(
        "--grace-s", type=float, default=30.0, help="how long SIGTERM waits for batches in flight"
    )
    _metrics_argument(worker)
    worker.set_defaults(func=_worker)

    for name, text in (
        ("preview", "show how one source object would be scoped, mapped and provisioned (writes nothing)"),
        ("provision", "provision one source object now, embedded, and show each step"),
    ):
        one = commands.add_parser(name, help=text)
        one.add_argument("file", type=Path)
        one.add_argument("job")
        one.add_argument("source_id")
        one.add_argument("--state", help="state store: a SQLite path or URL")
        one.set_defaults(func=_preview if name == "preview" else _provision)

    validate = commands.add_parser("validate", help="check a jobs/targets file and say what is wrong")
    validate.add_argument("file", type=Path)
    validate.set_defaults(func=_validate)
    add_operating_commands(commands)
    return parser


def _broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        default=os.environ.get("ROSTER_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        help="amqp:// or amqps:// URL of RabbitMQ (env ROSTER_BROKER_URL)",
    )
    parser.add_argument(
        "--broker-ca-file",
        default=os.environ.get("ROSTER_BROKER_CA_FILE"),
        help="CA bundle to verify an amqps:// broker (env ROSTER_BROKER_CA_FILE)",
    )


def _api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-listen",
        default=os.environ.get("ROSTER_API_LISTEN", DEFAULT_LISTEN),
        help=f"HOST:PORT of the admin API (env ROSTER_API_LISTEN; default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--api-token-file",
        type=Path,
        help="file holding the API token (default: env ROSTER_API_TOKEN, else api-token beside the state)",
    )


def _api(args: argparse.Namespace, state: str, config: EngineConfig, console: Console) -> ApiSettings:
    settings = api_settings(
        args.api_listen,
        token=os.environ.get("ROSTER_API_TOKEN"),
        token_file=args.api_token_file,
        state_location=state,
        base_dir=config.base_dir,
    )
    where = f"in {settings.token_file}" if settings.token_file else "from ROSTER_API_TOKEN"
    console.print(f"admin API on http://{settings.host}:{settings.port} (token {where})", highlight=False)
    return settings


def _metrics_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="record no per-operation metrics (/metrics still answers); for measuring their cost",
    )


def _engine(args: argparse.Namespace, console: Console) -> int:
    config = load_engine_config(args.file)
    jobs = in_dependency_order([config.job(name) for name in args.job] if args.job else config.jobs)
    state = state_url(args.state or config.state or DEFAULT_STATE, base_dir=config.base_dir)
    broker = broker_from_url(args.broker, ca_file=args.broker_ca_file)
    host, port = _listen(args.listen)
    api = _api(args, state, config, console)
    _prepare_process()
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
            api=api,
        )
    )
    if args.once:
        print_summary(console, summaries)
    return code


def _worker(args: argparse.Namespace, console: Console) -> int:
    targets = load_targets(args.file)
    if args.target:
        known = {t.name for t in targets}
        for name in args.target:
            if name not in known:
                raise ConfigError(
                    "--target",
                    f"no target named {name!r}",
                    f"targets in {args.file}: {', '.join(sorted(known))}",
                )
        targets = tuple(t for t in targets if t.name in args.target)
    broker = broker_from_url(args.broker, ca_file=args.broker_ca_file)
    host, port = _listen(args.listen)
    _prepare_process()
    return asyncio.run(
        run_worker(
            broker,
            targets,
            host=host,
            port=port,
            concurrency=args.concurrency,
            prefetch=args.prefetch,
            grace_s=args.grace_s,
            record_metrics=not args.no_metrics,
        )
    )


def _listen(value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise ConfigError("--listen", str(exc), "for example --listen 127.0.0.1:9100") from None


def _preview(args: argparse.Namespace, console: Console) -> int:
    config = load_engine_config(args.file)
    job = config.job(args.job)
    location = state_url(args.state or config.state or DEFAULT_STATE, base_dir=config.base_dir)

    async def run() -> Preview:
        if not _state_exists(location):
            return await preview_from_state(job, args.source_id, None)
        async with StateStore(location) as state:
            return await preview_from_state(job, args.source_id, state)

    print_preview(console, asyncio.run(run()))
    return 0


def _state_exists(location: str) -> bool:
    """Preview writes nothing: a SQLite state file that is not there yet is not created."""
    prefix = "sqlite+aiosqlite:///"
    return not location.startswith(prefix) or Path(location.removeprefix(prefix)).exists()


def _provision(args: argparse.Namespace, console: Console) -> int:
    config, targets = _load(args.file)
    job = config.job(args.job)
    location = state_url(args.state or config.state or DEFAULT_STATE, base_dir=config.base_dir)
    _prepare_process()

    async def run() -> Provisioned:
        async with embedded(config, targets, location) as pipeline:
            return await provision(pipeline.runner, job, args.source_id)

    done = asyncio.run(run())
    print_provisioned(console, done)
    return 0 if all(r["status"] in ("succeeded", "retrying") for r in done.records) else 1


def _validate(args: argparse.Namespace, console: Console) -> int:
    """Check whichever sections the file has: jobs (the engine's), targets (the workers'), or both."""
    raw = load_yaml(args.file)
    if "jobs" not in raw and "targets" not in raw:
        raise ConfigError(
            str(args.file), "has neither `jobs:` nor `targets:`", "see examples/quickstart.yaml"
        )
    parts = []
    if "jobs" in raw and "targets" in raw:
        config, targets = _load(args.file)
    else:
        config = load_engine_config(args.file) if "jobs" in raw else None
        targets = load_targets(args.file) if "targets" in raw else ()
    if config is not None:
        parts.append(f"{len(config.jobs)} job(s) ({', '.join(j.name for j in config.jobs)})")
    if targets:
        parts.append(f"{len(targets)} target(s) ({', '.join(t.name for t in targets)})")
    console.print(f"[green]ok[/] {args.file}: {', '.join(parts)}", highlight=False)
    return 0


def _load(path: Path) -> tuple[EngineConfig, tuple[TargetConfig, ...]]:
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


def _run(args: argparse.Namespace, console: Console) -> int:
    config, targets = _load(args.file)
    jobs = in_dependency_order([config.job(name) for name in args.job] if args.job else config.jobs)
    state = state_url(args.state or config.state or DEFAULT_STATE, base_dir=config.base_dir)
    api = _api(args, state, config, console) if args.serve else None
    _prepare_process()
    summaries = asyncio.run(_embedded(config, targets, jobs, state, args, console, api))
    if not args.serve:
        print_summary(console, summaries)
    return 0 if all(s.status == "succeeded" for s in summaries) else 1


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


async def _embedded(
    config: EngineConfig,
    targets: tuple[TargetConfig, ...],
    jobs: list[JobConfig],
    state_location: str,
    args: argparse.Namespace,
    console: Console,
    api: ApiSettings | None,
) -> list[CycleSummary]:
    async with embedded(config, targets, state_location) as pipeline:
        if api is not None:  # --serve
            await _serve(pipeline.runner, jobs, api)
            return []
        summaries = []
        for job in jobs:
            with ProgressView(console, job.name, enabled=not args.no_progress) as view:
                summaries.append(await pipeline.runner.run_cycle(job, trigger="cli", on_start=view.follow))
        return summaries


async def _serve(runner: CycleRunner, jobs: list[JobConfig], api: ApiSettings) -> None:
    """Run every job now, then on its schedule, with the admin API, until SIGTERM or SIGINT."""
    scheduler = Scheduler(runner, jobs)
    install_stop_handlers(scheduler.stop)
    async with operated(Admin(runner, scheduler), api, retention_days=runner.config.log_retention_days):
        await scheduler.run()


def _prepare_process() -> None:
    """Process-wide settings, made by the entry points only: uvloop, the garbage collector, the GIL.

    A cycle allocates a few short-lived objects per source object. At the default threshold (700)
    that ran ~1,600 young and ~12 full collections per 100,000 objects, each full one walking every
    object of the loaded modules again: 15-20% of a cycle's time. What exists now (modules, the
    configuration) is frozen out of the collections, and young objects get room to die before one
    looks at them. Cyclic garbage is still collected.

    A driver thread (aiosqlite, for the state store and SQL targets) that returns from the database
    while the event loop thread computes waits up to the switch interval for the GIL; at the default
    5 ms, state writes fell seconds behind a cycle's planning.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


if __name__ == "__main__":
    sys.exit(main())
