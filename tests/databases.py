"""A PostgreSQL database of its own for a test, so that tests running at once (here, and other
checkouts using the shared `test` database) never see each other's state or advisory locks."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from engine.store.state import state_url
from tests import needs

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # A thread of its own, so that async tests (whose loop is running) can call this too.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@contextmanager
def private_database(prefix: str = "roster") -> Iterator[str]:
    """Create a database named after the test run, yield its postgresql:// URL, drop it after. Skips the
    test when PostgreSQL does not answer (tests/needs.py)."""
    needs.postgres()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def state_store_url(kind: str, tmp_path: Path, prefix: str) -> Iterator[str]:
    """A state store URL of `kind` ("sqlite": a file in `tmp_path`; "postgresql": a private database,
    dropped afterwards), for tests that run on both."""
    if kind == "sqlite":
        yield state_url(str(tmp_path / "state.db"))
        return
    needs.postgres()
    with private_database(prefix) as database:
        yield state_url(database)
