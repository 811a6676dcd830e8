"""Work on the state store written as plain, blocking SQLAlchemy code, run in one hop.

Through the async driver every statement on SQLite is three or four round trips between the event
loop and aiosqlite's thread, and each waits for the loop whenever the loop is busy: a transaction of
a read, a write and a commit took 5 to 15 ms on a loaded engine. A function of a blocking
`sqlalchemy.Connection` runs whole in a thread of its own instead (SQLite, on a second, blocking
engine on the same file), one hop for all its statements; on PostgreSQL it runs through the async
engine's `run_sync`, statement by statement as before. Writes take the state store's writer turn
(`StateStore.turn`), so they never meet another writer of this process in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
Work = Callable[[sa.Connection], T]


class Store(Protocol):
    """What of the state store the blocking work needs (`engine.store.state.StateStore`)."""

    @property
    def engine(self) -> AsyncEngine: ...

    def turn(self, *, urgent: bool = False) -> AbstractAsyncContextManager[None]: ...

    def writing(self, *, urgent: bool = False) -> AbstractAsyncContextManager[AsyncConnection]: ...


class BlockingWork:
    """Runs blocking functions of a connection against the state store's database."""

    def __init__(self, state: Store) -> None:
        self._state = state
        self._engine: sa.Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._making = threading.Lock()
        """Reads have a thread of their own: a read does not wait for the writes queued before it
        (WAL gives it the database as the last commit left it)."""

    async def read(self, work: Work[T]) -> T:
        """`work` on a connection, outside any write transaction."""
        if not self._local:
            async with self._state.engine.connect() as conn:
                return await conn.run_sync(work)
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roster-state-read")
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._run, work, False)

    async def write(self, work: Work[T], *, urgent: bool = False) -> T:
        """`work` in a write transaction, committed when it returns (rolled back if it raises)."""
        if not self._local:
            async with self._state.writing(urgent=urgent) as conn:
                return await conn.run_sync(work)
        async with self._state.turn(urgent=urgent):
            return await self._in_thread(work, commit=True)

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.shutdown(wait=False)
        thread, self._thread = self._thread, None
        if thread is None:
            self._dispose()  # made by a read alone, or never
            return
        await asyncio.get_running_loop().run_in_executor(thread, self._dispose)
        thread.shutdown(wait=False)

    @property
    def _local(self) -> bool:
        """A SQLite file: a second engine on it sees the same database (an in-memory one would not)."""
        url = self._state.engine.url
        return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")

    async def _in_thread(self, work: Work[T], *, commit: bool) -> T:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roster-state")
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, work, commit)

    def _run(self, work: Work[T], commit: bool) -> T:
        with self._making:  # once, by whichever thread comes first; the pool serves both
            if self._engine is None:
                url = self._state.engine.url.set(drivername="sqlite")
                engine = sa.create_engine(
                    url, hide_parameters=True, connect_args={"check_same_thread": False}
                )
                sa.event.listen(engine, "connect", sqlite_pragmas)
                self._engine = engine
        with self._engine.connect() as conn:
            result = work(conn)
            if commit:
                conn.commit()
        return result

    def _dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (the CLI, a second cycle's snapshot) run beside the result writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
