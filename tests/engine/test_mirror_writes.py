"""The mirror's writes, many to a transaction (`engine.store.mirror_writes`), on SQLite and the real
PostgreSQL: each write is checked as if it were alone, whatever shares its transaction; a program that
fails leaves nothing; renames in any order never trip the unique index; what the database holds after
the commit is what the programs were told, object by object."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from common.errors import StateError
from common.peers.scim_schemas import USER_SCHEMA
from engine.store.mirror import Mirror, MirrorConflict, MirrorTx
from engine.store.state import StateStore, state_url
from tests.databases import state_store_url


@pytest.fixture(params=["sqlite", "postgresql"])
async def mirror(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mirror]:
    with state_store_url(request.param, tmp_path, "roster_mirror") as url:
        async with StateStore(url) as state:
            kept = Mirror(state)
            yield kept
            await kept.aclose()


def user(name: str, **more: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": name, **more}


async def names(mirror: Mirror) -> dict[str, str]:
    """What the database holds after the commit: id -> userName."""
    return {s.id: s.body["userName"] async for page in mirror.pages("User") for s in page}


async def test_concurrent_writes_share_transactions_and_each_is_checked_as_if_alone(mirror: Mirror) -> None:
    made = await asyncio.gather(*(mirror.create("User", user(f"u{i}")) for i in range(300)))
    ids = {stored.body["userName"]: stored.id for stored, created in made if created}
    assert len(ids) == 300

    # 300 more at once: 100 retries of the same content, 100 new names, 100 names others hold (U0 is u0)
    async def one(i: int) -> str:
        try:
            stored, created = await mirror.create(
                "User",
                user(f"u{i}") if i < 200 else user(f"n{i}") if i < 300 else user(f"U{i - 300}"),
            )
        except MirrorConflict as conflict:
            return conflict.kind
        return "created" if created else f"same:{stored.id}"

    outcomes = await asyncio.gather(*(one(i) for i in range(100, 400)))
    assert outcomes[:100] == [f"same:{ids[f'u{i}']}" for i in range(100, 200)]
    assert outcomes[100:200] == ["created"] * 100
    assert outcomes[200:] == ["uniqueness"] * 100
    held = await names(mirror)
    assert len(held) == 400 and sorted(held.values()) == sorted(
        [f"u{i}" for i in range(300)] + [f"n{i}" for i in range(200, 300)]
    )


async def test_a_failing_program_leaves_nothing_and_its_neighbours_land(mirror: Mirror) -> None:
    first, _ = await mirror.create("User", user("kept"))

    def fails_half_way(tx: MirrorTx) -> None:
        tx.create("User", user("ghost"))
        tx.update("User", first.id, lambda s: {**s.body, "title": "changed"})
        raise RuntimeError("refused")

    def lands(tx: MirrorTx) -> str:
        stored, _ = tx.create("User", user("ghost"))  # the name the failed one had taken
        return stored.id

    failing = asyncio.ensure_future(mirror.write(fails_half_way))
    landing = asyncio.ensure_future(mirror.write(lands))
    with pytest.raises(RuntimeError):
        await failing
    ghost = await landing
    assert await names(mirror) == {first.id: "kept", ghost: "ghost"}
    stored = await mirror.get("User", first.id)
    assert stored is not None and "title" not in stored.body and stored.version == 1


async def test_renames_in_any_order_and_deletes_in_one_transaction_never_trip_the_unique_index(
    mirror: Mirror,
) -> None:
    a, _ = await mirror.create("User", user("a"))
    b, _ = await mirror.create("User", user("b"))
    c, _ = await mirror.create("User", user("c"))

    def named(name: str) -> Any:
        return lambda s: {**s.body, "userName": name}

    def swap(tx: MirrorTx) -> None:
        # a and b trade names through a free one; c's name goes to a new user after c is deleted
        tx.update("User", a.id, named("tmp"))
        tx.update("User", b.id, named("a"))
        tx.update("User", a.id, named("b"))
        with pytest.raises(MirrorConflict):
            tx.create("User", user("C"))  # c still holds it
        tx.delete("User", c.id)
        tx.create("User", user("C"))
        with pytest.raises(MirrorConflict):
            tx.update("User", b.id, named("b"))  # a holds it now

    await mirror.write(swap)
    held = await names(mirror)
    assert held[a.id] == "b" and held[b.id] == "a" and c.id not in held
    assert sorted(held.values()) == ["C", "a", "b"]
    assert [(await mirror.get("User", i)).version for i in (a.id, b.id)] == [3, 2]  # type: ignore[union-attr]


async def test_an_if_match_on_a_version_another_write_made_in_the_same_transaction_is_refused(
    mirror: Mirror,
) -> None:
    a, _ = await mirror.create("User", user("a"))

    def title(tx: MirrorTx, value: str) -> int:
        stored = tx.update("User", a.id, lambda s: {**s.body, "title": value}, if_version=1)
        assert stored is not None
        return stored.version

    first = asyncio.ensure_future(mirror.write(lambda tx: title(tx, "one")))
    second = asyncio.ensure_future(mirror.write(lambda tx: title(tx, "two")))
    assert await first == 2
    with pytest.raises(MirrorConflict) as refused:
        await second
    assert refused.value.kind == "version"
    stored = await mirror.get("User", a.id)
    assert stored is not None and stored.body["title"] == "one" and stored.version == 2


async def test_a_transaction_the_database_refuses_fails_every_write_in_it_and_stores_none(
    tmp_path: Path,
) -> None:
    # SQLite itself refuses the insert of one user (a trigger), as a full disk or a lost connection
    # would refuse the commit: the writes that shared its transaction are told, and none is stored.
    async with StateStore(state_url(str(tmp_path / "state.db"))) as state:
        async with state.writing() as conn:
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON mirror WHEN NEW.name_key = 'boom' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"
            )
        mirror = Mirror(state)
        kept, _ = await mirror.create("User", user("kept"))
        outcomes = await asyncio.gather(
            *(mirror.create("User", user(name)) for name in ("a", "boom", "b")), return_exceptions=True
        )
        assert all(isinstance(o, StateError) and "refused by the database" in str(o) for o in outcomes)
        assert await names(mirror) == {kept.id: "kept"}
        again, created = await mirror.create("User", user("a"))  # the store works on
        assert created and await names(mirror) == {kept.id: "kept", again.id: "a"}
        await mirror.aclose()
