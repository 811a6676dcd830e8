"""The generic SQL target: one table in SQLite or PostgreSQL, written with SQLAlchemy Core (async).

Every create and update is an upsert (`INSERT ... ON CONFLICT (key) DO UPDATE`), so a redelivered
create is harmless and a create of an existing row updates it; a disable or delete of a missing row
counts as done. Rows are found by the key column alone, holding the operation's first matching value
(else its target id): a table has one key, so further matching attributes serve targets that search.
A batch is applied in one transaction with one `executemany` per statement shape. When that
transaction fails with a permanent error (one row breaks a constraint), it is rolled back and the
operations are applied one by one, each in its own transaction, so only the bad one fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from common.errors import ConfigError, ConnectorError, PermanentError, TransientError
from common.peers.sql_bulk import BulkStatement, NotBulkable
from queues.contracts import Operation
from workers.connectors.base import Applied, AsyncContextConnector, Outcome
from workers.unique import unique_candidates

logger = logging.getLogger(__name__)

OnDisable = Literal["deactivate", "delete"]

_KEYS: Final = (
    "url",
    "table",
    "key_column",
    "columns",
    "active_column",
    "on_disable",
    "create_table",
    "pool_size",
    "busy_timeout_s",
)
_ASYNC_DRIVERS: Final = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_URL_HINT: Final = "write it as sqlite:///path/to/file.db or postgresql://user:password@host:5432/database"
_KEY_PARAM: Final = "_roster_key"

# SQLSTATE classes and codes worth a retry: connection (08), transaction rollback: serialization
# failure and deadlock (40), insufficient resources (53), operator intervention: shutdown, statement
# timeout (57), system error (58), internal error (XX), lock not available and object in use (55P03, 55006).
_PG_TRANSIENT_CLASSES: Final = frozenset({"08", "40", "53", "57", "58", "XX"})
_PG_TRANSIENT_CODES: Final = frozenset({"55P03", "55006"})
# SQLite result codes (extended names start with these) that are about the file, not the data.
_SQLITE_TRANSIENT: Final = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_FULL",
    "SQLITE_PROTOCOL",
    "SQLITE_READONLY",
    "SQLITE_NOMEM",
    "SQLITE_INTERRUPT",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlSettings:
    """A validated SQL target. `url` already names the async driver; its repr hides the password."""

    url: URL
    table: str
    key_column: str
    columns: Mapping[str, str] | None = None
    active_column: str | None = None
    on_disable: OnDisable = "deactivate"
    create_table: bool = False
    pool_size: int = 4
    busy_timeout_s: float = 5.0
    path: str = field(default="", compare=False)
    """Where these settings were read from (`targets[0]`), to name it in errors found at `open()`."""

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)


def parse_sql_settings(path: str, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> SqlSettings:
    """Validate a SQL target's own settings (found at `path`), or raise `ConfigError` naming the key.

    A relative SQLite path is resolved against `base_dir` (the config file's folder; default: cwd).
    """

    def at(key: str) -> str:
        return f"{path}.{key}" if path else key

    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"must be a mapping of settings, got {type(raw).__name__}")
    for key in raw:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known settings: {', '.join(_KEYS)}"
            raise ConfigError(at(str(key)), "unknown setting", fix)

    url = _parse_url(at("url"), raw.get("url"), base_dir or Path.cwd())
    table = _name(at("table"), raw.get("table"), "the table that holds the target's objects")
    key_column = _name(at("key_column"), raw.get("key_column"), "the column that holds the matching value")
    columns = _columns(at("columns"), raw.get("columns"))
    active_column = None
    if raw.get("active_column") is not None:
        active_column = _name(at("active_column"), raw["active_column"], "a boolean column")
        if active_column == key_column:
            raise ConfigError(at("active_column"), "is the key column", "name the boolean column instead")
        if columns is not None and active_column in columns.values():
            raise ConfigError(
                at("active_column"),
                f"column {active_column!r} is also mapped from an attribute in columns",
                "remove it from columns: Roster sets it on create, update and disable",
            )

    on_disable = raw.get("on_disable", "deactivate")
    if on_disable not in ("deactivate", "delete"):
        raise ConfigError(at("on_disable"), f"must be 'deactivate' or 'delete', got {on_disable!r}")
    if on_disable == "deactivate" and active_column is None:
        raise ConfigError(
            at("active_column"),
            "is required when on_disable is 'deactivate' (the default)",
            "name the boolean column that marks a row active, or set on_disable: delete",
        )

    create_table = raw.get("create_table", False)
    if not isinstance(create_table, bool):
        raise ConfigError(at("create_table"), f"must be true or false, got {create_table!r}")
    if create_table and columns is None:
        raise ConfigError(
            at("create_table"),
            "needs a columns mapping to know which columns to create",
            "add columns: {attribute: column}, or create the table yourself",
        )

    pool_size = raw.get("pool_size", 4)
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ConfigError(at("pool_size"), f"must be an integer >= 1, got {pool_size!r}")

    busy_timeout_s = raw.get("busy_timeout_s", 5.0)
    if "busy_timeout_s" in raw and url.get_backend_name() != "sqlite":
        raise ConfigError(at("busy_timeout_s"), "applies to SQLite only", "remove it for this database")
    if isinstance(busy_timeout_s, bool) or not isinstance(busy_timeout_s, int | float) or busy_timeout_s < 0:
        raise ConfigError(at("busy_timeout_s"), f"must be a number of seconds >= 0, got {busy_timeout_s!r}")

    return SqlSettings(
        url=url,
        table=table,
        key_column=key_column,
        columns=columns,
        active_column=active_column,
        on_disable=on_disable,
        create_table=create_table,
        pool_size=pool_size,
        busy_timeout_s=float(busy_timeout_s),
        path=path,
    )


def _parse_url(path: str, value: Any, base_dir: Path) -> URL:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "is required and must be a database URL", _URL_HINT)
    try:
        url = make_url(value.strip())
    except (sa_exc.ArgumentError, ValueError):
        # The exception text repeats the whole string, password included: never show it.
        raise ConfigError(path, "cannot be read as a database URL", _URL_HINT) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(path, f"database {backend!r} is not supported", "use SQLite or PostgreSQL")
    wanted = _ASYNC_DRIVERS[backend]
    if driver not in {"", wanted} | ({"pysqlite"} if backend == "sqlite" else set()):
        raise ConfigError(
            path, f"driver {driver!r} is not supported", f"write {backend}:// and Roster uses {wanted}"
        )
    url = url.set(drivername=f"{backend}+{wanted}")
    database = url.database
    if backend == "sqlite" and (not database or database == ":memory:"):
        raise ConfigError(
            path,
            "names an in-memory SQLite database, which vanishes with its connection",
            "name a file: sqlite:///path/to/file.db",
        )
    if backend == "sqlite" and database and not database.startswith("file:"):
        if not Path(database).is_absolute():
            url = url.set(database=str((base_dir / database).resolve()))
    if backend == "postgresql" and not url.host and not url.query.get("host"):
        raise ConfigError(path, "names no host", _URL_HINT)
    return url


def _name(path: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "it is missing" if value is None else f"got {value!r}"
        raise ConfigError(path, f"is required and must be a name ({got})", f"name {what}")
    return value.strip()


def _columns(path: str, value: Any) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(path, "must be a non-empty mapping", "write it as {attribute: column, ...}")
    seen: dict[str, str] = {}
    for attribute, column in value.items():
        if not isinstance(attribute, str) or not attribute:
            raise ConfigError(path, f"attribute {attribute!r} is not a name", "use the attribute's name")
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"{path}.{attribute}", f"must be a column name, got {column!r}")
        column = column.strip()
        if column in seen:
            raise ConfigError(
                f"{path}.{attribute}",
                f"column {column!r} is already mapped from {seen[column]!r}",
                "map each column from one attribute",
            )
        seen[column] = attribute
    return MappingProxyType({attribute: column for column, attribute in seen.items()})


@dataclass(slots=True)
class _Plan:
    """The net effect of a batch on each key: the last upsert, then a deactivation or a delete."""

    upserts: dict[Any, dict[str, Any]] = field(default_factory=dict)
    ends: dict[Any, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.ends)


class SqlConnector(AsyncContextConnector):
    """Applies operations to one table; see the module docstring for the guarantees."""

    def __init__(self, name: str, settings: SqlSettings) -> None:
        self.name = name
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._table: sa.Table | None = None
        self._closed = False
        self._in_flight: set[asyncio.Future[list[Outcome]]] = set()
        # SQLite has one writer: queue this connector's transactions here rather than in the busy handler.
        self._lock = asyncio.Lock() if settings.dialect == "sqlite" else None
        self._insert = sqlite.insert if settings.dialect == "sqlite" else postgresql.insert
        self._targets: dict[str, tuple[str, Callable[[Any], Any] | None]] = {}
        self._strict = settings.columns is None
        self._key_attributes: tuple[str, ...] = ()
        self._key_convert: Callable[[Any], Any] | None = None
        self._upsert_statements: dict[tuple[str, ...], sa.Insert] = {}
        self._bulk_upserts: dict[tuple[str, ...], BulkStatement | None] = {}

    def __repr__(self) -> str:
        return f"SqlConnector({self.name!r}, {self.settings.safe_url}, table={self.settings.table!r})"

    async def open(self) -> None:
        """Connect, create the table if asked to, and check that it fits the settings."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._engine is not None:
            return
        s = self.settings
        options: dict[str, Any] = {"pool_size": s.pool_size, "max_overflow": 0, "hide_parameters": True}
        if s.dialect == "sqlite":
            options["connect_args"] = {"timeout": s.busy_timeout_s}
        else:
            options["pool_pre_ping"] = True
        engine = create_async_engine(s.url, **options)
        try:
            async with self._write_lock():
                if s.create_table:
                    await self._create_table(engine)
                async with engine.connect() as conn:
                    table = await conn.run_sync(self._reflect)
            self._check(table)
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, ConfigError | ConnectorError):
                raise
            error = self._error(exc)
            if error is None:
                raise
            raise error from exc
        self._table = table
        self._engine = engine

    async def aclose(self) -> None:
        """Let transactions in flight end, then dispose of the connection pool; safe to call twice."""
        self._closed = True
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        """Apply `ops` in one transaction, or one by one if that fails on a bad row.

        The transaction is shielded from cancellation: a worker that stops mid-batch lets it commit or
        roll back in the background (its batch is redelivered and re-applied idempotently) instead of
        leaving a connection inside an open transaction that holds the database's locks.
        """
        task = asyncio.ensure_future(self._apply(ops))
        self._in_flight.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Future[list[Outcome]]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too: nobody awaits it when its batch was cancelled

    async def _apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        engine = self._engine
        if engine is None:
            raise RuntimeError(f"{self!r} is not open")
        if not ops:
            return []
        async with self._write_lock():
            ops, refused = await self._resolve_unique(engine, ops)
            outcomes, plan = self._plan(ops, refused)
            if not plan:
                return outcomes
            try:
                async with engine.connect() as conn:
                    try:
                        async with conn.begin():
                            await self._execute(conn, plan)
                        return outcomes
                    except Exception as exc:
                        error = self._error(exc)
                        if not isinstance(error, PermanentError):
                            raise
                        logger.warning(
                            "event=sql_batch_rejected target=%s ops=%d code=%s: applying one by one",
                            self.name,
                            len(ops),
                            error.code,
                        )
                    return await self._one_by_one(conn, ops, refused)
            except Exception as exc:
                error = self._error(exc)
                if error is None:
                    raise
                if all(isinstance(outcome, Applied) for outcome in outcomes):
                    raise error from exc
                return [outcome if isinstance(outcome, ConnectorError) else error for outcome in outcomes]

    async def _one_by_one(
        self, conn: AsyncConnection, ops: Sequence[Operation], refused: Mapping[int, PermanentError]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for i, op in enumerate(ops):
            if i in refused:
                outcomes.append(refused[i])
                continue
            (outcome,), plan = self._plan([op])
            if plan:
                try:
                    async with conn.begin():
                        await self._execute(conn, plan)
                except Exception as exc:
                    error = self._error(exc)
                    if error is None:
                        raise
                    outcome = error
            outcomes.append(outcome)
        return outcomes

    def _plan(
        self, ops: Sequence[Operation], refused: Mapping[int, PermanentError] | None = None
    ) -> tuple[list[Outcome], _Plan]:
        """Reduce `ops` to their net effect per key, in order, and the outcome of each if that applies.
        The operations in `refused` (by index) are not applied: their outcome is that error."""
        deactivate = self.settings.on_disable == "deactivate"
        plan = _Plan()
        outcomes: list[Outcome] = []
        for i, op in enumerate(ops):
            if refused and i in refused:
                outcomes.append(refused[i])
                continue
            try:
                key = self._key(op)
                if op.action in ("create", "update"):
                    # dict assignment keeps the key's first position; the value is the last op's row
                    plan.upserts[key] = self._row(op, key)
                    plan.ends.pop(key, None)
                elif op.action == "disable" and deactivate:
                    plan.ends[key] = "deactivate"
                else:
                    plan.upserts.pop(key, None)
                    plan.ends[key] = "delete"
            except PermanentError as error:
                outcomes.append(error)
            else:
                outcomes.append(Applied(target_id=str(key)))
        return outcomes, plan

    async def _resolve_unique(
        self, engine: AsyncEngine, ops: Sequence[Operation]
    ) -> tuple[Sequence[Operation], dict[int, PermanentError]]:
        """Replace each SelectUniqueValue attribute (`{"$unique": [candidates]}`) by the first candidate
        that no other row holds in its column, nor another operation of this batch took.

        Runs under the write lock, so one worker's batches never race each other on SQLite; across
        PostgreSQL workers a UNIQUE constraint on the column turns a lost race into a permanent error.
        """
        if not any(_may_be_unique(v) for op in ops for v in op.attributes.values()):
            return ops, {}
        table = self._table
        assert table is not None
        key_column = table.c[self.settings.key_column]
        taken_in_batch: dict[str, set[Any]] = {}
        resolved: list[Operation] = []
        refused: dict[int, PermanentError] = {}
        async with engine.connect() as conn:
            for i, op in enumerate(ops):
                attributes = dict(op.attributes)
                try:
                    for attribute, value in op.attributes.items():
                        candidates = unique_candidates(value)
                        if candidates is None:
                            continue
                        column = self._column_of(attribute)
                        key = str(self._key(op))
                        claimed = taken_in_batch.setdefault(column, set())
                        for candidate in candidates:
                            if candidate in claimed:
                                continue
                            query = sa.select(key_column).where(table.c[column] == candidate).limit(1)
                            holder = (await conn.execute(query)).scalar()
                            if holder is None or str(holder) == key:
                                attributes[attribute] = candidate
                                claimed.add(candidate)
                                break
                        else:
                            raise PermanentError(
                                f"all unique candidates taken for {attribute!r}: {', '.join(candidates)}",
                                code="unique",
                            )
                except PermanentError as error:
                    refused[i] = error
                resolved.append(dataclasses.replace(op, attributes=attributes))
        return resolved, refused

    def _column_of(self, attribute: str) -> str:
        target = self._targets.get(attribute)
        if target is None:
            raise PermanentError(f"attribute {attribute!r} has no column in table {self.settings.table!r}")
        return target[0]

    def _key(self, op: Operation) -> Any:
        value = op.match_value if op.match_value is not None else op.target_id
        if value is None:
            value = next((op.attributes[a] for a in self._key_attributes if a in op.attributes), None)
        if value is None or value == "":
            raise PermanentError(
                f"operation {op.op_id} has no value for key column {self.settings.key_column!r}: "
                "no match value, no target id, and no attribute mapped to that column"
            )
        if isinstance(value, list | dict | set | tuple):
            raise PermanentError(f"operation {op.op_id}: the key value must be a single value")
        return self._key_convert(value) if self._key_convert else value

    def _row(self, op: Operation, key: Any) -> dict[str, Any]:
        key_column, active_column = self.settings.key_column, self.settings.active_column
        row: dict[str, Any] = {key_column: key}
        for attribute, value in op.attributes.items():
            target = self._targets.get(attribute)
            if target is None:
                if self._strict:
                    raise PermanentError(
                        f"attribute {attribute!r} has no column in table {self.settings.table!r}; "
                        "add a column of that name, or a columns mapping in the target's settings"
                    )
                continue
            column, convert = target
            if column != key_column and column != active_column:
                row[column] = convert(value) if convert else value
        if active_column:
            row[active_column] = True
        return row

    async def _execute(self, conn: AsyncConnection, plan: _Plan) -> None:
        table = self._table
        assert table is not None
        key_column = self.settings.key_column
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in plan.upserts.values():
            shapes.setdefault(tuple(row), []).append(row)
        for shape, rows in shapes.items():
            # One lock order for every batch, so two PostgreSQL workers never deadlock on each other.
            rows.sort(key=lambda row: str(row[key_column]))
            bulk = self._bulk_upsert(conn.dialect, shape)
            if bulk is None:
                await conn.execute(self._upsert(shape), rows)
            else:
                values = _values_of(bulk.keys)
                await bulk.execute(conn, [values(row) for row in rows])
        by_end: dict[str, list[dict[str, Any]]] = {}
        for key in sorted(plan.ends, key=str):
            by_end.setdefault(plan.ends[key], []).append({_KEY_PARAM: key})
        where = table.c[key_column] == sa.bindparam(_KEY_PARAM)
        if "deactivate" in by_end:
            active = self.settings.active_column
            await conn.execute(sa.update(table).where(where).values({active: False}), by_end["deactivate"])
        if "delete" in by_end:
            await conn.execute(sa.delete(table).where(where), by_end["delete"])

    def _bulk_upsert(self, dialect: sa.Dialect, shape: tuple[str, ...]) -> BulkStatement | None:
        """On SQLite, the upsert of `shape` as many rows to a statement (see `common.peers.sql_bulk`): one
        row to a statement, the driver thread waits for the GIL per row beside a busy event loop.
        None elsewhere, or where the compiler renamed a parameter (a column name it must escape)."""
        if shape not in self._bulk_upserts:
            bulk = None
            if dialect.name == "sqlite":
                try:
                    bulk = BulkStatement.compile(self._upsert(shape), dialect, shape, processed=True)
                except NotBulkable:
                    bulk = None
            self._bulk_upserts[shape] = bulk
        return self._bulk_upserts[shape]

    def _upsert(self, shape: tuple[str, ...]) -> sa.Insert:
        statement = self._upsert_statements.get(shape)
        if statement is None:
            key_column = self.settings.key_column
            insert = self._insert(self._table)
            changes = {column: insert.excluded[column] for column in shape if column != key_column}
            if changes:
                statement = insert.on_conflict_do_update(index_elements=[key_column], set_=changes)
            else:
                statement = insert.on_conflict_do_nothing(index_elements=[key_column])
            self._upsert_statements[shape] = statement
        return statement

    def _write_lock(self) -> AbstractAsyncContextManager[Any]:
        return self._lock if self._lock is not None else nullcontext()

    async def _create_table(self, engine: AsyncEngine) -> None:
        s = self.settings
        assert s.columns is not None
        columns = [sa.Column(s.key_column, sa.Text, primary_key=True)]
        columns += [sa.Column(c, sa.Text) for c in dict.fromkeys(s.columns.values()) if c != s.key_column]
        if s.active_column:
            columns.append(sa.Column(s.active_column, sa.Boolean, server_default=sa.true()))
        metadata = sa.MetaData()
        sa.Table(s.table, metadata, *columns)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
        except sa_exc.DBAPIError:
            # Two workers starting at once both try; the loser finds the table made by the other.
            async with engine.connect() as conn:
                exists = await conn.run_sync(lambda sync: sa.inspect(sync).has_table(s.table))
            if not exists:
                raise

    def _reflect(self, conn: sa.Connection) -> sa.Table:
        try:
            return sa.Table(self.settings.table, sa.MetaData(), autoload_with=conn)
        except sa_exc.NoSuchTableError:
            raise ConfigError(
                self._at("table"),
                f"table {self.settings.table!r} does not exist in {self.settings.safe_url}",
                "create it, or set create_table: true with a columns mapping",
            ) from None

    def _check(self, table: sa.Table) -> None:
        """Check the reflected table against the settings, and prepare the attribute -> column map."""
        s = self.settings
        names = [column.name for column in table.columns]

        def missing(key: str, column: str) -> ConfigError:
            close = difflib.get_close_matches(column, names, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"the table has: {', '.join(names)}"
            return ConfigError(self._at(key), f"table {s.table!r} has no column {column!r}", fix)

        if s.key_column not in table.c:
            raise missing("key_column", s.key_column)
        if not _is_unique(table, s.key_column):
            raise ConfigError(
                self._at("key_column"),
                f"column {s.key_column!r} is neither the primary key nor unique, so rows cannot be matched",
                f"add a primary key or a unique constraint on {s.table}({s.key_column})",
            )
        if s.active_column and s.active_column not in table.c:
            raise missing("active_column", s.active_column)
        mapping = s.columns if s.columns is not None else {name: name for name in names}
        for attribute, column in mapping.items():
            if column not in table.c:
                raise missing(f"columns.{attribute}", column)
            self._targets[attribute] = (column, _converter(table.c[column].type))
        self._key_attributes = tuple(a for a, c in mapping.items() if c == s.key_column)
        self._key_convert = _converter(table.c[s.key_column].type)

    def _at(self, key: str) -> str:
        return f"{self.settings.path}.{key}" if self.settings.path else f"target {self.name!r}: {key}"

    def _error(self, exc: BaseException) -> ConnectorError | None:
        """The connector error that `exc` amounts to, or None if it is not a database error."""
        error = _classify(exc)
        if error is None:
            return None
        password = self.settings.url.password
        if password and password in error.message:
            text = error.message.replace(str(password), "***")
            error = type(error)(text, code=error.code)
        return error


def _is_unique(table: sa.Table, column: str) -> bool:
    if [c.name for c in table.primary_key.columns] == [column]:
        return True
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and [c.name for c in constraint.columns] == [column]:
            return True
    return any(index.unique and [c.name for c in index.columns] == [column] for index in table.indexes)


def _converter(type_: sa.types.TypeEngine[Any]) -> Callable[[Any], Any] | None:
    """Bring a value to the column's Python type where a driver will not (asyncpg is strict)."""
    try:
        python_type = type_.python_type
    except NotImplementedError:
        return None
    if python_type is str:
        return _to_text
    if python_type is int:
        return _to_int
    return None


def _values_of(keys: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values in the order of `keys`, as a tuple even for one key."""
    if len(keys) == 1:
        (key,) = keys
        return lambda row: (row[key],)
    return itemgetter(*keys)


def _may_be_unique(value: Any) -> bool:
    return type(value) is dict and unique_candidates(value) is not None


def _to_text(value: Any) -> Any:
    if type(value) is str:  # nearly every value: spare it the checks below
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, list | dict | set | tuple):
        raise PermanentError(f"a {type(value).__name__} cannot be written to a text column")
    return value


def _to_int(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value  # the database will say what is wrong with it
    return value


def _classify(exc: BaseException) -> ConnectorError | None:
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, sa_exc.TimeoutError):
        return TransientError(f"no database connection became free in time: {exc}")
    invalidated = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    orig: BaseException = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig else exc
    cause = orig.__cause__
    sqlstate = getattr(orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    # asyncpg's own exception holds the bare message; its DETAIL (the failing row) stays out of it.
    message = getattr(cause, "message", None) or getattr(orig, "message", None) or str(orig) or repr(orig)
    code = sqlstate or sqlite_name
    if invalidated:
        return TransientError(message, code=code)
    if isinstance(sqlstate, str) and sqlstate:
        transient = sqlstate[:2] in _PG_TRANSIENT_CLASSES or sqlstate in _PG_TRANSIENT_CODES
        return (TransientError if transient else PermanentError)(message, code=sqlstate)
    if isinstance(sqlite_name, str) and sqlite_name:
        transient = sqlite_name.startswith(_SQLITE_TRANSIENT)
        return (TransientError if transient else PermanentError)(message, code=sqlite_name)
    permanent = (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.ProgrammingError, sa_exc.NotSupportedError)
    if isinstance(exc, permanent):
        return PermanentError(message, code=code)
    if isinstance(exc, sa_exc.DBAPIError | sqlite3.Error):
        return TransientError(message, code=code)
    if isinstance(exc, sa_exc.StatementError):
        return PermanentError(message)  # a value the column type cannot bind
    if isinstance(exc, OSError | TimeoutError) or type(exc).__module__.startswith("asyncpg"):
        return TransientError(f"cannot reach the database: {message}")
    return None
