"""A SQL target checked against its database without writing: `roster validate --connect`.

It connects, reads the table's definition and checks it as the connector does when it opens (the key
column, unique; the active column; each column of `columns:`), and that every attribute the jobs map
has a column to go to. A table that is not there yet is fine when `create_table: true` makes it.
`unmapped_attributes` needs no connection: the attributes a `columns:` mapping leaves out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import create_async_engine

from common.config.problems import Reported, collecting
from common.config.validation import join
from common.errors import ConfigError
from workers.connectors.sql.errors import connector_error
from workers.connectors.sql.rows import RowMap
from workers.connectors.sql.settings import SqlSettings


async def check_sql_target(settings: SqlSettings, attributes: Mapping[str, str]) -> list[ConfigError]:
    """The problems of the table `settings` name; `attributes` maps each attribute a job sends to the
    path of the mapping that sends it (`jobs[0].mappings[3].target`)."""
    path = settings.path

    def at(key: str) -> str:
        return join(path, key)

    database = settings.url.database or ""  # never empty for SQLite: the settings refuse that
    if settings.dialect == "sqlite" and not database.startswith("file:") and not Path(database).exists():
        if settings.create_table:
            return []
        return [ConfigError(at("url"), f"no database file at {database}", "check the path in the URL")]
    engine = create_async_engine(settings.url, pool_size=1, max_overflow=0, hide_parameters=True)
    try:
        async with engine.connect() as conn:
            table = await conn.run_sync(_reflect, settings.table)
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        error = connector_error(exc, password=settings.url.password)
        said = error.message if error is not None else type(exc).__name__
        return [ConfigError(at("url"), f"{settings.safe_url} cannot be reached: {said}", "check the URL")]
    finally:
        await engine.dispose()
    if table is None:
        if settings.create_table:
            return []
        problem = f"table {settings.table!r} does not exist in {settings.safe_url}"
        return [
            ConfigError(at("table"), problem, "create it, or set create_table: true with a columns mapping")
        ]
    with collecting() as problems:
        try:
            RowMap.of(table, settings, at)
        except Reported:
            pass
        except ConfigError as exc:
            problems.append(exc)
    if settings.columns is None:  # each attribute goes to the column of its name
        names = {column.name for column in table.columns}
        fix = f"add the column, or a columns mapping to {path or 'the target'}"
        problems += [
            ConfigError(where, f"table {settings.table!r} has no column {attribute!r}", fix)
            for attribute, where in attributes.items()
            if attribute not in names
        ]
    return problems


def unmapped_attributes(
    settings: SqlSettings, attributes: Mapping[str, str], matched: Collection[str]
) -> list[ConfigError]:
    """With a `columns:` mapping, the attributes the jobs send that it leaves out: their values would be
    dropped (the `matched` ones still go to the key column as the match value). Needs no connection."""
    if settings.columns is None:
        return []
    columns = join(settings.path, "columns")
    return [
        ConfigError(
            where,
            f"{attribute!r} has no column in {columns}: its value is dropped",
            f"add `{attribute}: <column>` to {columns}, or remove the mapping",
        )
        for attribute, where in attributes.items()
        if attribute not in settings.columns and attribute not in matched
    ]


def _reflect(conn: sa.Connection, name: str) -> sa.Table | None:
    try:
        return sa.Table(name, sa.MetaData(), autoload_with=conn)
    except sa_exc.NoSuchTableError:
        return None
