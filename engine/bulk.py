"""Statements of the state store that write many rows, sent `ROWS` rows to a statement on SQLite.

aiosqlite runs each call in a thread of its own, and `executemany` there lets go of the GIL and takes it
back for every row. While the event loop thread is busy (it plans the next objects as results come
in), each take waits for the interpreter's switch interval: beside a busy thread, 100,000 rows took
1.5 to 60 seconds instead of 0.5 to 1, and the result writer fell behind the workers. A statement
of `ROWS` rows takes the GIL once for all of them, so the rows go through one `executemany` of such
statements, and the few left over through one of single rows. asyncpg has no thread; PostgreSQL keeps
one row to a statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from queues.errors import StateError

ROWS = 64  # 64 rows of 15 columns (the log's) stay below SQLite's limit of 999 parameters before 3.32

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class BulkStatement:
    """Driver SQL with positional parameters for one row and, for an INSERT on SQLite, for `ROWS`."""

    one_row: str
    many_rows: str = ""

    @classmethod
    def compile(cls, statement: Any, dialect: sa.Dialect, keys: tuple[str, ...]) -> BulkStatement:
        """Compile `statement` for rows given as tuples in the order of `keys`."""
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        if order != keys:
            raise StateError(f"unexpected parameter order {order} for {keys}")
        sql = compiled.string
        if dialect.name != "sqlite" or not isinstance(statement, sa.Insert):
            return cls(sql)
        row = "(" + ", ".join("?" * len(keys)) + ")"
        if sql.count(row) != 1:
            raise StateError(f"no single row of parameters {row} in {sql!r}")
        return cls(sql, sql.replace(row, ", ".join([row] * ROWS)))

    async def execute(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        """Write `rows`, in order, with one `executemany` of `ROWS`-row statements and one of the rest."""
        whole = len(rows) - len(rows) % ROWS if self.many_rows else 0
        if whole:
            chunks = (rows[i : i + ROWS] for i in range(0, whole, ROWS))
            await conn.exec_driver_sql(self.many_rows, [tuple(chain.from_iterable(c)) for c in chunks])
        if whole < len(rows):
            await conn.exec_driver_sql(self.one_row, list(rows[whole:]))
