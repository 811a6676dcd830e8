"""The generic SQL target: one table in SQLite or PostgreSQL, written with SQLAlchemy Core (async).

Every create and update is an upsert (`INSERT ... ON CONFLICT (key) DO UPDATE`), so a redelivered create
is harmless and a create of an existing row updates it; a disable or delete of a missing row counts as
done. The upsert sets `active_column` true (an update enables again), or false for an operation that
leaves the account disabled (`disabled`): such a row is inserted disabled, in the same statement; without
an `active_column` that operation fails. Rows are found by the key column alone, holding the operation's
first matching value (else its target id): a table has one key, so further matching attributes serve
targets that search. An update whose key value changed (a key column holding a name, renamed) first gives
the row it is linked to (its target id) the new key, so the row is renamed, not joined by a second one;
redelivered, that rename finds no old row and the upsert updates the renamed one.
A batch is applied in one transaction with one `executemany` per statement shape. When that
transaction fails with a permanent error (one row breaks a constraint), it is rolled back and the
operations are applied one by one, each in its own transaction, so only the bad one fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from common.errors import ConfigError, ConnectorError, PermanentError
from common.peers.sql_bulk import BulkStatement, NotBulkable
from common.unique import unique_candidates
from queues.contracts import Operation
from workers.connectors.base import Applied, AsyncContextConnector, Outcome
from workers.connectors.sql.errors import connector_error
from workers.connectors.sql.rows import Plan, RowMap, may_be_unique, values_of
from workers.connectors.sql.settings import SqlSettings

logger = logging.getLogger(__name__)

_KEY_PARAM: Final = "_roster_key"
_NEW_KEY_PARAM: Final = "_roster_new_key"
_LIST_PAGE: Final = 5_000  # rows per page of a listing on the wire
# asyncpg waits 60 s by default for a server that accepts the connection and then says nothing: as long as
# a worker's batch would hang. 10 s is what the SCIM and LDAP targets allow a connection by default.
_PG_CONNECT_TIMEOUT_S: Final = 10.0


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
        self._rows: RowMap | None = None
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
            options["connect_args"] = {"timeout": _PG_CONNECT_TIMEOUT_S}
        engine = create_async_engine(s.url, **options)
        try:
            async with self._write_lock():
                if s.create_table:
                    await self._create_table(engine)
                async with engine.connect() as conn:
                    table = await conn.run_sync(self._reflect)
            rows = RowMap.of(table, s, self._at)
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, ConfigError | ConnectorError):
                raise
            error = self._error(exc)
            if error is None:
                raise
            raise error from exc
        self._table = table
        self._rows = rows
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

    # -- Listing -------------------------------------------------------------------------------------

    def listing_fields(self, object_type: str, attributes: Sequence[str]) -> list[str]:
        """`attributes`, then the attribute of the key column (see `workers.connectors.base.Lister`)."""
        rows = self._opened()
        for name in attributes:
            if name not in rows.targets:
                raise PermanentError(f"attribute {name!r} has no column in table {rows.table!r} to list")
        key = rows.key_attributes[0] if rows.key_attributes else rows.key_column
        return list(dict.fromkeys([*attributes, key]))

    async def list_objects(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[list[Any]]]:
        """Every row, by one select of the key and the fields' columns, handed on in pages."""
        rows, engine, table = self._opened(), self._engine, self._table
        assert engine is not None and table is not None
        columns = [table.c[rows.key_column]]
        for name in fields:
            column = rows.targets[name][0] if name in rows.targets else rows.key_column
            columns.append(table.c[column])
        try:
            async with engine.connect() as conn:
                found = (await conn.execute(sa.select(*columns))).all()
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            error = self._error(exc)
            if error is None:
                raise
            raise error from None
        # Columns of text, numbers and booleans (most) are handed on as the driver gave them; only the
        # others (dates, decimals) are converted value by value, and the key to text if it is not.
        converted = [i for i, column in enumerate(columns) if i == 0 or not _plain_type(column.type)]
        for start in range(0, len(found), _LIST_PAGE):
            page = [list(row) for row in found[start : start + _LIST_PAGE]]
            for i in converted:
                for values in page:
                    values[i] = _listed(values[i]) if i else str(values[i])
            yield page

    def _opened(self) -> RowMap:
        if self._rows is None or self._engine is None:
            raise RuntimeError(f"{self!r} is not open")
        return self._rows

    def _settled(self, task: asyncio.Future[list[Outcome]]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too: nobody awaits it when its batch was cancelled

    async def _apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        engine, rows = self._engine, self._rows
        if engine is None or rows is None:
            raise RuntimeError(f"{self!r} is not open")
        if not ops:
            return []
        async with self._write_lock():
            ops, refused = await self._resolve_unique(engine, rows, ops)
            outcomes, plan = rows.plan(ops, refused)
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
                    return await self._one_by_one(conn, rows, ops, refused)
            except Exception as exc:
                error = self._error(exc)
                if error is None:
                    raise
                if all(isinstance(outcome, Applied) for outcome in outcomes):
                    raise error from exc
                return [outcome if isinstance(outcome, ConnectorError) else error for outcome in outcomes]

    async def _one_by_one(
        self,
        conn: AsyncConnection,
        rows: RowMap,
        ops: Sequence[Operation],
        refused: Mapping[int, PermanentError],
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for i, op in enumerate(ops):
            if i in refused:
                outcomes.append(refused[i])
                continue
            (outcome,), plan = rows.plan([op])
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

    async def _resolve_unique(
        self, engine: AsyncEngine, rows: RowMap, ops: Sequence[Operation]
    ) -> tuple[Sequence[Operation], dict[int, PermanentError]]:
        """Replace each SelectUniqueValue attribute (`{"$unique": [candidates]}`) by the first candidate
        that no other row holds in its column, nor another operation of this batch took.

        Runs under the write lock, so one worker's batches never race each other on SQLite; across
        PostgreSQL workers a UNIQUE constraint on the column turns a lost race into a permanent error.
        """
        if not any(may_be_unique(v) for op in ops for v in op.attributes.values()):
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
                        column = rows.column_of(attribute)
                        key = str(rows.key(op))
                        claimed = taken_in_batch.setdefault(column, set())
                        for candidate in candidates:
                            if candidate in claimed:
                                continue
                            query = sa.select(key_column).where(table.c[column] == candidate).limit(1)
                            holder = (await conn.execute(query)).scalar()
                            if holder is None or str(holder) in (key, op.target_id):
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

    async def _execute(self, conn: AsyncConnection, plan: Plan) -> None:
        table = self._table
        assert table is not None
        key_column = self.settings.key_column
        where = table.c[key_column] == sa.bindparam(_KEY_PARAM)
        if plan.renames:
            # A row already holding the new key makes this fail on the key's uniqueness: two rows
            # would be one object, which matching cannot settle. A redelivered rename finds no old row.
            renames = [
                {_KEY_PARAM: old, _NEW_KEY_PARAM: new}
                for old, new in sorted(plan.renames.items(), key=lambda pair: str(pair[0]))
            ]
            rename = sa.update(table).where(where).values({key_column: sa.bindparam(_NEW_KEY_PARAM)})
            await conn.execute(rename, renames)
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
                values = values_of(bulk.keys)
                await bulk.execute(conn, [values(row) for row in rows])
        by_end: dict[str, list[dict[str, Any]]] = {}
        for key in sorted(plan.ends, key=str):
            by_end.setdefault(plan.ends[key], []).append({_KEY_PARAM: key})
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
            table = self._table
            assert table is not None
            key_column = self.settings.key_column
            insert = self._insert(table)
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
        columns: list[sa.Column[Any]] = [sa.Column(s.key_column, sa.Text, primary_key=True)]
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

    def _at(self, key: str) -> str:
        return f"{self.settings.path}.{key}" if self.settings.path else f"target {self.name!r}: {key}"

    def _error(self, exc: BaseException) -> ConnectorError | None:
        return connector_error(exc, password=self.settings.url.password)


def _plain_type(column_type: sa.types.TypeEngine[Any]) -> bool:
    """Whether the driver gives a column's values as text, a number or a boolean (None is fine too)."""
    try:
        return column_type.python_type in (str, int, float, bool)
    except NotImplementedError:
        return False


def _listed(value: Any) -> Any:
    """A column's value as a listing carries it: text, a number, true/false or None; else its text."""
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)
