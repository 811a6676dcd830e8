"""The state store, on SQLite and on the real PostgreSQL (a database of the test's own): what results
make of the objects and the log, the cycles, and the versioned migrations run at open."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from common.errors import StateError
from common.peers.sql_bulk import MAX_ROWS
from engine.core.membership import PENDING_PREFIX
from engine.core.rehire import RehireSettings
from engine.core.snapshot import desired_fingerprint, digest_fingerprint, encode_hash, fingerprint
from engine.model import ACTIVE, DISABLED, StateEntry
from engine.store import history, migrations
from engine.store.schema import metadata
from engine.store.state import StateStore, state_url
from queues.contracts import Result
from tests import needs
from tests.databases import private_database, state_store_url
from tests.engine.log_v7 import back_to_version_7_log

_ids = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with state_store_url(request.param, tmp_path, "roster_state") as store_url:
        yield store_url


@pytest.fixture
async def store(url: str) -> AsyncIterator[StateStore]:
    async with StateStore(url) as store:
        yield store


def result(source_id: str, action: str = "create", status: str = "succeeded", **fields: object) -> Result:
    values: dict = {
        "op_id": f"op-{next(_ids)}",
        "job": "people",
        "target": "db",
        "cycle_id": "c1",
        "source_id": source_id,
        "action": action,
        "status": status,
        "attempts": 1,
        "emitted_at": 100.0,
        "completed_at": 100.25,
        "target_id": f"t-{source_id}",
        "applied_hash": f"h-{source_id}-{action}" if status == "succeeded" else None,
    }
    values.update(fields)
    return Result(**values)


async def test_successes_move_the_objects_and_every_result_is_logged(store: StateStore) -> None:
    await store.apply_results([result("a"), result("b"), result("c"), result("d", status="failed")])
    await store.apply_results(
        [
            result("a", "update"),
            result("b", "disable", applied_hash=None),
            result("c", "delete"),
            result("a", "update", status="retrying", applied_hash=None),
        ]
    )
    assert await store.snapshot("people") == {
        "a": StateEntry("t-a", "h-a-update", ACTIVE),
        "b": StateEntry("t-b", "h-b-create", DISABLED),  # a disable keeps the hash it had
    }
    assert await store.entry("people", "b") == StateEntry("t-b", "h-b-create", DISABLED)
    assert await store.entry("people", "d") is None
    assert await store.snapshot("other-job") == {}
    log = await store.log_records("people")
    assert [(r["source_id"], r["action"], r["status"]) for r in log] == [
        ("a", "create", "succeeded"),
        ("b", "create", "succeeded"),
        ("c", "create", "succeeded"),
        ("d", "create", "failed"),
        ("a", "update", "succeeded"),
        ("b", "disable", "succeeded"),
        ("c", "delete", "succeeded"),
        ("a", "update", "retrying"),
    ]
    assert log[0]["latency_ms"] == pytest.approx(250.0)
    assert [r["status"] for r in await store.log_records("people", source_id="a")] == [
        "succeeded",
        "succeeded",
        "retrying",
    ]


async def test_a_replayed_result_message_changes_nothing(store: StateStore) -> None:
    retried = result("c", status="retrying", applied_hash=None)
    batch = [result("a"), result("b", "update"), retried, replace(retried, status="succeeded", attempts=2)]
    await store.apply_results(batch)
    before = await store.snapshot("people")
    await store.apply_results(batch)  # its ack was lost: the message comes again
    await store.apply_results(batch[1:3])
    assert await store.snapshot("people") == before
    log = await store.log_records("people")
    assert [(r["source_id"], r["status"], r["attempts"]) for r in log] == [
        ("a", "succeeded", 1),
        ("b", "succeeded", 1),
        ("c", "retrying", 1),
        ("c", "succeeded", 2),
    ]


@pytest.mark.parametrize("count", [1, 2, MAX_ROWS - 1, MAX_ROWS, MAX_ROWS + 1, 2 * MAX_ROWS + 37])
async def test_every_row_of_a_large_write_lands_once_and_in_order(store: StateStore, count: int) -> None:
    # Around the rows a SQLite statement carries: full statements, a remainder of one and of many.
    results = [result(f"s{i:05d}", attempts=i + 1) for i in range(count)]
    await store.apply_results(results)
    snapshot = await store.snapshot("people")
    assert snapshot == {r.source_id: StateEntry(r.target_id, r.applied_hash, ACTIVE) for r in results}
    log = await store.log_records("people")
    assert [(r["source_id"], r["attempts"]) for r in log] == [(r.source_id, r.attempts) for r in results]


async def test_a_failed_write_shows_no_value_it_held(store: StateStore) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("DROP VIEW log_view"))
        await conn.execute(sa.text("DROP TABLE log"))
    secret = '{"initialPassword": "s3cret-Value"}'
    with pytest.raises(sa.exc.DBAPIError) as caught:
        await store.apply_results([result("a", op_id="op-x")], {"op-x": secret})
    assert "s3cret" not in str(caught.value) and "t-a" not in str(caught.value)


async def test_a_target_id_is_kept_when_a_later_result_does_not_carry_one(store: StateStore) -> None:
    await store.apply_results([result("a")])
    await store.apply_results([result("a", "update", target_id=None)])
    assert (await store.entry("people", "a")) == StateEntry("t-a", "h-a-update", ACTIVE)


async def test_the_store_records_each_target_id_that_changed_or_went_and_nothing_else(
    store: StateStore,
) -> None:
    """What references to these objects must follow (`engine.core.references`): a rename, a
    delete, a forgotten link; not a create, an update that keeps the target id, or one without it."""
    latest, _ = await store.moves(["people"], None)
    await store.apply_results([result(s) for s in "abcde"])
    await store.apply_results([result("a", "update", target_id="t-a2"), result("b", "update")])
    await store.apply_results([result("c", "update", target_id=None), result("d", "delete")])
    await store.unlink("people", ["e"])
    after, moved = await store.moves(["people", "groups"], latest)
    assert moved == {"people": {"a", "d", "e"}, "groups": set()}
    assert (await store.moves(["people"], after))[1] == {"people": set()}
    await store.prune_moves(after)
    await store.apply_results([result("a", "update", target_id="t-a3")])
    newest, moved = await store.moves(["people"], after)
    assert newest > after and moved == {"people": {"a"}}  # numbers go on after a prune


async def test_error_details_are_logged_as_the_worker_gave_them(store: StateStore) -> None:
    failed = result(
        "x",
        status="failed",
        attempts=4,
        error_class="PermanentError",
        error_code="400",
        error_message="invalidSyntax: userName",
        cycle_id="c9",
    )
    await store.apply_results([failed])
    [record] = await store.log_records("people", cycle_id="c9")
    assert (record["error_class"], record["error_code"], record["error_message"], record["attempts"]) == (
        "PermanentError",
        "400",
        "invalidSyntax: userName",
        4,
    )
    assert await store.log_records("people", cycle_id="c1") == []


async def test_cycles_are_recorded_and_the_last_success_is_known(store: StateStore) -> None:
    assert await store.last_success_at("people") is None
    await store.start_cycle("c1", "people", "schedule")
    await store.finish_cycle("c1", "succeeded", {"created": 3})
    await store.start_cycle("c2", "people", "api")
    await store.finish_cycle("c2", "failed", {"read": 0})
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(sa.text("SELECT cycle_id, status, counts FROM cycles ORDER BY cycle_id"))
        ).all()
        first_end = (
            await conn.execute(sa.text("SELECT finished_at FROM cycles WHERE cycle_id = 'c1'"))
        ).scalar()
    assert [tuple(r) for r in rows] == [("c1", "succeeded", '{"created":3}'), ("c2", "failed", '{"read":0}')]
    assert await store.last_success_at("people") == first_end


async def test_a_new_store_is_migrated_to_the_latest_version_and_has_every_table(url: str) -> None:
    async with StateStore(url) as store, store.engine.connect() as conn:
        assert await migrations.version(conn) == migrations.LATEST
        rows = (await conn.execute(sa.select(migrations.schema_version.c.version))).scalars().all()
        assert sorted(rows) == [m.version for m in migrations.MIGRATIONS]
        columns = await conn.run_sync(
            lambda sync: {t: {c["name"] for c in sa.inspect(sync).get_columns(t)} for t in metadata.tables}
        )
        indexes = await conn.run_sync(
            lambda sync: {i["name"] for i in sa.inspect(sync).get_indexes("cycles")}
        )
    assert columns == {name: {c.name for c in table.columns} for name, table in metadata.tables.items()}
    assert "cycles_job_status" in indexes


async def test_opening_again_applies_nothing_and_keeps_the_data(url: str) -> None:
    async with StateStore(url) as store:
        await store.apply_results([result("a")])
    async with StateStore(url) as store:
        async with store.engine.begin() as conn:
            assert await migrations.migrate(conn, metadata) == []
        assert await store.entry("people", "a") == StateEntry("t-a", "h-a-create", ACTIVE)


async def test_a_store_from_before_versioning_is_adopted_with_its_data(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:  # what Roster did before migrations: create_all, no version
        await conn.run_sync(metadata.create_all)
        await conn.execute(
            sa.text(
                "INSERT INTO objects (job, source_id, target_id, applied_hash, state, updated_at)"
                " VALUES ('people', 'a', 't-a', 'h', 'active', 1.0)"
            )
        )
    await engine.dispose()
    async with StateStore(url) as store, store.engine.connect() as conn:
        assert await migrations.version(conn) == migrations.LATEST
        assert await store.entry("people", "a") == StateEntry("t-a", "h", ACTIVE)


async def test_migration_4_keeps_the_first_of_twin_log_records_and_refuses_new_twins(url: str) -> None:
    async with StateStore(url) as store, store.engine.begin() as conn:
        # Back to a version 3 store, with what apply_results wrote and the twins it wrote.
        await back_to_version_7_log(conn)
        await conn.execute(sa.text("DROP INDEX log_result"))
        await conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 4"))
        await conn.execute(
            sa.text(
                "INSERT INTO log (at, cycle_id, op_id, job, source_id, action, status, attempts) "
                "VALUES (:now, 'c1', 'op-a', 'people', 'a', 'create', 'succeeded', 1),"
                " (:now, 'c1', 'op-b', 'people', 'b', 'create', 'succeeded', 1),"
                " (2, 'c1', 'op-a', 'people', 'a', 'create', 'succeeded', 1),"
                " (3, 'c1', 'op-a', 'people', 'a', 'create', 'succeeded', 1),"
                " (4, 'c1', 'op-a', 'people', 'a', 'create', 'retrying', 1),"
                " (5, NULL, NULL, 'people', 'x', 'create', 'failed', NULL),"
                " (6, NULL, NULL, 'people', 'x', 'create', 'failed', NULL)"
            ),
            {"now": time.time()},
        )
    async with StateStore(url) as store:
        async with store.engine.connect() as conn:
            assert await migrations.version(conn) == migrations.LATEST
        log = await store.log_records("people")
        await store.apply_results([result("a", op_id="op-a")])
        assert await store.log_records("people") == log
    by_hand = 100.0  # the records inserted above have `at` 2 to 6; apply_results writes the time
    assert [(r["op_id"], r["status"], r["at"] < by_hand) for r in log] == [
        ("op-a", "succeeded", False),  # the first of the twins, written by apply_results
        ("op-b", "succeeded", False),
        ("op-a", "retrying", True),
        (None, "failed", True),  # records without an op id are not results: both stay
        (None, "failed", True),
    ]


async def test_migration_7_stores_the_objects_compactly_and_reads_them_back_as_they_were(url: str) -> None:
    digest = "12d4ce7db1a3d1c9780864da0983bb18"
    before = {
        "a": StateEntry("t-a", digest, ACTIVE),
        "b": StateEntry("t-b", f"{PENDING_PREFIX}{digest}", ACTIVE),
        "c": StateEntry(None, "not-a-digest", DISABLED),
        "d": StateEntry("t-d", None, ACTIVE),
        "e": StateEntry("t-e", digest.upper(), ACTIVE),  # not what the mappings make: kept as text
    }
    async with StateStore(url) as store, store.engine.begin() as conn:  # back to a version 6 store
        await conn.execute(sa.text("DROP TABLE objects"))
        await conn.execute(
            sa.text(
                "CREATE TABLE objects (job VARCHAR NOT NULL, source_id VARCHAR NOT NULL, target_id VARCHAR,"
                " applied_hash VARCHAR, state VARCHAR NOT NULL, updated_at FLOAT NOT NULL,"
                " PRIMARY KEY (job, source_id))"
            )
        )
        for source_id, e in before.items():
            await conn.execute(
                sa.text("INSERT INTO objects VALUES ('people', :s, :t, :h, :state, 1.0)"),
                {"s": source_id, "t": e.target_id, "h": e.applied_hash, "state": e.state},
            )
        await conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 7"))
    async with StateStore(url) as store:
        async with store.engine.connect() as conn:
            assert await migrations.version(conn) == migrations.LATEST
            stored = dict((await conn.execute(sa.text("SELECT source_id, applied_hash FROM objects"))).all())
        assert await store.snapshot("people") == before
        assert bytes(stored["a"]) == b"\x01" + bytes.fromhex(digest)  # 17 bytes, not 32 characters
        held = await store.fingerprints("people")
        assert held.peek("a") == desired_fingerprint(digest)  # unchanged for the next cycle
        assert held.peek("b") != desired_fingerprint(digest)  # a pending group is not taken as applied
        assert held.peek("c") != desired_fingerprint("not-a-digest")  # disabled: it is enabled again
        await store.apply_results([result("a", "update", applied_hash="h2")])
        assert await store.entry("people", "a") == StateEntry("t-a", "h2", ACTIVE)


async def test_the_fingerprints_tell_unchanged_objects_from_changed_ones(store: StateStore) -> None:
    await store.apply_results(
        [
            result("a", applied_hash="aa" * 16),
            result("b", applied_hash="bb" * 16),
            result("c", applied_hash=f"{PENDING_PREFIX}{'cc' * 16}"),
        ]
    )
    await store.apply_results([result("b", "disable", applied_hash=None)])
    held = await store.fingerprints("people")
    assert len(held) == 3
    assert held.peek("a") == desired_fingerprint("aa" * 16) == digest_fingerprint("aa" * 16)
    assert held.peek("a") != desired_fingerprint("ab" * 16)
    assert held.peek("b") != desired_fingerprint("bb" * 16)  # disabled
    assert held.peek("c") == desired_fingerprint(f"{PENDING_PREFIX}{'cc' * 16}")
    assert held.peek("c") != desired_fingerprint("cc" * 16)
    assert held.take("a") is not None and held.take("a") is None
    assert sorted(held.unseen()) == ["b", "c"] and len(held) == 3  # the guard measures what was held
    assert await store.entries("people", ["b", "x"]) == {"b": StateEntry("t-b", "bb" * 16, DISABLED)}
    assert await store.target_ids("people") == {"a": "t-a", "b": "t-b", "c": "t-c"}
    assert await store.target_ids("people", ["c", "x"]) == {"c": "t-c"}


async def stored_fingerprints(store: StateStore) -> dict[str, int | None]:
    async with store.engine.connect() as conn:
        return dict((await conn.execute(sa.text("SELECT source_id, fingerprint FROM objects"))).all())


async def test_every_write_keeps_the_stored_fingerprint_that_of_the_applied_hash_and_state(
    store: StateStore,
) -> None:
    """A cycle loads the stored fingerprints as they are: each write, a disable (which keeps the hash
    it had) and an enable again among them, must keep them what the hash and the state give."""
    await store.apply_results(
        [
            result("a", applied_hash="aa" * 16),
            result("b", applied_hash="bb" * 16),
            result("c", applied_hash="cc" * 16),
            result("d", "disable", applied_hash="dd" * 16),  # disabled before it was ever held
            result("e", applied_hash="ee" * 16),
        ]
    )
    await store.apply_results(
        [result("b", "disable", applied_hash=None), result("c", "update", applied_hash="cd" * 16)]
    )
    await store.apply_results(
        [
            result("b", "update", applied_hash="be" * 16),  # enabled again
            result("a", "disable", applied_hash=None),
            result("e", "delete", applied_hash=None),
        ]
    )
    entries = await store.snapshot("people")
    expected = {s: fingerprint(encode_hash(e.applied_hash), e.state) for s, e in entries.items()}
    assert sorted(expected) == ["a", "b", "c", "d"]
    assert expected["a"] == desired_fingerprint("aa" * 16) | 1  # the hash it had, disabled
    assert await stored_fingerprints(store) == expected
    assert (await store.fingerprints("people")).fingerprints == expected


async def test_migration_9_stores_the_fingerprints_and_a_missing_one_is_computed(url: str) -> None:
    async with StateStore(url) as store:
        await store.apply_results(
            [result("a", applied_hash="aa" * 16), result("b", applied_hash=f"{PENDING_PREFIX}{'bb' * 16}")]
        )
        await store.apply_results([result("c", applied_hash="text hash"), result("b", "disable")])
        expected = await stored_fingerprints(store)
        async with store.engine.begin() as conn:  # back to a version 8 store
            await conn.execute(sa.text("ALTER TABLE objects DROP COLUMN fingerprint"))
            await conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 9"))
    async with StateStore(url) as store:
        async with store.engine.connect() as conn:
            assert await migrations.version(conn) == migrations.LATEST
        assert await stored_fingerprints(store) == expected
        async with store.engine.begin() as conn:  # a row no write kept one for: computed when loaded
            await conn.execute(sa.text("UPDATE objects SET fingerprint = NULL WHERE source_id = 'b'"))
        assert (await store.fingerprints("people")).fingerprints == expected


async def test_a_store_newer_than_this_roster_is_refused(url: str) -> None:
    async with StateStore(url) as store, store.engine.begin() as conn:
        await conn.execute(
            migrations.schema_version.insert().values(
                version=migrations.LATEST + 1, description="x", applied_at=0
            )
        )
    with pytest.raises(StateError, match="newer than this Roster"):
        await StateStore(url).open()


async def test_engines_that_open_one_postgresql_store_at_once_migrate_it_once() -> None:
    """Failover runs two engines on one PostgreSQL store (one SQLite file has one engine)."""
    needs.postgres()
    with private_database("roster_state") as database:
        await _open_together(state_url(database))


async def _open_together(url: str) -> None:
    stores = [StateStore(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        async with stores[0].engine.connect() as conn:
            rows = (await conn.execute(sa.select(migrations.schema_version.c.version))).scalars().all()
        assert sorted(rows) == [m.version for m in migrations.MIGRATIONS]
    finally:
        for s in stores:
            await s.aclose()


async def test_running_cycles_whose_owner_is_gone_are_interrupted_and_live_ones_are_kept(
    store: StateStore,
) -> None:
    now = time.time()
    me = history.process_owner()
    await store.start_cycle("mine", "people", "cli", owner=me, lease_until=now - 5)  # renewed by me
    other = "other-host:1:ab"
    await store.start_cycle("elsewhere-live", "people", "cli", owner=other, lease_until=now + 60)
    await store.start_cycle("elsewhere-expired", "people", "cli", owner=other, lease_until=now - 1)
    await store.start_cycle("before-leases", "people", "cli")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = f"{socket.gethostname()}:{dead.pid}:cd"
    await store.start_cycle("here-dead", "people", "cli", owner=here, lease_until=now + 60)

    gone = await history.interrupt_abandoned(store, me=me)

    assert sorted(gone) == ["before-leases", "elsewhere-expired", "here-dead"]
    status = {c["cycle_id"]: c["status"] for c in await history.cycle_history(store, "people")}
    assert status == {
        "mine": "running",
        "elsewhere-live": "running",
        "elsewhere-expired": "interrupted",
        "before-leases": "interrupted",
        "here-dead": "interrupted",
    }
    await history.renew_leases(store, me)
    async with store.engine.connect() as conn:
        query = sa.text("SELECT lease_until FROM cycles WHERE cycle_id = 'mine'")
        assert (await conn.execute(query)).scalar() > time.time() + history.LEASE_S / 2


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_a_new_sqlite_state_and_its_wal_and_shm_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fresh" / ".roster" / "state.db"
    old = os.umask(0o022)  # the usual umask, under which SQLite alone would make them 0644
    try:
        async with StateStore(state_url(str(path))) as store:
            await store.apply_results([result("a")])
            files = [path, path.with_name("state.db-wal"), path.with_name("state.db-shm")]
            assert [_mode(f) for f in files] == [0o600, 0o600, 0o600]
        assert _mode(path.parent) == 0o700
    finally:
        os.umask(old)


async def test_an_existing_state_open_to_others_is_narrowed_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with StateStore(state_url(str(path))) as store:
        await store.apply_results([result("a")])
    path.chmod(0o644)
    async with StateStore(state_url(str(path))) as store:
        assert await store.entry("people", "a") is not None
        assert _mode(path) == 0o600
        assert _mode(path.with_name("state.db-wal")) == 0o600


async def test_applied_attributes_are_those_of_each_objects_latest_successful_create_or_update(
    store: StateStore,
) -> None:
    def sent(r: Result, **attributes: object) -> tuple[Result, str]:
        return r, orjson.dumps(attributes).decode()

    writes = [
        [sent(result("a"), title="Engineer"), sent(result("b"), title="Clerk", mail="b@x")],
        [
            sent(result("a", "update"), title="Manager"),
            sent(result("b", "update", status="failed", applied_hash=None), title=""),  # not applied
            sent(result("c", status="retrying", applied_hash=None), title="Nope"),
        ],
        [(result("a", "disable", applied_hash=None), "")],  # disables send nothing, and count not
        [(result("d"), "")],  # its result came after a restart: what it sent is not known
    ]
    for write in writes:
        await store.apply_results([r for r, _ in write], {r.op_id: text for r, text in write if text})
    other = result("a", job="others")
    await store.apply_results([other], {other.op_id: '{"title": "Other"}'})

    ids = ["a", "b", "c", "d", "e"] + [f"x{i}" for i in range(1200)]  # more than one query's worth
    assert await store.applied_attributes("people", ids) == {
        "a": {"title": "Manager"},
        "b": {"title": "Clerk", "mail": "b@x"},
        "d": None,
    }
    assert await store.applied_attributes("nobody", ["a"]) == {}
    assert await store.applied_attributes("people", []) == {}


async def test_an_object_keeps_when_it_was_first_disabled_until_it_is_enabled(store: StateStore) -> None:
    """What a leaver's grace counts from (`delete_after_days`): a disable sent again moves nothing."""
    await store.apply_results([result("a"), result("b")])
    assert (await store.entry("people", "a")).disabled_at is None  # type: ignore[union-attr]
    before = time.time()
    await store.apply_results([result("a", "disable")])
    first = (await store.entry("people", "a")).disabled_at  # type: ignore[union-attr]
    assert first is not None and before <= first <= time.time()
    await store.apply_results([result("a", "disable")])
    assert (await store.entries("people", ["a"]))["a"].disabled_at == first
    assert await store.first_disabled_after("people", first - 1) == first
    assert await store.first_disabled_after("people", first) is None
    assert await store.disabled_since("people") == [("a", "t-a", first)]
    await store.apply_results([result("a", "update")])  # back: enabled
    assert (await store.entry("people", "a")).disabled_at is None  # type: ignore[union-attr]
    assert await store.disabled_since("people") == []


async def test_a_store_of_version_14_dates_its_disabled_objects_from_their_last_write(url: str) -> None:
    async with StateStore(url) as store:
        await store.apply_results([result("a"), result("b")])
        await store.apply_results([result("a", "disable")])
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE objects SET disabled_at = NULL, updated_at = 1000.5"))
            await conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 15"))
    async with StateStore(url) as store:
        async with store.engine.connect() as conn:
            assert await migrations.version(conn) == migrations.LATEST
        assert (await store.entry("people", "a")).disabled_at == 1000.5  # type: ignore[union-attr]
        assert (await store.entry("people", "b")).disabled_at is None  # type: ignore[union-attr]


async def test_rehire_keys_become_departures_and_a_return_takes_one_on_both_databases(
    store: StateStore,
) -> None:
    """`engine.store.rehires` with the real stores: a create keeps its key and kept values, an update its
    key only, a delete makes a departure, and a create with that key takes it."""
    rehire = {"people": RehireSettings(key="employeeNumber", keep=("uid",))}

    def sent(*results: Result, values: dict[str, dict[str, object]]) -> dict[str, str]:
        return {r.op_id: orjson.dumps(values[r.source_id]).decode() for r in results}

    created = [result("a"), result("b")]
    await store.apply_results(
        created,
        sent(
            *created,
            values={"a": {"employeeNumber": 1, "uid": "ann"}, "b": {"employeeNumber": 2, "uid": "bo"}},
        ),
        rehire=rehire,
    )
    renamed = result("a", "update")
    await store.apply_results([renamed], sent(renamed, values={"a": {"employeeNumber": 1}}), rehire=rehire)
    await store.apply_results([result("a", "delete"), result("b", "delete")], {}, rehire=rehire)
    departed = await store.departed("people", ["1", "2", "3"])
    assert {key: (d.source_id, d.target_id, d.kept) for key, d in departed.items()} == {
        "1": ("a", "t-a", {"uid": "ann"}),
        "2": ("b", "t-b", {"uid": "bo"}),
    }
    back = result("z")
    await store.apply_results(
        [back], sent(back, values={"z": {"employeeNumber": 1, "uid": "ann"}}), rehire=rehire
    )
    assert set(await store.departed("people", ["1", "2"])) == {"2"}
    assert [(d.source_id, d.returned_as) for d in await store.departures("people", "z")] == [("a", "z")]
