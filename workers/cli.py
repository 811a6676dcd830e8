"""`roster worker FILE` (and `--check`): the worker's command line, which loads the workers' side of
Roster only."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common.config.yamlfile import load_yaml
from common.errors import ConfigError
from common.process.build import version_text
from common.process.cli import (
    WORKER_LISTEN,
    add_broker_arguments,
    add_listen_argument,
    add_log_level_argument,
    add_metrics_argument,
    broker_url,
    configure_logging,
    exit_code_of,
    listen_address,
)
from common.process.exposure import broker_unverified, unverified_tls
from common.process.tuning import tune_process
from queues.connect import broker_from_url
from queues.contracts import VERSION as WIRE_VERSION
from queues.versions import VERSIONS_VARIABLE, spoken_from
from workers.config import TargetConfig, parse_targets
from workers.presence import parse_presence
from workers.process import run_worker


def add_worker_arguments(worker: argparse.ArgumentParser) -> None:
    """The options of `roster worker`, for this parser and for the engine's `roster --help`."""
    worker.add_argument("--version", action="version", version=version_text(WIRE_VERSION))
    worker.add_argument("file", type=Path, help="a YAML file with targets: (and their credentials)")
    worker.add_argument("--target", action="append", help="serve only this target (repeatable)")
    worker.add_argument(
        "--check",
        action="store_true",
        help="check the broker (reach, TLS, login, vhost, permissions) and each target (reach, TLS, "
        "credentials, base DN / table / endpoint, a read), one line each; write nothing, then exit "
        "(1 if any check failed)",
    )
    add_broker_arguments(worker)
    add_listen_argument(worker, WORKER_LISTEN)
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
    add_metrics_argument(worker)


def run(args: argparse.Namespace) -> int:
    """Serve the targets of `args.file` until SIGTERM or SIGINT; returns the exit code."""
    wire_versions = spoken_from(os.environ.get(VERSIONS_VARIABLE))  # tests and emergencies only
    raw = load_yaml(args.file)
    targets = parse_targets(raw, base_dir=args.file.absolute().parent)
    url = broker_url(args.broker, raw.get("broker"), args.file)
    presence = parse_presence(raw.get("workers"))
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
    if args.check:
        return _check(url, args.broker_ca_file, targets)
    found = broker_unverified(url)
    peers = [(f"target {t.name!r}", t.settings) for t in targets]
    for warning in ([found] if found else []) + unverified_tls(peers):
        print(f"warning {warning}", flush=True)
    broker = broker_from_url(url, ca_file=args.broker_ca_file)
    host, port = listen_address(args.listen)
    tune_process()
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
            wire_versions=wire_versions,
            presence=presence,
        )
    )


def _check(url: str, ca_file: str | None, targets: Sequence[TargetConfig]) -> int:
    from common.process.checks import report_checks
    from workers.check import check_worker

    checks = asyncio.run(check_worker(url, ca_file=ca_file, targets=targets))
    return report_checks(checks, lambda line: print(line, flush=True))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roster", description="Identity provisioning engine: a worker.")
    add_log_level_argument(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    add_worker_arguments(
        commands.add_parser("worker", help="run a worker: drain the queues of the targets in FILE")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    return exit_code_of(lambda: run(args), lambda kind, message: print(f"{kind} {message}", flush=True))


if __name__ == "__main__":
    sys.exit(main())
