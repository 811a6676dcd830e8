"""A source that reads users or groups from a SQL table, view or query, with SQLAlchemy.

A read is one SELECT streamed through a server-side cursor a batch at a time, so a table of any size
streams with flat memory (engine/sources/sql_link.py says which drivers run how). Each row is an
object: its id is `id_column` as text, its attributes the columns read (`columns:`, or all of them),
with values as the other sources give them (engine/sources/sql_values.py). A row whose id is NULL,
empty or repeated is a problem at its position in the read and skipped, so the read is incomplete and
deprovisions nothing. Ids are checked for repeats with a set of those seen, which grows with the
table; a table whose `id_column` is its primary key or has a unique constraint or index needs no set.

**Incremental reads.** With `watermark_column:` (a timestamp, a date, or a number that grows with
each change, such as a rowversion or a sequence a trigger sets), cycles read only the rows changed
since the last read, `WHERE watermark_column >= :last`, with a full import every `full_import_every`,
which is when deleted rows are seen (an incremental read does not see what it does not read). The
watermark is the highest value a read met. `>=` and not `>`: rows that share the last value (two
updates in the same second, or a second row given the same timestamp and committed after the read)
are read again by the next read, and the hash diff finds nothing to do for those that were seen
already, where `>` would miss the late one for good. A row committed later than rows with higher
values (a transaction that took its timestamp when it began, and committed after a read met a later
one) is older than the watermark when it lands; `watermark_overlap:` starts each read that much
earlier (a duration for a timestamp, units for a number), which covers transactions shorter than it.
Rows whose watermark column is NULL are seen by full imports only (a read notes how many).

Settings (beside `type: sql`)::

    url: postgresql://reader@db.example.org/hr   # required; any SQLAlchemy URL
    password: ${HR_DB_PASSWORD}                  # or in the URL; never shown
    table: people                                # or query:
    schema: hr                                   # with table:
    query: SELECT p.*, d.name AS department FROM people p JOIN departments d ON d.id = p.department_id
    id_column: employee_id                       # required
    columns: [employee_id, given_name, family_name, email, department]   # default: all
    watermark_column: updated_at                 # incremental reads between full imports
    watermark_overlap: 5m                        # or a number (units of an integer column)
    full_import_every: 1d
    connect_timeout_s: 10

A `query:` is a SELECT (or WITH) run as a subquery, so its columns may be filtered and picked. Like any
SQLAlchemy text, a colon before a name (`:name`) is a parameter: write `\\:` for a colon in a literal.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from common.config.validation import as_list, check_keys, join, number, positive, string
from common.errors import ConfigError, SourceError
from engine.core.schedule import parse_duration
from engine.core.values import flaw
from engine.model import SourceObject
from engine.sources.base import ProblemLog
from engine.sources.sql_link import FAILURES, Link, parse_url, safe_url, said
from engine.sources.sql_values import PLAIN, Mark, back_off, convert, decode_mark, encode_mark

__all__ = ["SqlSource", "SqlSourceSettings", "parse_sql_source"]

_KEYS: Final = (
    "type",
    "url",
    "password",
    "table",
    "schema",
    "query",
    "id_column",
    "columns",
    "watermark_column",
    "watermark_overlap",
    "full_import_every",
    "connect_timeout_s",
)
_SUBQUERY: Final = "roster_source"
_NAMES_SHOWN: Final = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlSourceSettings:
    """A validated SQL source; `url` names its driver and holds the password, which its repr hides."""

    url: URL
    id_column: str
    table: str | None = None
    schema: str | None = None
    query: str | None = None
    columns: tuple[str, ...] = ()
    """The columns read; all of them if empty."""
    watermark_column: str | None = None
    """Reads are incremental between full imports when set."""
    watermark_overlap_s: float = 0.0
    full_import_every_s: float = 86_400.0
    """How often an incremental job still reads everything, which is how deleted rows are seen."""
    connect_timeout_s: float = 10.0

    @property
    def incremental(self) -> bool:
        return self.watermark_column is not None

    @property
    def where(self) -> str:
        """What is read, in words for messages: the table or the query."""
        if self.table is None:
            return "the source's query"
        return f"table {self.table!r}" + (f" in schema {self.schema!r}" if self.schema else "")


def parse_sql_source(path: str, raw: Mapping[str, Any], *, base_dir: Path) -> SqlSourceSettings:
    """Validate a job's SQL `source:`; errors name the key's path, the problem and the fix."""
    check_keys(path, raw, _KEYS, required=("url", "id_column"))

    def at(key: str) -> str:
        return join(path, key)

    password = raw.get("password")
    if password is not None and (not isinstance(password, str) or not password):
        # Not `string()`: its message would show the value.
        raise ConfigError(at("password"), "expected a non-empty string", "e.g. ${DB_PASSWORD}")
    url = parse_url(at("url"), raw["url"], password=password, base_dir=base_dir)
    table, query = _table_or_query(path, raw)
    columns = _names(at("columns"), raw.get("columns", []))
    watermark = string(at("watermark_column"), raw["watermark_column"]) if "watermark_column" in raw else None
    if watermark is None:
        for key in ("watermark_overlap", "full_import_every"):
            if key in raw:
                raise ConfigError(
                    at(key), "applies only with `watermark_column:`", "add `watermark_column:` or remove it"
                )
    overlap = raw.get("watermark_overlap", 0)
    return SqlSourceSettings(
        url=url,
        id_column=string(at("id_column"), raw["id_column"]),
        table=table,
        schema=string(at("schema"), raw["schema"]) if "schema" in raw else None,
        query=query,
        columns=columns,
        watermark_column=watermark,
        watermark_overlap_s=(
            parse_duration(at("watermark_overlap"), overlap)
            if isinstance(overlap, str)
            else number(at("watermark_overlap"), overlap, minimum=0)
        ),
        full_import_every_s=parse_duration(at("full_import_every"), raw.get("full_import_every", "1d")),
        connect_timeout_s=positive(at("connect_timeout_s"), raw.get("connect_timeout_s", 10.0)),
    )


def _table_or_query(path: str, raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    if ("table" in raw) == ("query" in raw):
        got = "both are given" if "table" in raw else "neither is given"
        raise ConfigError(
            join(path, "table"),
            f"a SQL source reads a `table:` or a `query:` ({got})",
            "name the table (`table: people`) or write a SELECT (`query: SELECT ...`)",
        )
    if "query" in raw:
        if "schema" in raw:
            raise ConfigError(join(path, "schema"), "applies only with `table:`", "name it in the query")
        query = string(join(path, "query"), raw["query"]).strip().rstrip(";").strip()
        if query.split(None, 1)[0].lower() not in ("select", "with"):
            raise ConfigError(
                join(path, "query"), "must be a SELECT (or WITH) query", "e.g. SELECT * FROM people"
            )
        return None, query
    return string(join(path, "table"), raw["table"]), None


def _names(path: str, raw: Any) -> tuple[str, ...]:
    names = tuple(string(join(path, i), name) for i, name in enumerate(as_list(path, raw)))
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(join(path, i), f"names {name!r} twice", "list each column once")
    return names


@dataclass(frozen=True, slots=True)
class _Shape:
    """What the database says of the table or query: its columns, and whether the id is unique."""

    columns: tuple[str, ...]
    unique_id: bool


class SqlSource(ProblemLog):
    """Streams the rows of a table or query, a batch at a time; see the module docstring."""

    def __init__(self, settings: SqlSourceSettings, *, since: str | None = None) -> None:
        super().__init__()
        self.settings = settings
        column = settings.watermark_column
        self._since: Mark | None = decode_mark(column, since) if column and since else None
        self.watermark: str | None = since if self._since is not None else None

    def __repr__(self) -> str:
        return f"SqlSource({safe_url(self.settings.url)}, {self.settings.where})"

    @property
    def full(self) -> bool:
        """Whether a read is a full import (so rows it does not see have left the source)."""
        return self._since is None

    async def batches(self, size: int) -> AsyncIterator[list[SourceObject]]:
        """Yield lists of at most `size` objects, one chunk of the cursor at a time."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self._forget_problems()
        s = self.settings
        async with Link(s.url, connect_timeout_s=s.connect_timeout_s) as link:
            shape = await self._guarded("read the columns of", link.run(self._shape))
            statement, names = self._statement(shape)
            id_index = names.index(s.id_column)
            mark_index = names.index(s.watermark_column) if s.watermark_column else None
            kept = {*s.columns, s.id_column}  # the id is an attribute too, as a file's id column is
            keep = [i for i, name in enumerate(names) if not s.columns or name in kept]
            keys = [names[i] for i in keep]
            trim = len(keep) != len(names)
            seen: set[str] | None = None if shape.unique_id else set()
            top: Any = self._since
            no_mark = 0
            position = 0
            rows = link.stream(statement, size)
            try:
                while True:
                    part = await self._guarded("read", anext(rows, None))
                    if part is None:
                        break
                    batch: list[SourceObject] = []
                    for row in part:
                        position += 1
                        if mark_index is not None:
                            mark = row[mark_index]
                            if mark is None:
                                no_mark += 1
                            elif top is None or mark > top:
                                top = mark
                        source_id = self._id(position, row[id_index], seen)
                        if source_id is None:
                            continue
                        values = [row[i] for i in keep] if trim else row
                        attributes = {
                            key: value if type(value) in PLAIN else convert(value)
                            for key, value in zip(keys, values, strict=True)
                        }
                        batch.append(SourceObject(source_id, attributes, position))
                    if top is not None and s.watermark_column:
                        self.watermark = encode_mark(s.watermark_column, top)
                    if batch:
                        yield batch
            finally:
                await rows.aclose()
        if no_mark:
            self._problem(
                position,
                f"{no_mark} row(s) have no {s.watermark_column!r} (NULL): only full imports see them",
                skipped=False,  # they were read
            )

    async def _guarded(self, doing: str, step: Any) -> Any:
        """Await a database step; a failure is a `SourceError` a person can act on, without the password."""
        try:
            return await step
        except FAILURES as exc:
            s = self.settings
            raise SourceError(f"{safe_url(s.url)}: could not {doing} {s.where}: {said(exc, s.url)}") from None

    def _id(self, position: int, raw: Any, seen: set[str] | None) -> str | None:
        """The row's id as text, or None (and a problem) when it has none that can be used."""
        column = self.settings.id_column
        if raw is None:
            self._problem(position, f"has no id: {column!r} is NULL; row skipped")
            return None
        source_id = raw if type(raw) is str else str(convert(raw))
        if not source_id or source_id.isspace():
            self._problem(position, f"has no id: {column!r} is empty; row skipped")
            return None
        if (id_flaw := flaw(source_id)) is not None:
            self._problem(position, f"has an id that holds {id_flaw}; row skipped")
            return None
        if seen is not None:
            count = len(seen)
            seen.add(source_id)
            if len(seen) == count:
                self._problem(
                    position, f"repeats the id {source_id!r} of an earlier row; the repeat is skipped"
                )
                return None
        return source_id

    # -- What is read --------------------------------------------------------------------------------

    def _shape(self, conn: Connection) -> _Shape:
        """The columns of the table (reflected) or of the query (from an empty read of it); refuse
        settings that name a column they do not have."""
        s = self.settings
        if s.table is not None:
            inspector = sa.inspect(conn)
            if not inspector.has_table(s.table, schema=s.schema):
                names = sorted(
                    inspector.get_table_names(schema=s.schema) + inspector.get_view_names(schema=s.schema)
                )
                raise SourceError(
                    f"{safe_url(s.url)}: there is no {s.where} (check the source's `table:`"
                    f"{' and `schema:`' if s.schema else ''}){_known('tables and views', s.table, names)}"
                )
            columns = tuple(c["name"] for c in inspector.get_columns(s.table, schema=s.schema))
            unique = _unique(inspector, s.table, s.schema, s.id_column)
        else:
            probe: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(self._from(())).limit(0)
            result = conn.execute(probe)
            columns = tuple(result.keys())
            result.close()
            unique = False
        for key, wanted in (
            ("id_column", (s.id_column,)),
            ("watermark_column", (s.watermark_column,) if s.watermark_column else ()),
            ("columns", s.columns),
        ):
            for name in wanted:
                if name not in columns:
                    raise SourceError(
                        f"{safe_url(s.url)}: {s.where} has no column {name!r} (check the source's `{key}:`)"
                        f"{_known('columns', name, columns)}"
                    )
        return _Shape(columns, unique)

    def _from(self, columns: Sequence[str]) -> sa.TableClause | sa.Subquery:
        s = self.settings
        if s.table is not None:
            return sa.table(s.table, *(sa.column(n) for n in columns), schema=s.schema)
        assert s.query is not None
        return sa.text(s.query).columns(*(sa.column(n) for n in columns)).subquery(_SUBQUERY)

    def _statement(self, shape: _Shape) -> tuple[sa.Select[Any], list[str]]:
        """The SELECT of one read, and the names of the columns it returns in order."""
        s = self.settings
        wanted = list(s.columns or shape.columns)
        for extra in (s.id_column, s.watermark_column):
            if extra is not None and extra not in wanted:
                wanted.append(extra)
        source = self._from(shape.columns)
        statement = sa.select(*(source.c[name] for name in wanted))
        if self._since is not None and s.watermark_column is not None:
            start = back_off(self._since, s.watermark_overlap_s)
            statement = statement.where(
                source.c[s.watermark_column] >= sa.bindparam("since", start, _bind_type(start))
            )
        return statement, wanted


def _unique(inspector: sa.Inspector, table: str, schema: str | None, column: str) -> bool:
    """Whether the database keeps `column` unique (primary key, unique constraint or index)."""
    if inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") == [column]:
        return True
    try:
        constraints = inspector.get_unique_constraints(table, schema=schema)
    except NotImplementedError:
        constraints = []
    if any(c.get("column_names") == [column] for c in constraints):
        return True
    return any(
        i.get("unique") and i.get("column_names") == [column]
        for i in inspector.get_indexes(table, schema=schema)
    )


def _bind_type(value: Mark) -> sa.types.TypeEngine[Any]:
    """The SQL type a watermark is sent as (a timestamp with a zone for an aware one, a BIGINT for any
    whole number), so that drivers that cast parameters cast it right."""
    if isinstance(value, dt.datetime):
        return sa.DateTime(timezone=value.tzinfo is not None)
    if isinstance(value, dt.date):
        return sa.Date()
    if isinstance(value, int):
        return sa.BigInteger()
    if isinstance(value, decimal.Decimal):
        return sa.Numeric()
    if isinstance(value, float):
        return sa.Float()
    if isinstance(value, bytes):
        return sa.LargeBinary()
    return sa.String()


def _known(what: str, name: str, names: Sequence[str]) -> str:
    """`; did you mean 'x'? its columns: a, b, c` for a message about a name that is not there."""
    close = difflib.get_close_matches(name, list(names), n=1)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
    return f"{guess}; its {what}: {listed}" if names else f"{guess}; it has no {what}"
