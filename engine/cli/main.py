"""The engine's command line: `roster run`, `engine`, `validate`, `preview`, `plan`, `provision` and the
operating commands; `roster worker` is the workers' own (`workers/cli.py`), reached from here too.

A command's modules are imported when it runs, not when the parser is built, so a command loads only
what it uses.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from common.process.build import version_text
from common.process.cli import (
    ENGINE_LISTEN,
    add_broker_arguments,
    add_listen_argument,
    add_log_level_argument,
    add_metrics_argument,
    configure_logging,
    exit_code_of,
)
from engine.cli.commands import add_operating_commands
from engine.cli.connector_check import add_connector_check_command
from engine.cli.options import DEFAULT_STATE, add_api_arguments
from queues.contracts import VERSION as WIRE_VERSION


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    console = _Console(stderr=False)

    def report(kind: str, message: str) -> None:
        console.print(f"[bold red]{kind}[/] {message}", highlight=False, soft_wrap=True)

    code: int = exit_code_of(lambda: args.func(args, console), report)
    return code


class _Console(Console):
    """Leaves a closed stdout (`roster status | head -1`) to the launcher, which exits as every
    command does then, instead of rich's own exit 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roster", description="Identity provisioning engine.")
    parser.add_argument("--version", action="version", version=version_text(WIRE_VERSION))
    add_log_level_argument(parser)
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
    add_listen_argument(run, ENGINE_LISTEN, "with --serve: ")
    add_api_arguments(run)
    run.set_defaults(func=_run)

    engine = commands.add_parser(
        "engine", help="run the engine of scaled mode (workers run apart, over RabbitMQ)"
    )
    engine.add_argument("file", type=Path, help="a YAML file with jobs:")
    engine.add_argument("--job", action="append", help="run only this job (repeatable)")
    add_broker_arguments(engine)
    engine.add_argument(
        "--state",
        default=os.environ.get("ROSTER_STATE"),
        help="state store: a SQLite path or a postgresql:// URL (env ROSTER_STATE)",
    )
    add_listen_argument(engine, ENGINE_LISTEN)
    engine.add_argument("--once", action="store_true", help="run one cycle of each job, then exit")
    engine.add_argument(
        "--check",
        action="store_true",
        help="check the broker (reach, TLS, login, vhost, permissions), the state store and each job's "
        "source, one line each; change nothing, then exit (1 if any check failed)",
    )
    add_metrics_argument(engine)
    add_api_arguments(engine)
    engine.set_defaults(func=_engine)

    worker = commands.add_parser("worker", help="run a worker: drain the queues of the targets in FILE")
    _add_worker_arguments(worker)
    worker.set_defaults(func=_worker)

    for name, text, func in (
        (
            "preview",
            "show how one source object would be scoped, mapped and provisioned (writes nothing)",
            _preview,
        ),
        ("provision", "provision one source object now, embedded, and show each step", _provision),
    ):
        one = commands.add_parser(name, help=text)
        one.add_argument("file", type=Path)
        one.add_argument("job")
        one.add_argument("source_id")
        one.add_argument("--state", help="state store: a SQLite path or URL")
        one.set_defaults(func=func)

    plan = commands.add_parser(
        "plan",
        help="show the next cycle of each job, object by object and attribute by attribute (writes nothing)",
    )
    plan.add_argument("file", type=Path)
    plan.add_argument("--job", action="append", help="plan only this job (repeatable)")
    plan.add_argument("--state", help="state store: a SQLite path or URL")
    plan.add_argument(
        "--output",
        choices=("table", "json"),
        default="table",
        help="a table of the first --limit objects and the totals, or JSON Lines: every object, then totals",
    )
    plan.add_argument(
        "--limit",
        type=_count,
        default=50,
        help="objects shown per job in the table (default 50; totals are whole)",
    )
    plan.add_argument(
        "--reconcile",
        action="store_true",
        help="old values from the target itself, read through its connector (embedded), not from the "
        "last applied state: what `roster reconcile` would find and do",
    )
    plan.set_defaults(func=_plan)
    reconcile = commands.add_parser(
        "reconcile",
        help="read the job's target back, say what drifted, is missing or orphaned, and set it right per "
        "the job's `reconcile:` policy (embedded)",
    )
    reconcile.add_argument("file", type=Path)
    reconcile.add_argument("job")
    reconcile.add_argument("--state", help="state store: a SQLite path or URL")
    reconcile.add_argument(
        "--report-only", action="store_true", help="say what is found, change nothing (whatever the policy)"
    )
    reconcile.add_argument(
        "--approve-orphans",
        action="store_true",
        help="disable or delete the orphans (per `reconcile.orphan`) even past the deletion guard",
    )
    reconcile.set_defaults(func=_reconcile)

    validate = commands.add_parser("validate", help="check a jobs/targets file and say what is wrong")
    validate.add_argument("file", type=Path)
    validate.add_argument(
        "--connect",
        action="store_true",
        help="also connect to each source and target (reads, never writes) and check what it finds",
    )
    validate.set_defaults(func=_validate)
    plugins = commands.add_parser(
        "plugins", help="list the connector and source types installed, with their versions and errors"
    )
    plugins.add_argument("--json", action="store_true", help="print them as one JSON object")
    plugins.set_defaults(func=_plugins)
    new_connector = commands.add_parser(
        "new-connector", help="write a ready package for a new connector type NAME (docs/connectors.md)"
    )
    new_connector.add_argument("name", help="the connector type: lower-case letters, digits and _")
    new_connector.add_argument(
        "--into", type=Path, help="the folder to write it into (default: roster-NAME-connector here)"
    )
    new_connector.set_defaults(func=_new_connector)
    add_connector_check_command(commands)
    add_operating_commands(commands)
    return parser


def _run(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.embedded import run_command

    return run_command(args, console)


def _provision(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.embedded import provision_command

    return provision_command(args, console)


def _engine(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.serve import engine_command

    return engine_command(args, console)


def _preview(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.inspect import preview_command

    return preview_command(args, console)


def _plan(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.inspect import plan_command

    return plan_command(args, console)


def _plugins(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.plugins import plugins_command

    return plugins_command(args, console)


def _new_connector(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.new_connector import new_connector_command

    return new_connector_command(args, console)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return int(text)


def _reconcile(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.embedded import reconcile_command

    return reconcile_command(args, console)


def _validate(args: argparse.Namespace, console: Console) -> int:
    from engine.cli.validate import validate_command

    return validate_command(args, console)


def _add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    from workers.cli import add_worker_arguments

    add_worker_arguments(parser)


def _worker(args: argparse.Namespace, console: Console) -> int:
    from workers.cli import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
