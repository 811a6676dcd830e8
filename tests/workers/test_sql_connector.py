"""The SQL target connector against real SQLite and the real PostgreSQL on 127.0.0.1:5432."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from common.errors import ConfigError, PermanentError, TransientError
from common.peers.sql_bulk import MAX_ROWS
from queues.contracts import Operation
from tests import needs
from workers.connectors.base import Applied
from workers.connectors.null import NullConnector
from workers.connectors.sql.connector import SqlConnector
from workers.connectors.sql.settings import SqlSettings, parse_sql_settings

PG_PASSWORD = "s3cret-pw"  # trust auth ignores it; it is here to prove it never leaks
PG_URL = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:5432/test"
COLUMNS = {"userName": "user_name", "mail": "email", "displayName": "display_name"}


def op(action: str, key: Any, **attributes: Any) -> Operation:
    return Operation(
        op_id=uuid.uuid4().hex,
        job="hr-to-app",
        target="app",
        cycle_id="c1",
        action=action,  # type: ignore[arg-type]
        object_type="user",
        source_id=str(key),
        attributes=attributes,
        desired_hash="h",
        matching=[("userName", key)],
    )


@dataclass
class Database:
    backend: str
    url: str
    table: str
    engine: AsyncEngine
    path: Path | None = None

    def settings(self, **overrides: Any) -> SqlSettings:
        raw: dict[str, Any] = {
            "url": self.url,
            "table": self.table,
            "key_column": "user_name",
            "columns": COLUMNS,
            "active_column": "active",
            "create_table": True,
        }
        raw.update(overrides)
        return parse_sql_settings("targets[0]", {k: v for k, v in raw.items() if v is not None})

    async def execute(self, sql: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(sql))

    async def rows(self, key: str = "user_name") -> dict[str, dict[str, Any]]:
        async with self.engine.connect() as conn:
            result = await conn.execute(sa.text(f"SELECT * FROM {self.table}"))
            rows = [dict(row._mapping) for row in result]
        for row in rows:
            if row.get("active") is not None:
                row["active"] = bool(row["active"])
        return {row[key]: row for row in rows}


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    table = f"users_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        path = tmp_path / "target.db"
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        yield Database("sqlite", f"sqlite:///{path}", table, engine, path)
        await engine.dispose()
        return
    needs.postgres()
    engine = create_async_engine(PG_URL.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        await engine.dispose()
        pytest.fail(
            f"PostgreSQL is not answering on 127.0.0.1:5432 ({exc!r}); "
            "start it with `bash tests/services.sh postgresql`",
            pytrace=False,
        )
    try:
        yield Database("postgres", PG_URL, table, engine)
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        await engine.dispose()


async def test_create_inserts_rows_with_the_mapped_columns_and_active_true(db: Database) -> None:
    async with SqlConnector("app", db.settings()) as connector:
        outcomes = await connector.apply(
            [
                op("create", "alice", userName="alice", mail="alice@x.org", displayName="Alice", dept="HR"),
                op("create", "bob", userName="bob", mail="bob@x.org", displayName="Bob"),
            ]
        )

    assert outcomes == [Applied(target_id="alice"), Applied(target_id="bob")]
    assert await db.rows() == {
        "alice": {"user_name": "alice", "email": "alice@x.org", "display_name": "Alice", "active": True},
        "bob": {"user_name": "bob", "email": "bob@x.org", "display_name": "Bob", "active": True},
    }


async def test_a_redelivered_create_leaves_exactly_one_row(db: Database) -> None:
    create = op("create", "alice", mail="alice@x.org", displayName="Alice")
    async with SqlConnector("app", db.settings()) as connector:
        first = await connector.apply([create, create])
        second = await connector.apply([create])

    assert first == [Applied(target_id="alice")] * 2
    assert second == [Applied(target_id="alice")]
    assert await db.rows() == {
        "alice": {"user_name": "alice", "email": "alice@x.org", "display_name": "Alice", "active": True}
    }


async def test_update_changes_only_that_row_and_a_create_of_an_existing_row_updates_it(db: Database) -> None:
    async with SqlConnector("app", db.settings()) as connector:
        await connector.apply([op("create", "alice", mail="a@x.org"), op("create", "bob", mail="b@x.org")])
        await connector.apply([op("update", "alice", mail="alice@new.org", displayName="Alice N")])
        await connector.apply([op("create", "bob", mail="bob@new.org")])

    assert await db.rows() == {
        "alice": {"user_name": "alice", "email": "alice@new.org", "display_name": "Alice N", "active": True},
        "bob": {"user_name": "bob", "email": "bob@new.org", "display_name": None, "active": True},
    }


async def test_disable_sets_active_false_and_a_later_update_reactivates(db: Database) -> None:
    async with SqlConnector("app", db.settings()) as connector:
        await connector.apply([op("create", "alice", mail="a@x.org"), op("create", "bob", mail="b@x.org")])
        assert await connector.apply([op("disable", "alice"), op("disable", "ghost")]) == [
            Applied(target_id="alice"),
            Applied(target_id="ghost"),
        ]
        assert {k: r["active"] for k, r in (await db.rows()).items()} == {"alice": False, "bob": True}

        await connector.apply([op("update", "alice", mail="a@x.org")])
    assert {k: r["active"] for k, r in (await db.rows()).items()} == {"alice": True, "bob": True}


async def test_disable_deletes_the_row_when_on_disable_is_delete(db: Database) -> None:
    settings = db.settings(on_disable="delete", active_column=None)
    async with SqlConnector("app", settings) as connector:
        await connector.apply([op("create", "alice", mail="a@x.org"), op("create", "bob", mail="b@x.org")])
        assert await connector.apply([op("disable", "alice")]) == [Applied(target_id="alice")]

    assert await db.rows() == {"bob": {"user_name": "bob", "email": "b@x.org", "display_name": None}}


async def test_a_disabled_create_inserts_the_row_inactive_and_its_updates_keep_it_so(db: Database) -> None:
    async with SqlConnector("app", db.settings()) as connector:
        hidden = replace(op("create", "alice", mail="a@x.org"), disabled=True)
        # A create and an update of one key in a batch are one upsert: the later one's state wins.
        later = [
            op("create", "bob", mail="b@x.org"),
            replace(op("update", "bob", mail="b2@x.org"), disabled=True),
        ]
        assert await connector.apply([hidden, *later]) == [
            Applied(target_id=k) for k in ("alice", "bob", "bob")
        ]
        assert {k: r["active"] for k, r in (await db.rows()).items()} == {"alice": False, "bob": False}
        await connector.apply([replace(op("update", "alice", mail="new@x.org"), disabled=True)])
        alice = (await db.rows())["alice"]
    assert (alice["email"], alice["active"]) == ("new@x.org", False)


async def test_a_disabled_create_without_an_active_column_fails_and_writes_nothing(db: Database) -> None:
    settings = db.settings(on_disable="delete", active_column=None)
    async with SqlConnector("app", settings) as connector:
        outcomes = await connector.apply(
            [
                replace(op("create", "alice", mail="a@x.org"), disabled=True),
                op("create", "bob", mail="b@x.org"),
            ]
        )
    assert isinstance(outcomes[0], PermanentError) and outcomes[0].code == "config"
    assert "active_column" in outcomes[0].message
    assert outcomes[1] == Applied(target_id="bob")
    assert list(await db.rows()) == ["bob"]


async def test_delete_removes_the_row_and_a_delete_of_a_missing_row_succeeds(db: Database) -> None:
    async with SqlConnector("app", db.settings()) as connector:
        await connector.apply([op("create", "alice", mail="a@x.org"), op("create", "bob", mail="b@x.org")])
        outcomes = await connector.apply([op("delete", "alice"), op("delete", "ghost")])

    assert outcomes == [Applied(target_id="alice"), Applied(target_id="ghost")]
    assert list(await db.rows()) == ["bob"]


async def test_a_row_breaking_a_check_constraint_fails_alone_and_the_rest_of_the_batch_applies(
    db: Database,
) -> None:
    await db.execute(
        f"CREATE TABLE {db.table} (user_name TEXT PRIMARY KEY, email TEXT NOT NULL CHECK (email LIKE '%@%'),"
        " display_name TEXT, active BOOLEAN)"
    )
    keys = [f"u{i}" for i in range(6)]
    ops = [op("create", key, mail=f"{key}@x.org") for key in keys]
    ops[3] = op("create", "u3", mail="not-an-address")
    ops.append(op("disable", "u5"))

    async with SqlConnector("app", db.settings(create_table=False)) as connector:
        outcomes = await connector.apply(ops)

    bad = outcomes[3]
    assert isinstance(bad, PermanentError)
    assert "check constraint" in bad.message.lower()
    assert bad.code == ("SQLITE_CONSTRAINT_CHECK" if db.backend == "sqlite" else "23514")
    assert PG_PASSWORD not in bad.message and "not-an-address" not in bad.message
    assert [o for i, o in enumerate(outcomes) if i != 3] == [
        Applied(target_id=k) for k in keys if k != "u3"
    ] + [Applied(target_id="u5")]
    rows = await db.rows()
    assert sorted(rows) == ["u0", "u1", "u2", "u4", "u5"]
    assert rows["u4"]["email"] == "u4@x.org" and rows["u4"]["active"] is True
    assert rows["u5"]["active"] is False


async def test_duplicate_keys_in_one_batch_end_as_the_last_operation_says(db: Database) -> None:
    ops = [
        op("create", "alice", mail="old@x.org", displayName="Old"),
        op("create", "bob", mail="bob@x.org"),
        op("update", "alice", mail="new@x.org", displayName="New"),
        op("create", "carol", mail="carol@x.org"),
        op("disable", "carol"),
        op("create", "dave", mail="dave@x.org"),
        op("delete", "dave"),
        op("delete", "erin"),
        op("create", "erin", mail="erin@x.org"),
    ]
    async with SqlConnector("app", db.settings()) as connector:
        outcomes = await connector.apply(ops)

    assert outcomes == [Applied(target_id=o.match_value) for o in ops]
    assert await db.rows() == {
        "alice": {"user_name": "alice", "email": "new@x.org", "display_name": "New", "active": True},
        "bob": {"user_name": "bob", "email": "bob@x.org", "display_name": None, "active": True},
        "carol": {"user_name": "carol", "email": "carol@x.org", "display_name": None, "active": False},
        "erin": {"user_name": "erin", "email": "erin@x.org", "display_name": None, "active": True},
    }


def renamed(old: str, new: str, **attributes: Any) -> Operation:
    """The update of the object linked to row `old` (its target id) whose key value is now `new`."""
    return replace(op("update", new, **attributes), target_id=old)


async def test_an_update_that_changes_the_key_renames_the_linked_row_and_a_redelivery_adds_none(
    db: Database,
) -> None:
    async with SqlConnector("app", db.settings()) as connector:
        await connector.apply([op("create", "alice", mail="a@x.org"), op("create", "bob", mail="b@x.org")])
        rename = renamed("alice", "alicia", mail="alicia@x.org", displayName="Alicia")
        assert await connector.apply([rename]) == [Applied(target_id="alicia")]
        # Its result lost (a worker killed after the commit): the batch comes again, here beside a new
        # person who took the freed name.
        again = await connector.apply([rename, op("create", "alice", mail="new@x.org")])
        assert again == [Applied(target_id="alicia"), Applied(target_id="alice")]
        # And a rename of an object whose row was never renamed, in a batch with other updates.
        both = await connector.apply([renamed("bob", "robert", mail="r@x.org"), renamed("alicia", "alicia")])
        assert both == [Applied(target_id="robert"), Applied(target_id="alicia")]

    assert await db.rows() == {
        "alicia": {"user_name": "alicia", "email": "alicia@x.org", "display_name": "Alicia", "active": True},
        "alice": {"user_name": "alice", "email": "new@x.org", "display_name": None, "active": True},
        "robert": {"user_name": "robert", "email": "r@x.org", "display_name": None, "active": True},
    }


async def test_a_rename_onto_a_key_another_row_holds_fails_alone_and_changes_neither_row(
    db: Database,
) -> None:
    async with SqlConnector("app", db.settings()) as connector:
        await connector.apply([op("create", k, mail=f"{k}@x.org") for k in ("alice", "bob", "carol")])
        outcomes = await connector.apply(
            [renamed("alice", "bob", mail="x@x.org"), op("update", "carol", mail="c@new.org")]
        )

    assert isinstance(outcomes[0], PermanentError) and outcomes[1] == Applied(target_id="carol")
    rows = await db.rows()
    assert {k: r["email"] for k, r in rows.items()} == {
        "alice": "alice@x.org",
        "bob": "bob@x.org",
        "carol": "c@new.org",
    }


async def test_without_columns_attributes_go_to_same_named_columns_and_an_unknown_one_fails_its_op(
    db: Database,
) -> None:
    await db.execute(f"CREATE TABLE {db.table} (id TEXT PRIMARY KEY, mail TEXT, employee_no TEXT)")
    settings = db.settings(
        key_column="id", columns=None, active_column=None, on_disable="delete", create_table=None
    )
    ops = [
        op("create", "alice", mail="a@x.org", employee_no=42),
        op("create", "bob", mail="b@x.org", shoeSize="44"),
        op("create", None, id="carol", mail="c@x.org"),
        op("create", None, mail="nobody@x.org"),
    ]
    async with SqlConnector("app", settings) as connector:
        outcomes = await connector.apply(ops)

    assert outcomes[0] == Applied(target_id="alice") and outcomes[2] == Applied(target_id="carol")
    assert isinstance(outcomes[1], PermanentError) and "'shoeSize' has no column" in outcomes[1].message
    assert isinstance(outcomes[3], PermanentError) and "no value for key column 'id'" in outcomes[3].message
    assert await db.rows("id") == {
        "alice": {"id": "alice", "mail": "a@x.org", "employee_no": "42"},
        "carol": {"id": "carol", "mail": "c@x.org", "employee_no": None},
    }


async def test_open_names_the_setting_when_the_table_does_not_fit(db: Database) -> None:
    with pytest.raises(ConfigError) as missing:
        await SqlConnector("app", db.settings(create_table=False)).open()
    assert missing.value.path == "targets[0].table"
    assert "create_table: true" in str(missing.value)

    await db.execute(f"CREATE TABLE {db.table} (user_name TEXT, email TEXT, actve BOOLEAN)")
    with pytest.raises(ConfigError) as not_unique:
        await SqlConnector("app", db.settings(create_table=False)).open()
    assert not_unique.value.path == "targets[0].key_column"
    assert "unique constraint" in str(not_unique.value)

    await db.execute(f"CREATE UNIQUE INDEX {db.table}_key ON {db.table} (user_name)")
    with pytest.raises(ConfigError) as no_active:
        await SqlConnector("app", db.settings(create_table=False, columns={"mail": "email"})).open()
    assert no_active.value.path == "targets[0].active_column"
    assert "did you mean 'actve'?" in str(no_active.value)


async def test_a_locked_sqlite_file_is_a_transient_error_and_a_retry_applies_the_batch(
    tmp_path: Path,
) -> None:
    path = tmp_path / "target.db"
    settings = parse_sql_settings(
        "targets[0]",
        {
            "url": "sqlite:///target.db",
            "table": "users",
            "key_column": "user_name",
            "columns": COLUMNS,
            "active_column": "active",
            "create_table": True,
            "busy_timeout_s": 0.1,
        },
        base_dir=tmp_path,
    )
    ops = [op("create", "alice", mail="a@x.org"), op("create", "bob", mail="b@x.org")]
    async with SqlConnector("app", settings) as connector:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(TransientError) as locked:
                await connector.apply(ops)
            other.execute("ROLLBACK")
            assert "locked" in locked.value.message and locked.value.code == "SQLITE_BUSY"

            assert await connector.apply(ops) == [Applied(target_id="alice"), Applied(target_id="bob")]
            assert other.execute("SELECT user_name, active FROM users ORDER BY 1").fetchall() == [
                ("alice", 1),
                ("bob", 1),
            ]
        finally:
            other.close()


async def test_an_unreachable_database_is_transient_and_never_shows_the_password() -> None:
    settings = parse_sql_settings(
        "targets[0]",
        {
            "url": "postgresql://app:hunter2-pw@127.0.0.1:1/app",
            "table": "t",
            "key_column": "k",
            "on_disable": "delete",
        },
    )
    connector = SqlConnector("app", settings)
    with pytest.raises(TransientError) as refused:
        await connector.open()
    assert "hunter2" not in str(refused.value)
    assert "hunter2" not in repr(connector) and "hunter2" not in repr(settings)
    await connector.aclose()
    await connector.aclose()


def raw_settings(**overrides: Any) -> dict[str, Any]:
    raw = {
        "url": "sqlite:///target.db",
        "table": "users",
        "key_column": "user_name",
        "active_column": "active",
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


@pytest.mark.parametrize(
    ("raw", "path", "expected"),
    [
        (
            raw_settings(key_colum="id"),
            "targets[0].key_colum",
            "unknown key (did you mean 'key_column'?)",
        ),
        (raw_settings(table=None), "targets[0].table", "is required"),
        (raw_settings(active_column=None), "targets[0].active_column", "or set on_disable: delete"),
        (raw_settings(create_table=True), "targets[0].create_table", "needs a columns mapping"),
        (raw_settings(on_disable="archive"), "targets[0].on_disable", "'deactivate' or 'delete'"),
        (raw_settings(pool_size=0), "targets[0].pool_size", "integer >= 1"),
        (raw_settings(url="mysql://u:pw@h/db"), "targets[0].url", "use SQLite or PostgreSQL"),
        (
            raw_settings(columns={"mail": "email", "email": "email"}),
            "targets[0].columns.email",
            "already mapped",
        ),
        (
            raw_settings(url="postgresql://u:pw@h/db", busy_timeout_s=1),
            "targets[0].busy_timeout_s",
            "SQLite only",
        ),
    ],
)
def test_a_settings_error_names_the_path_and_the_fix(
    raw: Mapping[str, Any], path: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_sql_settings("targets[0]", raw)
    assert error.value.path == path
    assert expected in str(error.value)


@pytest.mark.parametrize(
    "url", ["postgresql://app:hunter2-pw@db:notaport/app", "postgresql+psycopg2://app:hunter2-pw@db/app"]
)
def test_a_url_error_never_shows_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_sql_settings("targets[0]", raw_settings(url=url))
    assert error.value.path == "targets[0].url"
    assert "hunter2" not in str(error.value)


def test_urls_are_rewritten_to_the_async_drivers_and_relative_sqlite_paths_to_the_base_dir(
    tmp_path: Path,
) -> None:
    sqlite_settings = parse_sql_settings("t", raw_settings(url="sqlite:///data/target.db"), base_dir=tmp_path)
    assert sqlite_settings.url.drivername == "sqlite+aiosqlite"
    assert sqlite_settings.url.database == str(tmp_path / "data" / "target.db")

    pg = parse_sql_settings("t", raw_settings(url="postgresql://app:hunter2-pw@db:5432/app"))
    assert pg.url.drivername == "postgresql+asyncpg" and pg.url.password == "hunter2-pw"
    assert pg.safe_url == "postgresql+asyncpg://app:***@db:5432/app"
    assert "hunter2" not in repr(pg)


async def test_the_null_connector_applies_everything() -> None:
    async with NullConnector() as connector:
        outcomes = await connector.apply(
            [
                op("create", "alice"),
                replace(op("delete", None), source_id="s-9"),
                replace(op("create", "bob"), disabled=True),
            ]
        )
    assert outcomes == [Applied(target_id="alice"), Applied(target_id="s-9"), Applied(target_id="bob")]


async def test_a_large_batch_of_mixed_shapes_lands_every_row_once_with_its_values(db: Database) -> None:
    # On SQLite many rows go to one statement: full ones, then the rest as one (common/peers/sql_bulk.py).
    count = 2 * MAX_ROWS + 7
    ops = [
        op("create", f"u{i:04d}", mail=f"u{i}@x.org", **({"displayName": f"User {i}"} if i % 3 else {}))
        for i in range(count)
    ]
    async with SqlConnector("app", db.settings()) as connector:
        outcomes = await connector.apply(ops)
        again = await connector.apply(ops[:3])  # a redelivery changes nothing

    assert outcomes == [Applied(target_id=f"u{i:04d}") for i in range(count)]
    assert again == outcomes[:3]
    expected = {
        f"u{i:04d}": {
            "user_name": f"u{i:04d}",
            "email": f"u{i}@x.org",
            "display_name": f"User {i}" if i % 3 else None,
            "active": True,
        }
        for i in range(count)
    }
    assert await db.rows() == expected


async def test_values_reach_typed_columns_as_sqlalchemy_would_bind_them(db: Database) -> None:
    profile = "JSONB" if db.backend == "postgres" else "JSON"
    columns = f'id TEXT PRIMARY KEY, "given name" TEXT, profile {profile}, on_leave BOOLEAN'
    await db.execute(f"CREATE TABLE {db.table} ({columns})")
    settings = db.settings(
        key_column="id", columns=None, active_column=None, on_disable="delete", create_table=None
    )
    ops = [
        op(
            "create",
            "alice",
            **{"given name": "Alice", "profile": {"desk": 4, "tags": ["a"]}, "on_leave": False},
        ),
        op("create", "bob", **{"given name": "Bob", "profile": None, "on_leave": True}),
    ]
    async with SqlConnector("app", settings) as connector:
        outcomes = await connector.apply(ops)

    assert outcomes == [Applied(target_id="alice"), Applied(target_id="bob")]
    rows = await db.rows("id")
    assert {k: (r["given name"], r["on_leave"]) for k, r in rows.items()} == {
        "alice": ("Alice", False),
        "bob": ("Bob", True),
    }
    stored = rows["alice"]["profile"]
    assert (orjson.loads(stored) if isinstance(stored, str) else stored) == {"desk": 4, "tags": ["a"]}
    assert rows["bob"]["profile"] is None
