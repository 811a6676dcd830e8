"""`roster preview`: how one source object would be scoped, mapped and provisioned, read from a file and
the state; writes nothing."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.console import Console

from engine.cli.report import print_preview
from engine.cli.settings import state_location
from engine.config import load_engine_config
from engine.pipeline.ondemand import Preview, preview_from_state
from engine.store.state import StateStore


def preview_command(args: argparse.Namespace, console: Console) -> int:
    """How one source object would be scoped, mapped and provisioned; writes nothing."""
    config = load_engine_config(args.file)
    job = config.job(args.job)
    location = state_location(args, config)

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
