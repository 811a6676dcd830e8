"""Command-line plumbing of a Roster process: the broker, listen and metrics options, logging, and the
exit code of an error.

`roster engine` and `roster worker` take the same broker options and report errors the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from common.errors import ConfigError, RosterError
from common.process.status_server import parse_listen

EXIT_OK = 0
EXIT_FAILED = 1
"""An error, or a cycle that failed or had operations fail."""
EXIT_CONFIG = 2
EXIT_ATTENTION = 3
"""Nothing failed, but a person must look: a source read was incomplete, or operations wait for approval."""
EXIT_INTERRUPTED = 130

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format=LOG_FORMAT, stream=sys.stderr)


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
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


def add_listen_argument(parser: argparse.ArgumentParser, default: str, when: str = "") -> None:
    parser.add_argument(
        "--listen",
        default=os.environ.get("ROSTER_LISTEN", default),
        help=f"{when}HOST:PORT for /metrics and /healthz (env ROSTER_LISTEN; default {default})",
    )


def add_metrics_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="record no per-operation metrics (/metrics still answers); for measuring their cost",
    )


def listen_address(value: str) -> tuple[str, int]:
    """`--listen HOST:PORT` as a host and a port, or a `ConfigError` that shows the form."""
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise ConfigError("--listen", str(exc), "for example --listen 127.0.0.1:9100") from None


def exit_code_of(command: Callable[[], int], report: Callable[[str, str], None]) -> int:
    """Run `command`; a `ConfigError` exits 2, any other `RosterError` 1, Ctrl-C 130, each reported
    through `report(kind, message)` in one line. A command that runs cycles returns 0, 1 or 3 (see
    `EXIT_ATTENTION`) itself."""
    try:
        return command()
    except ConfigError as exc:
        report("config error", str(exc))
        return EXIT_CONFIG
    except RosterError as exc:
        report("error", str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
