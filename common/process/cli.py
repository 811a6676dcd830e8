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
from pathlib import Path
from typing import Any

from common.errors import ConfigError, RosterError
from common.process.status_server import parse_listen

EXIT_OK = 0
EXIT_FAILED = 1
"""An error, or a cycle that failed or had operations fail."""
EXIT_CONFIG = 2
EXIT_ATTENTION = 3
"""Nothing failed, but a person must look: a source read was incomplete, or operations wait for approval."""
EXIT_INTERRUPTED = 130

BROKER_ENV = "ROSTER_BROKER"

ENGINE_LISTEN = "127.0.0.1:8478"
WORKER_LISTEN = "127.0.0.1:8479"
"""The default /metrics addresses: beside the admin API's 8477, and outside 9100-9999, which the
Prometheus wiki's "Default port allocations" gives to exporters (9100 node-exporter, 9101 HAProxy's)."""

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format=LOG_FORMAT, stream=sys.stderr)


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        help="amqp:// or amqps:// URL of RabbitMQ, such as amqp://USER:PASSWORD@HOST:5672/VHOST "
        "(else env ROSTER_BROKER, else `broker:` in FILE; required)",
    )
    parser.add_argument(
        "--broker-ca-file",
        default=os.environ.get("ROSTER_BROKER_CA_FILE"),
        help="CA bundle to verify an amqps:// broker (env ROSTER_BROKER_CA_FILE)",
    )


def broker_url(flag: str | None, configured: Any, file: Path) -> str:
    """The broker URL from `--broker`, else `ROSTER_BROKER`, else the file's top-level `broker:`;
    there is no default, so that no process joins a broker (and its vhost) nobody chose."""
    url = flag or os.environ.get(BROKER_ENV) or configured
    if url is None or url == "":
        renamed = (
            " (ROSTER_BROKER_URL is read no more: rename it)" if "ROSTER_BROKER_URL" in os.environ else ""
        )
        raise ConfigError(
            "--broker",
            "no broker URL given" + renamed,
            f"pass --broker amqp://USER:PASSWORD@HOST:5672/VHOST, set {BROKER_ENV}, "
            f"or add `broker:` to {file}",
        )
    if not isinstance(url, str):
        raise ConfigError("broker", f"expected a URL, got {type(url).__name__}", "such as amqp://...")
    return url


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
        raise ConfigError("--listen", str(exc), "for example --listen 127.0.0.1:8478") from None


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
