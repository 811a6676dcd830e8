"""How a SQL source reaches its database: the URL's checks, and one connection that streams a read.

**Drivers.** Any SQLAlchemy URL works. `postgresql://`, `mysql://`, `mariadb://` and `sqlite://`
without a driver get the async one Roster ships or offers (asyncpg, aiomysql from the `mysql` extra,
aiosqlite). A URL naming a driver keeps it: an async driver (`postgresql+psycopg_async`) runs on the
event loop; a sync one (`mssql+pyodbc`, `oracle+oracledb`, `sqlite+pysqlite`) runs on a thread of its
own for the whole read, each call handed to it, so the loop never waits on the database and a driver
that insists on one thread per connection (SQLite's) is content. Both read through a server-side
cursor (`stream_results`, `yield_per`), one chunk of rows at a time.

**Secrets.** The password (in the URL, or from `password:`) is in no message: errors show the URL with
`***` and each driver message has it masked, in case a driver repeats what it was given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from common.errors import ConfigError, SourceError

_DEFAULT_DRIVERS: Final = {
    "postgresql": "asyncpg",
    "sqlite": "aiosqlite",
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
}
_INSTALL: Final = {
    "aiomysql": "pip install 'roster[mysql]'",
    "asyncmy": "pip install asyncmy",
    "psycopg": "pip install 'psycopg[binary]'",
    "psycopg2": "pip install psycopg2-binary",
    "pymysql": "pip install pymysql",
    "pyodbc": "pip install pyodbc (and the ODBC driver of the database)",
    "oracledb": "pip install oracledb",
}
URL_HINT: Final = (
    "write it as postgresql://user@host:5432/database, mysql://user@host/database or "
    "sqlite:///path/to/file.db (any SQLAlchemy URL)"
)
_SAID_MAX: Final = 300
T = TypeVar("T")


def parse_url(path: str, raw: Any, *, password: str | None, base_dir: Path) -> URL:
    """The URL at `path`, with its default async driver and `password` set; refuse one that cannot be
    read, names a database SQLAlchemy does not know, or needs a driver that is not installed."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(path, "expected a database URL", URL_HINT)
    try:
        url = make_url(raw.strip())
    except (sa_exc.ArgumentError, ValueError):
        # The exception text repeats the whole string, password included: never show it.
        raise ConfigError(path, "cannot be read as a database URL", URL_HINT) from None
    backend, _, driver = url.drivername.partition("+")
    backend = "postgresql" if backend == "postgres" else backend
    driver = driver or _DEFAULT_DRIVERS.get(backend, "")
    url = url.set(drivername=f"{backend}+{driver}" if driver else backend)
    if password is not None:
        if url.password:
            raise ConfigError(
                path,
                "holds a password, and `password:` gives one too",
                "keep one: `password: ${DB_PASSWORD}`",
            )
        url = url.set(password=password)
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            raise ConfigError(
                path, "names an in-memory SQLite database, which holds nothing to read", "name a file"
            )
        if not database.startswith("file:") and not Path(database).is_absolute():
            url = url.set(database=str((base_dir / database).resolve()))
    try:
        dialect = url.get_dialect()
    except sa_exc.NoSuchModuleError:
        raise ConfigError(
            path, f"SQLAlchemy knows no database {url.drivername!r}", f"install its dialect, or {URL_HINT}"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError:
        name = driver or dialect.driver
        raise ConfigError(
            path,
            f"needs the driver {name}, which is not installed",
            _INSTALL.get(name, f"install the Python package of {name}"),
        ) from None
    return url


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def said(exc: BaseException, url: URL) -> str:
    """What the database (or its driver) said, on one line, without the password."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split()) or type(cause).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return text if len(text) <= _SAID_MAX else text[: _SAID_MAX - 3] + "..."


FAILURES: Final = (sa_exc.SQLAlchemyError, OSError, TimeoutError)
"""What a database call raises when the database refuses or cannot be reached."""


class Link:
    """One connection to the database for one read: `run` a sync function on it (reflection), then
    `stream` a statement's rows. An async driver's calls run on the loop, a sync driver's on a thread
    of their own. Use it as an async context manager; `aclose` is idempotent."""

    def __init__(self, url: URL, *, connect_timeout_s: float) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.is_async = bool(url.get_dialect().is_async)
        self._async_engine: AsyncEngine | None = None
        self._async_conn: AsyncConnection | None = None
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> Link:
        database = self.url.database or ""
        if self.url.get_backend_name() == "sqlite" and not database.startswith("file:"):
            if not Path(database).is_file():  # SQLite would make an empty one, which reads as no table
                raise SourceError(f"{database}: no such SQLite file (check the source's `url:`)")
        try:
            await asyncio.wait_for(self._connect(), self.connect_timeout_s)
        except FAILURES as exc:
            await self.aclose()
            reason = "no answer" if isinstance(exc, TimeoutError) else said(exc, self.url)
            raise SourceError(
                f"{safe_url(self.url)}: cannot connect ({reason}); check the source's `url:` and that the "
                "database is up and takes these credentials"
            ) from None
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _connect(self) -> None:
        if self.is_async:
            self._async_engine = create_async_engine(self.url, poolclass=NullPool)
            self._async_conn = await self._async_engine.connect()
        else:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="roster-sql-source")
            self._engine = sa.create_engine(self.url, poolclass=NullPool)
            self._conn = await self._call(self._engine.connect)

    async def _call(self, fn: Callable[[], T]) -> T:
        assert self._thread is not None
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """`fn` on the connection as a sync SQLAlchemy `Connection` (for reflection)."""
        if self._async_conn is not None:
            return await self._async_conn.run_sync(fn)
        assert self._conn is not None
        conn = self._conn
        return await self._call(lambda: fn(conn))

    async def stream(self, statement: sa.Select[Any], size: int) -> AsyncGenerator[Sequence[sa.Row[Any]]]:
        """The rows of `statement`, `size` at a time, through a server-side cursor."""
        if self._async_conn is not None:
            result = await self._async_conn.stream(statement.execution_options(yield_per=size))
            try:
                async for part in result.partitions(size):
                    yield part
            finally:
                await result.close()
            return
        assert self._conn is not None
        conn = self._conn
        sync_result = await self._call(
            lambda: conn.execution_options(stream_results=True, yield_per=size).execute(statement)
        )
        try:
            while part := await self._call(lambda: sync_result.fetchmany(size)):
                yield part
        finally:
            await self._call(sync_result.close)

    async def aclose(self) -> None:
        """Roll back (the read wrote nothing) and close the connection, then the engine."""
        async_conn, self._async_conn = self._async_conn, None
        async_engine, self._async_engine = self._async_engine, None
        if async_conn is not None:
            try:
                await async_conn.close()
            except FAILURES:
                pass  # the connection broke: it is gone either way
        if async_engine is not None:
            await async_engine.dispose()
        conn, self._conn = self._conn, None
        engine, self._engine = self._engine, None
        thread, self._thread = self._thread, None
        if thread is not None:
            loop = asyncio.get_running_loop()
            if conn is not None:
                try:
                    await loop.run_in_executor(thread, conn.close)
                except FAILURES:
                    pass  # the connection broke: it is gone either way
                if engine is not None:  # not after a connect that never answered: it holds the thread
                    await loop.run_in_executor(thread, engine.dispose)
            thread.shutdown(wait=False)  # a connect that never answered may hold it still
