"""Statements that write many rows, sent many rows to a statement on SQLite (the state store's, and
the SQL connector's upserts).

aiosqlite runs each call in a thread of its own, and `executemany` there lets go of the GIL and takes it
back for every statement. While the event loop thread is busy (it plans the next objects as results
come in), each take waits for the interpreter's switch interval: beside a busy thread, 100,000 rows
one to a statement took 1.5 to 60 seconds instead of 0.5 to 1, and the writer fell behind the
workers. So an INSERT on SQLite carries up to `MAX_ROWS` rows (as many as SQLite's limit of
parameters allows): full statements go through one `executemany`, the rest as one statement of
exactly that many rows. asyncpg has no thread; PostgreSQL keeps one row to a statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

MAX_ROWS = 500
"""Rows to one INSERT at most: past a few hundred, a larger statement saves nothing measurable."""

SQLITE_MAX_PARAMETERS = 32_766
"""SQLite's default limit of parameters to a statement since 3.32 (999 before)."""

Row = tuple[Any, ...]


class NotBulkable(Exception):
    """A statement whose compiled form is not the one these writes rely on (its parameters, or its
    one row of them, are not where expected): the caller writes it the ordinary way instead."""


Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class BulkStatement:
    """Driver SQL with positional parameters, in the order of `keys`, for one row and, for an INSERT
    on SQLite, the template that repeats the row's parameters for several rows at once (`rows` at
    most). `processors` convert values as SQLAlchemy would (a bool for SQLite), where any must."""

    one_row: str
    keys: tuple[str, ...]
    row_params: str = ""
    rows: int = 1
    processors: tuple[Processor | None, ...] | None = None
    _by_count: dict[int, str] = field(default_factory=dict, compare=False)

    @classmethod
    def compile(
        cls, statement: Any, dialect: sa.Dialect, keys: tuple[str, ...], *, processed: bool = False
    ) -> BulkStatement:
        """Compile `statement` for rows of the values of `keys`. Their order in a row is the returned
        statement's `keys`: the compiler's. With `processed`, an INSERT's values go through the bind
        processors of their columns' types; without, they must already be what the driver takes."""
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        if sorted(order) != sorted(keys):
            raise NotBulkable(f"unexpected parameters {order} for {keys}")
        sql = compiled.string
        processors = None
        if processed and isinstance(statement, sa.Insert):
            found = tuple(
                statement.table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in order
            )
            processors = found if any(found) else None
        if dialect.name != "sqlite" or not isinstance(statement, sa.Insert):
            return cls(sql, order, processors=processors)
        row = "(" + ", ".join("?" * len(keys)) + ")"
        if sql.count(row) != 1:
            raise NotBulkable(f"no single row of parameters {row} in {sql!r}")
        version = dialect.server_version_info or (0,)
        limit = SQLITE_MAX_PARAMETERS if version >= (3, 32) else 999
        return cls(sql, order, row, max(1, min(MAX_ROWS, limit // len(keys))), processors)

    def _for(self, count: int) -> str:
        """The statement for `count` rows (kept: a cycle sends few distinct counts)."""
        sql = self._by_count.get(count)
        if sql is None:
            sql = self.one_row.replace(self.row_params, ", ".join([self.row_params] * count))
            self._by_count[count] = sql
        return sql

    async def execute(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        """Write `rows`, in order: one `executemany` of full statements and one statement of the rest."""
        for sql, parameters in self.calls(rows):
            await conn.exec_driver_sql(sql, parameters)

    def execute_blocking(self, conn: sa.Connection, rows: Sequence[Row]) -> None:
        """`execute` on a blocking connection (`engine.store.blocking`)."""
        for sql, parameters in self.calls(rows):
            conn.exec_driver_sql(sql, parameters)

    def calls(self, rows: Sequence[Row]) -> list[tuple[str, Any]]:
        """The driver calls that write `rows`: (SQL, its parameters, or a list of them for an
        `executemany`)."""
        if self.processors is not None:
            rows = [self._process(row) for row in rows]
        if not rows:
            return []
        if self.rows == 1:
            return [(self.one_row, list(rows))]
        size = self.rows
        whole = len(rows) - len(rows) % size
        calls: list[tuple[str, Any]] = []
        if whole:
            chunks = (rows[i : i + size] for i in range(0, whole, size))
            calls.append((self._for(size), [tuple(chain.from_iterable(c)) for c in chunks]))
        rest = len(rows) - whole
        if rest == 1:
            calls.append((self.one_row, rows[whole]))
        elif rest:
            calls.append((self._for(rest), tuple(chain.from_iterable(rows[whole:]))))
        return calls

    def _process(self, row: Row) -> Row:
        assert self.processors is not None
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(self.processors, row, strict=True)
        )
