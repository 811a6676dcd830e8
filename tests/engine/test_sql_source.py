"""The SQL source on SQLite files: full and incremental reads, values as other sources give them, rows
without a usable id, and settings or databases that are wrong, said so that a person can fix them."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError, SourceError
from engine.model import SourceObject
from engine.sources.registry import parse_source
from engine.sources.sql import SqlSource, parse_sql_source
from engine.sources.sql_values import back_off, convert, decode_mark, encode_mark

DRIVERS = ["sqlite", "sqlite+pysqlite"]
"""The async driver on the loop, and a sync driver on a thread of its own."""


def make_db(path: Path, *, primary_key: bool = True) -> Path:
    with sqlite3.connect(path) as conn:
        key = "TEXT PRIMARY KEY" if primary_key else "TEXT"
        conn.execute(
            f"CREATE TABLE people (employee_id {key}, given_name TEXT, age INTEGER, score REAL, "
            "photo BLOB, updated_at TEXT)"
        )
        conn.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?)",
            [(f"E{i}", f"Given{i}", 30 + i, 1.5, None, f"2024-01-01 10:00:0{i}") for i in range(5)],
        )
    return path


def settings(tmp_path: Path, driver: str = "sqlite", **raw: Any) -> Any:
    raw = {"type": "sql", "url": f"{driver}:///hr.db", "id_column": "employee_id", **raw}
    if "query" not in raw:
        raw.setdefault("table", "people")
    return parse_source("jobs[0].source", raw, base_dir=tmp_path)


async def read_all(source: Any, size: int = 2) -> list[SourceObject]:
    return [obj async for batch in source.batches(size) for obj in batch]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_full_read_yields_every_row_in_batches_with_its_position(tmp_path: Path, driver: str) -> None:
    make_db(tmp_path / "hr.db")
    source = settings(tmp_path, driver).open()
    batches = [batch async for batch in source.batches(2)]
    assert [len(b) for b in batches] == [2, 2, 1]
    objects = [obj for batch in batches for obj in batch]
    assert [(o.source_id, o.line) for o in objects] == [(f"E{i}", i + 1) for i in range(5)]
    assert objects[1].attributes == {
        "employee_id": "E1",
        "given_name": "Given1",
        "age": 31,
        "score": 1.5,
        "photo": None,
        "updated_at": "2024-01-01 10:00:01",
    }
    assert (source.full, source.watermark, source.skipped, source.problems) == (True, None, 0, [])


async def test_columns_picks_what_is_read_and_the_id_always_comes(tmp_path: Path) -> None:
    make_db(tmp_path / "hr.db")
    source = settings(tmp_path, columns=["given_name"], watermark_column="updated_at").open()
    objects = await read_all(source)
    assert objects[0].attributes == {"given_name": "Given0", "employee_id": "E0"}
    assert source.watermark == encode_mark("updated_at", "2024-01-01 10:00:04")


async def test_a_query_is_read_as_a_subquery_and_may_filter(tmp_path: Path) -> None:
    make_db(tmp_path / "hr.db")
    query = "SELECT employee_id, upper(given_name) AS name, updated_at FROM people WHERE age > 32;"
    source = settings(tmp_path, query=query, watermark_column="updated_at").open()
    assert [(o.source_id, o.attributes["name"]) for o in await read_all(source)] == [
        ("E3", "GIVEN3"),
        ("E4", "GIVEN4"),
    ]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_an_incremental_read_reads_from_the_watermark_and_sees_a_late_row_with_the_same_value(
    tmp_path: Path, driver: str
) -> None:
    db = make_db(tmp_path / "hr.db")
    job = settings(tmp_path, driver, watermark_column="updated_at")
    first = job.open()
    assert len(await read_all(first)) == 5 and first.full
    # Committed after the read, with the very value the watermark holds: `>=` must see it.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO people VALUES ('E9', 'Late', 40, 0, NULL, '2024-01-01 10:00:04')")
        conn.execute(
            "UPDATE people SET given_name = 'Moved', "
            "updated_at = '2024-01-01 10:00:05' WHERE employee_id = 'E1'"
        )
    second = job.open(first.watermark)
    assert not second.full
    assert sorted(o.source_id for o in await read_all(second)) == ["E1", "E4", "E9"]
    assert second.watermark == encode_mark("updated_at", "2024-01-01 10:00:05")
    third = job.open(second.watermark)
    assert [o.source_id for o in await read_all(third)] == ["E1"]  # only the watermark's own row again


async def test_a_watermark_of_another_column_makes_the_read_a_full_one(tmp_path: Path) -> None:
    make_db(tmp_path / "hr.db")
    source = settings(tmp_path, watermark_column="updated_at").open(encode_mark("age", 33))
    assert source.full and len(await read_all(source)) == 5
    assert settings(tmp_path, watermark_column="updated_at").open("not json").full


async def test_rows_whose_watermark_is_null_are_noted_not_skipped(tmp_path: Path) -> None:
    db = make_db(tmp_path / "hr.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE people SET updated_at = NULL WHERE employee_id IN ('E1', 'E2')")
    source = settings(tmp_path, watermark_column="updated_at").open()
    assert len(await read_all(source)) == 5
    assert source.skipped == 0
    assert [str(p) for p in source.problems] == [
        "line 5: 2 row(s) have no 'updated_at' (NULL): only full imports see them"
    ]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_row_with_a_null_empty_or_repeated_id_is_a_problem_at_its_position_and_skipped(
    tmp_path: Path, driver: str
) -> None:
    db = make_db(tmp_path / "hr.db", primary_key=False)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO people (employee_id, given_name) VALUES (NULL, 'Nobody')")
        conn.execute("INSERT INTO people (employee_id, given_name) VALUES ('  ', 'Blank')")
        conn.execute("INSERT INTO people (employee_id, given_name) VALUES ('E2', 'Twin')")
        conn.execute("INSERT INTO people (employee_id, given_name) VALUES ('E\x01', 'Control')")
    source = settings(tmp_path, driver).open()
    objects = await read_all(source)
    assert [o.source_id for o in objects] == [f"E{i}" for i in range(5)]
    assert source.skipped == 4  # so the read is incomplete and deprovisions nothing
    assert [str(p) for p in source.problems] == [
        "line 6: has no id: 'employee_id' is NULL; row skipped",
        "line 7: has no id: 'employee_id' is empty; row skipped",
        "line 8: repeats the id 'E2' of an earlier row; the repeat is skipped",
        "line 9: has an id that holds a control character (U+0001) at character 2; row skipped",
    ]


async def test_numbers_as_ids_are_their_text(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "hr.db") as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO t VALUES (42, 'x')")
    source = settings(tmp_path, table="t", id_column="id").open()
    assert [(o.source_id, o.attributes) for o in await read_all(source)] == [("42", {"id": 42, "name": "x"})]


async def test_a_missing_table_or_column_is_a_source_error_naming_it_and_the_key(tmp_path: Path) -> None:
    make_db(tmp_path / "hr.db")
    cases = [
        (
            {"table": "peopel"},
            "there is no table 'peopel' (check the source's `table:`); did you mean 'people'?",
        ),
        (
            {"id_column": "employee"},
            "table 'people' has no column 'employee' (check the source's `id_column:`)",
        ),
        ({"watermark_column": "changed"}, "has no column 'changed' (check the source's `watermark_column:`)"),
        ({"columns": ["given_name", "mail"]}, "has no column 'mail' (check the source's `columns:`)"),
        (
            {"query": "SELECT given_name FROM people"},
            "the source's query has no column 'employee_id' (check the source's `id_column:`); its columns: "
            "given_name",
        ),
        (
            {"query": "SELECT * FROM nowhere"},
            "could not read the columns of the source's query: no such table",
        ),
    ]
    for raw, expected in cases:
        with pytest.raises(SourceError) as raised:
            await read_all(settings(tmp_path, **raw).open())
        assert expected in str(raised.value), (raw, str(raised.value))


async def test_a_missing_sqlite_file_is_a_source_error_and_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"hr\.db: no such SQLite file \(check the source's `url:`\)"):
        await read_all(settings(tmp_path).open())
    assert not (tmp_path / "hr.db").exists()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "jobs[0].source.table: a SQL source reads a `table:` or a `query:` (neither is given)"),
        ({"table": "t", "query": "SELECT 1"}, "a SQL source reads a `table:` or a `query:` (both are given)"),
        ({"query": "DELETE FROM people"}, "jobs[0].source.query: must be a SELECT (or WITH) query"),
        ({"query": "SELECT 1", "schema": "hr"}, "jobs[0].source.schema: applies only with `table:`"),
        (
            {"table": "t", "full_import_every": "1h"},
            "full_import_every: applies only with `watermark_column:`",
        ),
        ({"table": "t", "watermark_overlap": 5}, "watermark_overlap: applies only with `watermark_column:`"),
        ({"table": "t", "columns": ["a", "a"]}, "jobs[0].source.columns[1]: names 'a' twice"),
        ({"table": "t", "id_colum": "x"}, "jobs[0].source.id_colum: unknown key (did you mean 'id_column'?)"),
        (
            {"table": "t", "url": "nosuchdb://h/d"},
            "jobs[0].source.url: SQLAlchemy knows no database 'nosuchdb'",
        ),
        (
            {"table": "t", "url": "sqlite://"},
            "names an in-memory SQLite database, which holds nothing to read",
        ),
        (
            {"table": "t", "url": "mysql+mysqldb://u@h/d"},
            "jobs[0].source.url: needs the driver mysqldb, which is not installed",
        ),
    ],
)
def test_a_wrong_setting_names_its_key_and_the_fix(
    tmp_path: Path, raw: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_sql_source(
            "jobs[0].source", {"url": "sqlite:///hr.db", "id_column": "id", **raw}, base_dir=tmp_path
        )
    assert expected in str(raised.value)


def test_a_password_is_set_into_the_url_and_never_shown(tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55"
    s = parse_sql_source(
        "source",
        {"url": "postgresql://reader@db.example.org/hr", "password": secret, "table": "t", "id_column": "id"},
        base_dir=tmp_path,
    )
    assert s.url.password == secret and s.url.drivername == "postgresql+asyncpg"
    assert secret not in repr(s) and secret not in repr(SqlSource(s))
    with pytest.raises(ConfigError) as raised:
        parse_sql_source(
            "source",
            {
                "url": f"postgresql://reader:{secret}@db/hr",
                "password": secret,
                "table": "t",
                "id_column": "id",
            },
            base_dir=tmp_path,
        )
    assert "`password:` gives one too" in str(raised.value) and secret not in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        parse_sql_source(
            "source",
            {"url": f"postgresql://u:{secret}@h:notaport/d", "table": "t", "id_column": "i"},
            base_dir=tmp_path,
        )
    assert "cannot be read as a database URL" in str(raised.value) and secret not in str(raised.value)


def test_the_registry_knows_the_type_and_its_incremental_settings(tmp_path: Path) -> None:
    plain = settings(tmp_path)
    assert (plain.type, plain.incremental) == ("sql", False)
    job = settings(tmp_path, watermark_column="updated_at", full_import_every="6h", watermark_overlap="5m")
    assert (job.incremental, job.full_import_every_s, job.settings.watermark_overlap_s) == (True, 21_600, 300)


def test_values_come_out_as_other_sources_give_them() -> None:
    when = dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)
    assert convert(when) == "2024-05-01T09:30:00+00:00"
    assert convert(dt.date(2024, 5, 1)) == "2024-05-01"
    assert convert(decimal.Decimal("12.00")) == 12 and convert(decimal.Decimal("12.5")) == 12.5
    assert convert(b"\x00\xff") == "AP8="
    assert convert(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert convert([dt.date(2024, 1, 2), "x"]) == ["2024-01-02", "x"]
    assert convert({"a": decimal.Decimal(1)}) == {"a": 1}


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 1),
        dt.date(2024, 5, 1),
        7,
        decimal.Decimal("7.5"),
        b"\x00\x00\x07\xd1",
        "2024-05-01 09:30",
    ],
)
def test_a_watermark_comes_back_as_the_value_it_was(value: Any) -> None:
    assert decode_mark("c", encode_mark("c", value)) == value
    assert decode_mark("other", encode_mark("c", value)) is None


def test_the_overlap_starts_a_read_earlier() -> None:
    assert back_off(dt.datetime(2024, 5, 1, 9, 30), 300) == dt.datetime(2024, 5, 1, 9, 25)
    assert back_off(1000, 50) == 950
    assert back_off("text", 300) == "text"
