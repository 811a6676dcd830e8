"""The SQL connector passes the conformance kit against SQLite and PostgreSQL, read back with selects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from roster.testing import Profile, Refusal, Sample
from roster.testing.plugin import ConnectorConformance
from tests.databases import private_database

COLUMNS = {"userName": "user_name", "displayName": "display_name", "email": "email", "note": "note"}
MAPPED = {"userName": "user_name", "displayName": "display_name", "email": "email"}
TABLE = """CREATE TABLE people (
    user_name TEXT PRIMARY KEY,
    display_name TEXT,
    email TEXT CHECK (email NOT LIKE '%refuse-me%'),
    note TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE
)"""


class SqlProbe:
    """Reads the table with its own connection: a row per user, keyed by the key column."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        columns = ", ".join([*COLUMNS.values(), "active"])
        async with self.engine.connect() as conn:
            query = sa.text(f"SELECT {columns} FROM people WHERE user_name = :key")
            row = (await conn.execute(query, {"key": target_id})).mappings().first()
        if row is None:
            return None
        found = {name: row[column] for name, column in COLUMNS.items()}
        return {**found, "active": bool(row["active"])}

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        async with self.engine.connect() as conn:
            query = sa.text(f"SELECT user_name FROM people WHERE {COLUMNS[attribute]} = :value")
            return [str(key) for key in (await conn.execute(query, {"value": value})).scalars()]

    async def plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        async with self.engine.begin() as conn:
            names = [COLUMNS[name] for name in attributes]
            values = ", ".join(f":{column}" for column in names)
            query = sa.text(f"INSERT INTO people ({', '.join(names)}) VALUES ({values})")
            await conn.execute(query, {COLUMNS[name]: value for name, value in attributes.items()})
        return str(attributes["userName"])

    async def set(self, object_type: str, target_id: str, attributes: Mapping[str, Any]) -> None:
        async with self.engine.begin() as conn:
            for name, value in attributes.items():
                query = sa.text(f"UPDATE people SET {COLUMNS[name]} = :value WHERE user_name = :key")
                await conn.execute(query, {"value": value, "key": target_id})


def sql_profile(refused_message: str) -> Profile:
    user = Sample(
        match="userName",
        attributes={"userName": "{key}", "displayName": "Ada {key}", "email": "{id}@example.org"},
        changes={"displayName": "Ada Renamed {key}"},
        disabled={"active": False},
        unmapped={"note": "set outside Roster"},
    )
    refusal = Refusal(attributes={"email": "refuse-me@example.org"}, message=refused_message)
    return Profile(samples={"user": user}, refusal=refusal, patience_s=20.0)


def sql_target(url: str) -> dict[str, Any]:
    return {
        "name": "kit-sql",
        "type": "sql",
        "url": url,
        "table": "people",
        "key_column": "user_name",
        "columns": MAPPED,
        "active_column": "active",
    }


async def made_table(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(sa.text(TABLE))
    return engine


class TestSqlite(ConnectorConformance):
    object_types = ("user",)
    not_applicable: ClassVar[Mapping[str, str]] = {
        "groups:members": "the SQL target writes rows of one table: it keeps no groups",
        "error:transient-refused": "a SQLite file has no network address to point at a dead peer",
        "error:transient-stalled": "a SQLite file has no network address to point at a dead peer",
    }

    @pytest.fixture
    def database(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'target.db'}"

    @pytest.fixture
    def target_yaml(self, database: str) -> dict[str, Any]:
        return sql_target(database)

    @pytest.fixture
    async def probe(self, database: str) -> AsyncIterator[SqlProbe]:
        engine = await made_table(database.replace("sqlite://", "sqlite+aiosqlite://"))
        yield SqlProbe(engine)
        await engine.dispose()

    @pytest.fixture
    def profile(self) -> Profile:
        return sql_profile("CHECK constraint failed")


@pytest.mark.postgres
class TestPostgres(ConnectorConformance):
    object_types = ("user",)
    not_applicable: ClassVar[Mapping[str, str]] = {
        "groups:members": "the SQL target writes rows of one table: it keeps no groups"
    }

    @pytest.fixture
    def database(self) -> Iterator[str]:
        with private_database("kit") as url:
            yield url

    @pytest.fixture
    def target_yaml(self, database: str) -> dict[str, Any]:
        return sql_target(database)

    @pytest.fixture
    async def probe(self, database: str) -> AsyncIterator[SqlProbe]:
        engine = await made_table(database.replace("postgresql://", "postgresql+asyncpg://"))
        yield SqlProbe(engine)
        await engine.dispose()

    @pytest.fixture
    def profile(self) -> Profile:
        return sql_profile("violates check constraint")
