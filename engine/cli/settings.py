"""The state store's location and the admin API's settings, read from a command line and a job file."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from common.process.exposure import broker_unverified, plain_http, unverified_tls
from engine.api.server import ApiServer, ApiSettings, api_settings
from engine.cli.options import DEFAULT_STATE
from engine.config import EngineConfig
from engine.store.state import state_url

if TYPE_CHECKING:
    from workers.config import TargetConfig


def state_location(args: argparse.Namespace, config: EngineConfig) -> str:
    """`--state`, else the file's `engine.state`, else `.roster/state.db` beside the file."""
    return state_url(args.state or config.state or DEFAULT_STATE, base_dir=config.base_dir)


def api_from(args: argparse.Namespace, state: str, config: EngineConfig) -> ApiSettings:
    """The admin API's settings from the command line; a `ConfigError` for an API that other
    machines reach without a token of its own."""
    return api_settings(
        args.api_listen,
        token=os.environ.get("ROSTER_API_TOKEN"),
        token_file=args.api_token_file,
        state_location=state,
        base_dir=config.base_dir,
        accounts=config.api_accounts,
        console=config.console,
    )


def announcer(console: Console) -> Callable[[ApiServer], None]:
    """Says, once the API listens, where, and where its token is (never the token)."""

    def announce(server: ApiServer) -> None:
        settings = server.settings
        where = f"in {settings.token_file}" if settings.token_file else "from ROSTER_API_TOKEN"
        console.print(f"admin API on {server.url} (token {where})", highlight=False, soft_wrap=True)

    return announce


def exposure_warnings(
    config: EngineConfig,
    *,
    api: ApiSettings | None,
    targets: Sequence[TargetConfig] = (),
    broker: str | None = None,
) -> list[str]:
    """What this engine exposes without protection: plain HTTP beyond the loopback, a source or
    connector that does not check certificates, an amqps:// broker URL without verification."""
    found = [
        plain_http("the admin API", api.host, api.port, "--api-listen / ROSTER_API_LISTEN") if api else None,
        broker_unverified(broker) if broker else None,
    ]
    peers = [(f"jobs[{i}].source", job.source) for i, job in enumerate(config.jobs)]
    peers += [(f"targets[{i}] ({t.name})", t.settings) for i, t in enumerate(targets)]
    return [w for w in found if w is not None] + unverified_tls(peers)


def print_warnings(console: Console, warnings: Sequence[str]) -> None:
    for warning in warnings:
        console.print(f"[bold yellow]warning[/] {warning}", highlight=False, soft_wrap=True)


def state_exists(location: str) -> bool:
    """Whether the state store is there: preview and plan write nothing, so they create no SQLite file."""
    prefix = "sqlite+aiosqlite:///"
    return not location.startswith(prefix) or Path(location.removeprefix(prefix)).exists()
