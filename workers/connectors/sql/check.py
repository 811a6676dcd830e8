"""A SQL target checked against its database without writing: `roster validate --connect`.

It connects, reads the table's definition and checks it as the connector does when it opens (the key
column, unique; the active column; each column of `columns:`), and that every attribute the jobs map
has a column to go to. A table that is not there yet is fine when `create_table: true` makes it.
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


async def check_sql_target(
    settings: SqlSettings, attributes: Mapping[str, str], *, matched: Collection[str] = ()
) -> list[ConfigError]:
    """The problems of the table `settings` name; `attributes` maps each attribute a job sends to the
    path of the mapping that sends it (`jobs[0].mappings[3].target`); `matched` are those whose values
    go to the key column as the match value."""
    path = settings.path

    def at(key: str) -> str:
        return join(path, key)

    database = settings.url.database
    if settings.dialect == "sqlite" and database and not Path(database).exists():
        if settings.create_table:
            return _unmapped(settings, attributes, matched, names=None)
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
            return _unmapped(settings, attributes, matched, names=None)
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
    return [*problems, *_unmapped(settings, attributes, matched, names=[c.name for c in table.columns])]


def _unmapped(
    settings: SqlSettings, attributes: Mapping[str, str], matched: Collection[str], *, names: list[str] | None
) -> list[ConfigError]:
    """Attributes the jobs send that no column takes: with `columns:`, those it leaves out (their values
    would be dropped); without, those the table has no column of that name for (`names`; None: the
    table is still to be created, so nothing to say)."""
    problems = []
    for attribute, where in attributes.items():
        if settings.columns is not None:
            if attribute not in settings.columns and attribute not in matched:
                fix = (
                    f"add `{attribute}: <column>` to {join(settings.path, 'columns')}, or remove the mapping"
                )
                problem = (
                    f"{attribute!r} has no column in {join(settings.path, 'columns')}: its value is dropped"
                )
                problems.append(ConfigError(where, problem, fix))
        elif names is not None and attribute not in names:
            fix = f"add the column, or a columns mapping to {settings.path or 'the target'}"
            problems.append(ConfigError(where, f"table {settings.table!r} has no column {attribute!r}", fix))
    return problems


def _reflect(conn: sa.Connection, name: str) -> sa.Table | None:
    try:
        return sa.Table(name, sa.MetaData(), autoload_with=conn)
    except sa_exc.NoSuchTableError:
        return None
