"""The state store's location and the admin API's settings, read from a command line and a job file."""

from __future__ import annotations

import argparse
import os

from rich.console import Console

from engine.api.server import ApiSettings, api_settings
from engine.cli.options import DEFAULT_STATE
from engine.config import EngineConfig
from engine.store.state import state_url


def state_location(args: argparse.Namespace, config: EngineConfig) -> str:
    """`--state`, else the file's `engine.state`, else `.roster/state.db` beside the file."""
    return state_url(args.state or config.state or DEFAULT_STATE, base_dir=config.base_dir)


def api_from(args: argparse.Namespace, state: str, config: EngineConfig, console: Console) -> ApiSettings:
    """The admin API's settings from the command line, said in one line (where the token is)."""
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
