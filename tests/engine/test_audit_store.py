"""The audit trail in the state store, on SQLite and on the real PostgreSQL: entries are added and read
back newest first with filters, and the database itself refuses to change or delete one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store import audit, migrations
from engine.store.audit import Actor, AuditFilter, Entry
from engine.store.state import StateStore
from tests.databases import state_store_url

ADMIN = Actor(kind="service_account", name="admin")
ANN = Actor(kind="local_user", name="ann")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with state_store_url(request.param, tmp_path, "roster_audit") as store_url:
        yield store_url


@pytest.fixture
async def store(url: str) -> AsyncIterator[StateStore]:
    async with StateStore(url) as store:
        yield store


async def _fill(store: StateStore) -> None:
    await audit.record(store, Entry(actor=ADMIN, address="10.0.0.1", action="pause", job="people"), at=100.0)
    await audit.record(
        store,
        Entry(
            actor=ANN,
            address="local",
            action="provision",
            job="people",
            object="E00001",
            comment="ticket 42",
        ),
        at=200.0,
    )
    await audit.record(
        store,
        Entry(
            actor=Actor(kind="service_account", name="ci"),
            address="10.0.0.2",
            action="approve",
            job="teams",
            outcome="refused",
            reason="needs role approver; the account has viewer",
        ),
        at=300.0,
    )


async def test_entries_are_read_back_newest_first_with_every_field(store: StateStore) -> None:
    await _fill(store)
    rows = await audit.read(store, AuditFilter())
    assert [r["action"] for r in rows] == ["approve", "provision", "pause"]
    assert rows[1] == {
        "id": rows[1]["id"],
        "at": 200.0,
        "actor_kind": "local_user",
        "actor_name": "ann",
        "actor_issuer": None,
        "actor_subject": None,
        "address": "local",
        "action": "provision",
        "job": "people",
        "object": "E00001",
        "outcome": "done",
        "reason": None,
        "comment": "ticket 42",
    }
    assert (rows[0]["outcome"], rows[0]["reason"]) == (
        "refused",
        "needs role approver; the account has viewer",
    )


async def test_filters_narrow_by_actor_job_action_and_time(store: StateStore) -> None:
    await _fill(store)

    async def actions(**where: object) -> list[str]:
        return [r["action"] for r in await audit.read(store, AuditFilter(**where))]  # type: ignore[arg-type]

    assert await actions(actor="ann") == ["provision"]
    assert await actions(job="people") == ["provision", "pause"]
    assert await actions(action="pause") == ["pause"]
    assert await actions(since=200.0) == ["approve", "provision"]
    assert await actions(until=200.0) == ["pause"]
    assert await actions(since=150.0, until=250.0, job="people") == ["provision"]
    assert await actions(limit=1) == ["approve"]
    assert await actions(actor="nobody") == []


async def test_an_oidc_user_is_recorded_with_its_issuer_and_subject(store: StateStore) -> None:
    user = Actor(kind="oidc_user", name="ann@example.org", issuer="https://idp.example.org", subject="00u1")
    await audit.record(store, Entry(actor=user, address="192.0.2.7", action="sign_in"))
    (row,) = await audit.read(store, AuditFilter())
    assert (row["actor_kind"], row["actor_issuer"], row["actor_subject"]) == (
        "oidc_user",
        "https://idp.example.org",
        "00u1",
    )
    assert row["job"] is None


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit SET comment = 'rewritten', outcome = 'done'", "DELETE FROM audit"],
    ids=["update", "delete"],
)
async def test_the_database_refuses_to_change_or_delete_an_entry(store: StateStore, statement: str) -> None:
    await _fill(store)
    before = await audit.read(store, AuditFilter())
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with store.engine.begin() as conn:
            await conn.execute(sa.text(statement))
    assert await audit.read(store, AuditFilter()) == before


async def test_postgresql_refuses_to_truncate_the_trail(tmp_path: Path) -> None:
    # SQLite has no TRUNCATE: its DELETE (refused above) is the only way to empty a table.
    with state_store_url("postgresql", tmp_path, "roster_audit") as url:
        async with StateStore(url) as store:
            await _fill(store)
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                async with store.engine.begin() as conn:
                    await conn.execute(sa.text("TRUNCATE audit"))
            assert len(await audit.read(store, AuditFilter())) == 3


async def test_a_store_of_version_11_gets_the_trail_and_its_guards(url: str) -> None:
    async with StateStore(url) as store, store.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE audit"))
        await conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 12"))
    async with StateStore(url) as store:
        async with store.engine.connect() as conn:
            assert await migrations.version(conn) == migrations.LATEST >= 13
        await _fill(store)
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with store.engine.begin() as conn:
                await conn.execute(sa.text("DELETE FROM audit WHERE action = 'approve'"))
        assert len(await audit.read(store, AuditFilter())) == 3


def test_an_entry_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="actor kind"):
        Actor(kind="robot", name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="subject"):
        Actor(kind="oidc_user", name="ann")
    with pytest.raises(ValueError, match="outcome"):
        Entry(actor=ADMIN, address="local", action="pause", outcome="maybe")  # type: ignore[arg-type]
