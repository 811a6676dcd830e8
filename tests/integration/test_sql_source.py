"""The SQL source on the real PostgreSQL and MariaDB: full and incremental reads (rows that share the
watermark's timestamp, committed after a read, included), rows without an id, errors that name what is
wrong and never the password, and whole cycles from a PostgreSQL table into a SQLite target."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from common.errors import SourceError
from engine.model import SourceObject
from engine.sources.registry import SourceSettings, parse_source
from tests import needs
from tests.databases import private_database
from tests.integration.pipeline import pipeline, sql_target, target_rows

SECRET = "n0t-Th3-Pa55w0rd"
T0 = dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with private_database("roster_sqlsource") as url:
        yield url


async def pg(url: str, *statements: str, args: tuple[Any, ...] = ()) -> None:
    conn = await asyncpg.connect(url)
    try:
        for sql in statements:
            await (conn.execute(sql, *args) if args else conn.execute(sql))
    finally:
        await conn.close()


async def fill_people(url: str, count: int, *, primary_key: bool = True) -> None:
    key = "PRIMARY KEY" if primary_key else ""
    await pg(
        url,
        f"""CREATE TABLE people (
            employee_id text {key}, given_name text, family_name text, email text, department text,
            badge uuid, salary numeric(10, 2), active boolean, tags text[], extra jsonb,
            updated_at timestamptz)""",
        f"""INSERT INTO people SELECT 'E' || lpad(i::text, 4, '0'), 'G' || i, 'F' || i,
            'p' || i || '@example.org', 'Dept ' || (i % 3), md5(i::text)::uuid, 1000.50, true,
            ARRAY['a', 'b'], '{{"floor": 3}}', timestamptz '2024-05-01 09:30:00+00' - (i || ' s')::interval
            FROM generate_series(1, {count}) AS i""",
    )


def source(url: str, tmp_path: Path, **raw: Any) -> SourceSettings:
    raw = {"type": "sql", "url": url, "id_column": "employee_id", **raw}
    if "query" not in raw:
        raw.setdefault("table", "people")
    return parse_source("jobs[0].source", raw, base_dir=tmp_path)


async def read(settings: SourceSettings, since: str | None = None) -> tuple[Any, list[SourceObject]]:
    opened = settings.open(since)
    return opened, [obj async for batch in opened.batches(100) for obj in batch]


@pytest.mark.postgres
async def test_postgresql_rows_stream_with_values_as_other_sources_give_them(
    pg_url: str, tmp_path: Path
) -> None:
    await fill_people(pg_url, 250)
    opened, objects = await read(source(pg_url, tmp_path, watermark_column="updated_at"))
    assert len(objects) == 250 and opened.full and opened.skipped == 0
    first = next(o for o in objects if o.source_id == "E0001")
    assert first.attributes == {
        "employee_id": "E0001",
        "given_name": "G1",
        "family_name": "F1",
        "email": "p1@example.org",
        "department": "Dept 1",
        "badge": "c4ca4238-a0b9-2382-0dcc-509a6f75849b",
        "salary": 1000.5,
        "active": True,
        "tags": ["a", "b"],
        "extra": {"floor": 3},
        "updated_at": "2024-05-01T09:29:59+00:00",
    }
    assert opened.watermark == '["updated_at","t","2024-05-01T09:29:59+00:00"]'


@pytest.mark.postgres
async def test_an_incremental_read_gets_only_changed_rows_and_a_late_row_with_the_watermarks_timestamp(
    pg_url: str, tmp_path: Path
) -> None:
    await fill_people(pg_url, 100)
    job = source(pg_url, tmp_path, watermark_column="updated_at", columns=["given_name"])
    full, objects = await read(job)
    assert len(objects) == 100 and full.full
    # A second row stamped with the watermark's own timestamp, committed after the read that set it,
    # and one row changed later: both must come, and no other row but E0001 (which holds that value).
    await pg(
        pg_url,
        "UPDATE people SET updated_at = timestamptz '2024-05-01 09:29:59+00' WHERE employee_id = 'E0050'",
        "UPDATE people SET given_name = 'Moved', updated_at = now() WHERE employee_id = 'E0070'",
    )
    incremental, changed = await read(job, full.watermark)
    assert not incremental.full
    assert sorted(o.source_id for o in changed) == ["E0001", "E0050", "E0070"]
    assert next(o for o in changed if o.source_id == "E0070").attributes == {
        "given_name": "Moved",
        "employee_id": "E0070",
    }
    assert incremental.watermark is not None and incremental.watermark > full.watermark  # type: ignore[operator]
    _, same = await read(job, incremental.watermark)
    assert [o.source_id for o in same] == ["E0070"]
    overlapping = source(pg_url, tmp_path, watermark_column="updated_at", watermark_overlap="1d")
    _, everything = await read(overlapping, full.watermark)
    assert len(everything) == 100  # a day back from the watermark: every row


@pytest.mark.postgres
async def test_a_null_or_repeated_id_is_reported_and_the_read_is_incomplete(
    pg_url: str, tmp_path: Path
) -> None:
    await fill_people(pg_url, 10, primary_key=False)
    await pg(
        pg_url,
        "INSERT INTO people (employee_id, given_name) VALUES (NULL, 'Nobody'), ('E0003', 'Twin')",
    )
    opened, objects = await read(source(pg_url, tmp_path, query="SELECT * FROM people ORDER BY given_name"))
    assert len(objects) == 10 and opened.skipped == 2
    assert sorted(p.message for p in opened.problems) == [
        "has no id: 'employee_id' is NULL; row skipped",
        "repeats the id 'E0003' of an earlier row; the repeat is skipped",
    ]
    assert all(1 <= p.line <= 12 for p in opened.problems)


@pytest.mark.postgres
async def test_a_wrong_table_or_column_is_named_and_the_password_never_shown(
    pg_url: str, tmp_path: Path
) -> None:
    await fill_people(pg_url, 3)
    with_secret = pg_url.replace("postgres@", f"postgres:{SECRET}@")  # trust auth: any password is taken
    cases = [
        (
            {"table": "peopel"},
            "there is no table 'peopel' (check the source's `table:`); did you mean 'people'?",
        ),
        (
            {"watermark_column": "modified"},
            "has no column 'modified' (check the source's `watermark_column:`)",
        ),
        (
            {"columns": ["given_nmae"]},
            "has no column 'given_nmae' (check the source's `columns:`); did you mean",
        ),
        ({"query": "SELECT nope FROM people"}, 'column "nope" does not exist'),
    ]
    for raw, expected in cases:
        with pytest.raises(SourceError) as raised:
            await read(source(with_secret, tmp_path, **raw))
        message = str(raised.value)
        assert expected in message and SECRET not in message, message
        assert "postgres:***@127.0.0.1" in message


@pytest.mark.postgres
async def test_a_database_that_does_not_answer_is_a_source_error_without_the_password(tmp_path: Path) -> None:
    needs.postgres()
    for url in (
        f"postgresql://postgres:{SECRET}@127.0.0.1:1/hr",  # nothing listens
        f"postgresql://postgres:{SECRET}@127.0.0.1:5432/no_such_database_{uuid.uuid4().hex[:6]}",
    ):
        with pytest.raises(SourceError) as raised:
            await read(source(url, tmp_path, connect_timeout_s=5))
        message = str(raised.value)
        assert "cannot connect" in message and "check the source's `url:`" in message, message
        assert SECRET not in message and "***" in message


# -- MariaDB ---------------------------------------------------------------------------------------

MARIADB = "mysql://root@127.0.0.1:3306/test"


async def maria(*statements: str, args: list[tuple[Any, ...]] | None = None) -> None:
    """Run statements on MariaDB's `test` database (the last one with `args`, many times)."""
    import aiomysql

    conn = await aiomysql.connect(
        host="127.0.0.1", port=3306, user="root", password="", db="test", autocommit=True
    )
    try:
        async with conn.cursor() as cur:
            for i, sql in enumerate(statements):
                if args is not None and i == len(statements) - 1:
                    await cur.executemany(sql, args)
                else:
                    await cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
async def maria_table() -> AsyncIterator[str]:
    """A table of its own in MariaDB's `test` database, dropped afterwards."""
    needs.mariadb()
    name = f"people_{uuid.uuid4().hex[:10]}"
    rows = [
        (f"E{i:03d}", f"G{i}", i % 2, "10.00", dt.date(1990, 1, 1 + i % 28), dt.datetime(2024, 5, 1, 9, i))
        for i in range(50)
    ]
    try:
        await maria(
            f"CREATE TABLE {name} (employee_id VARCHAR(20) PRIMARY KEY, given_name VARCHAR(50), "
            "active BOOLEAN, salary DECIMAL(10, 2), born DATE, updated_at DATETIME(6))",
            f"INSERT INTO {name} VALUES (%s, %s, %s, %s, %s, %s)",
            args=rows,
        )
        yield name
    finally:
        await maria(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.mariadb
@pytest.mark.parametrize("url", [MARIADB, MARIADB.replace("mysql://", "mariadb://")])
async def test_mariadb_reads_in_full_then_incrementally(maria_table: str, tmp_path: Path, url: str) -> None:
    job = source(url, tmp_path, table=maria_table, watermark_column="updated_at")
    full, objects = await read(job)
    assert len(objects) == 50 and full.skipped == 0
    assert next(o for o in objects if o.source_id == "E003").attributes == {
        "employee_id": "E003",
        "given_name": "G3",
        "active": 1,
        "salary": 10,
        "born": "1990-01-04",
        "updated_at": "2024-05-01T09:03:00",
    }
    await maria(
        f"UPDATE {maria_table} SET given_name = 'Moved', updated_at = '2024-06-01' "
        "WHERE employee_id = 'E010'",
        # Late, with the stamp of E049, the highest the full read met.
        f"INSERT INTO {maria_table} VALUES ('E900', 'Late', 1, 1, NULL, '2024-05-01 09:49:00')",
    )
    incremental, changed = await read(job, full.watermark)
    assert sorted(o.source_id for o in changed) == ["E010", "E049", "E900"] and not incremental.full
    assert incremental.watermark == '["updated_at","t","2024-06-01T00:00:00"]'


@pytest.mark.mariadb
async def test_mariadb_refusing_the_password_is_a_source_error_without_it(tmp_path: Path) -> None:
    needs.mariadb()
    url = f"mysql://roster_nobody_{uuid.uuid4().hex[:6]}@127.0.0.1:3306/test"
    with pytest.raises(SourceError) as raised:
        await read(source(url, tmp_path, password=SECRET, table="people"))
    message = str(raised.value)
    assert "cannot connect" in message and "Access denied" in message and SECRET not in message, message


# -- Through the engine ----------------------------------------------------------------------------


def cycle_config(tmp_path: Path, url: str, **source_raw: Any) -> dict[str, Any]:
    return {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {
                    "type": "sql",
                    "url": url,
                    "table": "people",
                    "id_column": "employee_id",
                    "watermark_column": "updated_at",
                    **source_raw,
                },
                "target": "db",
                "deletion_guard": False,
                "mappings": [
                    {"target": "employee_id", "source": "employee_id", "match": True},
                    {"target": "first_name", "source": "given_name"},
                    {"target": "last_name", "source": "family_name"},
                    {"target": "email", "source": "email"},
                    {"target": "department", "source": "department"},
                    {"target": "company", "constant": "Example Corp"},
                ],
            }
        ],
        **sql_target(f"sqlite:///{tmp_path / 'accounts.db'}"),
    }


@pytest.mark.postgres
async def test_cycles_from_a_postgresql_table_into_a_sqlite_target_with_a_full_import_every_so_often(
    pg_url: str, tmp_path: Path
) -> None:
    await fill_people(pg_url, 300)
    target = f"sqlite:///{tmp_path / 'accounts.db'}"
    async with pipeline(tmp_path, cycle_config(tmp_path, pg_url, full_import_every="3s")) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        assert (first.status, first.read, first.created) == ("succeeded", 300, 300)
        rows = await target_rows(target)
        assert rows["E0007"]["email"] == "p7@example.org" and rows["E0007"]["first_name"] == "G7"

        await pg(
            pg_url,
            "UPDATE people SET email = 'moved@example.org', updated_at = now() WHERE employee_id = 'E0007'",
            "DELETE FROM people WHERE employee_id = 'E0100'",
        )
        second = await p.runner.run_cycle(job)
        assert second.read <= 2 and (second.updated, second.disabled, second.created) == (1, 0, 0), second
        rows = await target_rows(target)
        assert rows["E0007"]["email"] == "moved@example.org" and int(rows["E0100"]["active"]) == 1

        await asyncio.sleep(3.2)  # full_import_every has passed: the next read is a full one
        third = await p.runner.run_cycle(job)
        assert (third.read, third.disabled, third.updated) == (299, 1, 0), third
        assert int((await target_rows(target))["E0100"]["active"]) == 0

        await pg(
            pg_url,
            "ALTER TABLE people DROP CONSTRAINT people_pkey",
            "ALTER TABLE people ALTER COLUMN employee_id DROP NOT NULL",
        )
        await pg(
            pg_url, "INSERT INTO people (employee_id, given_name, updated_at) VALUES (NULL, 'Nobody', now())"
        )
        await pg(pg_url, "DELETE FROM people WHERE employee_id = 'E0200'")
        await p.runner.control.restart(job.name)
        fourth = await p.runner.run_cycle(job)
        assert fourth.status == "incomplete" and fourth.skipped_rows == 1, fourth
        assert fourth.disabled == 0  # an incomplete read deprovisions nothing
        assert int((await target_rows(target))["E0200"]["active"]) == 1
