"""The provisioning log searched as the console searches it: by person (source or target id, name,
mail), job, cycle, action, status and time, newest first, a page at a time through the cursor; on
SQLite and PostgreSQL, and on a store whose records were written before the search existed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.store import history, logrows, migrations
from engine.store.history import LogFilter
from engine.store.state import StateStore
from tests.databases import state_store_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with state_store_url(request.param, tmp_path, "roster_search") as store_url:
        yield store_url


def scim(user: str, given: str, family: str, mail: str) -> str:
    return orjson.dumps(
        {
            "userName": user,
            "name": {"givenName": given, "familyName": family},
            "displayName": f"{given} {family}",
            "emails": [{"value": mail, "type": "work"}],
            "title": "Engineer",
            "password": "***",
        }
    ).decode()


def ldap(given: str, family: str, mail: str) -> str:
    return orjson.dumps({"cn": f"{given} {family}", "sn": family, "mail": mail, "title": "Engineer"}).decode()


ADA = scim("ada", "Ada", "Lovelace", "Ada.Lovelace@example.com")
ADAM = scim("adam", "Adam", "Smith", "adam.smith@example.com")
ALAN = scim("alan", "Alan", "Turing", "alan@example.com")


def plain(at: float, job: str, n: int, source_id: str, target_id: str | None, action: str, status: str,
          attributes: str | None, cycle: str = "c1") -> tuple[Any, ...]:  # fmt: skip
    failed = status == "failed"
    return (at, cycle, f"{cycle}-{n}", job, source_id, target_id, action, status, 1,
            "PermanentError" if failed else None, "400" if failed else None, "no" if failed else None,
            10.0, 1.0, attributes)  # fmt: skip


# Ada in two jobs (her delete sent no attributes), Adam (whose name Ada's begins), Alan, E0010
# (whose source id E001's begins), and an orphan a reconciliation found (no source id); several
# records at the same moment.
RECORDS = [
    plain(100.0, "people", 1, "E001", "T-ADA", "create", "succeeded", ADA),
    plain(100.0, "people", 2, "E002", None, "create", "failed", ADAM),
    plain(100.0, "people", 3, "E003", "T-ALAN", "create", "succeeded", ALAN),
    plain(100.0, "ad", 4, "E001", "CN=Ada Lovelace,OU=People", "create", "succeeded",
          ldap("Ada", "Lovelace", "ada.lovelace@example.com")),
    plain(200.0, "people", 5, "E002", "T-ADAM", "create", "succeeded", ADAM, cycle="c2"),
    plain(200.0, "people", 6, "E0010", "T-OTHER", "create", "succeeded",
          scim("other", "Bo", "Berg", "bo@example.com"), cycle="c2"),
    plain(300.0, "people", 7, "E001", "T-ADA", "update", "succeeded", ADA, cycle="c3"),
    plain(300.0, "people", 8, "E003", "T-ALAN", "disable", "failed", None, cycle="c3"),
    plain(400.0, "people", 9, "E001", "T-ADA", "delete", "succeeded", None, cycle="c4"),
    plain(400.0, "people", 10, "", "T-ORPHAN", "reconcile", "orphan", None, cycle="c4"),
]  # fmt: skip


async def filled(url: str, plains: list[tuple[Any, ...]] = RECORDS) -> StateStore:
    store = await StateStore(url).open()
    await store.write_log(plains, keep_times=True)
    return store


def ops(records: list[dict[str, Any]]) -> list[str]:
    return [r["op_id"] for r in records]


def expected(*numbers: int) -> list[str]:
    """The op ids of these records, newest first (by time, then by the order written)."""
    chosen = [(RECORDS[n - 1][0], n) for n in numbers]
    return [RECORDS[n - 1][2] for _at, n in sorted(chosen, reverse=True)]


@pytest.mark.parametrize(
    ("where", "numbers"),
    [
        ({"person": "E001"}, (1, 4, 7, 9, 6)),  # a prefix of E0010 too
        ({"person": "e0010"}, (6,)),
        ({"person": "E003"}, (3, 8)),
        # A target id finds the person of its job (Ada's in the other job is another object) and,
        # as a prefix, Adam's T-ADAM.
        ({"person": "t-ada"}, (1, 7, 9, 2, 5)),
        ({"person": "cn=ada lovelace,ou=people"}, (4,)),
        ({"person": "ada.lovelace@EXAMPLE.com"}, (1, 4, 7, 9)),
        ({"person": "Lovel"}, (1, 4, 7, 9)),  # with her delete, which sent no attributes
        ({"person": "ada"}, (1, 4, 7, 9, 2, 5)),  # Adam's name begins so
        ({"person": "Ada Lovelace"}, (1, 4, 7, 9)),
        ({"person": "turing"}, (3, 8)),
        ({"person": "al"}, ()),  # two characters: exact, and nobody is called "al"
        ({"person": "bo"}, (6,)),  # ... but someone is called "Bo"
        ({"person": "***"}, ()),  # a redacted value names nobody
        ({"person": "engineer"}, ()),  # a title is not who someone is
        ({"person": "t-orphan"}, ()),  # a record with no source id names no person
        ({"person": "ada", "job": "people"}, (1, 7, 9, 2, 5)),
        ({"person": "ada", "status": "failed"}, (2,)),
        ({"person": "ada", "action": "create", "since": 100.0, "until": 200.0}, (1, 4, 2)),
        ({"person": "ada", "cycle_id": "c3"}, (7,)),
        ({"job": "people", "status": "failed"}, (2, 8)),
        ({"job": "ad"}, (4,)),
        ({"status": "succeeded"}, (1, 3, 4, 5, 6, 7, 9)),
        ({"action": "create"}, (1, 2, 3, 4, 5, 6)),
        ({"cycle_id": "c2"}, (5, 6)),
        ({"since": 200.0, "until": 400.0}, (5, 6, 7, 8)),
        ({"job": "people", "action": "create", "status": "succeeded", "since": 150.0}, (5, 6)),
        ({"job": "nobody"}, ()),
        ({"source_id": "E001"}, (1, 4, 7, 9)),
    ],
)
async def test_each_search_finds_exactly_its_records_newest_first(
    url: str, where: dict[str, Any], numbers: tuple[int, ...]
) -> None:
    store = await filled(url)
    try:
        found = await history.query_log(store, LogFilter(newest_first=True, **where))
        oldest_first = await history.query_log(store, LogFilter(**where))
    finally:
        await store.aclose()
    assert ops(found) == expected(*numbers)
    assert ops(oldest_first) == expected(*numbers)[::-1]


def crowd() -> list[tuple[Any, ...]]:
    """250 records over five moments, fifty at each, written out of time order."""
    plains = []
    for n in range(250):
        at = 1000.0 + [3, 1, 4, 0, 2][n % 5]
        who = f"P{n % 7}"
        status = "failed" if n % 3 else "succeeded"
        plains.append(plain(at, "people", n, who, f"T-{who}", "update", status, ldap(who, "Crowd", "x@y")))
    return plains


@pytest.mark.parametrize(
    "where",
    [
        {},
        {"status": "failed"},
        {"person": "crowd"},
        {"person": "p3", "status": "succeeded"},
        {"since": 1001.0},
    ],
)
@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize("page", [1, 7, 50])
async def test_paging_through_the_cursor_neither_skips_nor_repeats_records_of_one_moment(
    url: str, where: dict[str, Any], newest_first: bool, page: int
) -> None:
    store = await filled(url, crowd())
    try:
        everything = await history.query_log(
            store, LogFilter(newest_first=newest_first, limit=10_000, **where)
        )
        paged: list[dict[str, Any]] = []
        cursor = None
        while True:
            part = await history.query_log(
                store, LogFilter(newest_first=newest_first, limit=page, cursor=cursor, **where)
            )
            paged += part
            if len(part) < page:
                break
            cursor = history.parse_cursor(history.cursor_of(part[-1]))  # as the API passes it on
        exported = [
            r
            async for chunk in history.iter_log(store, LogFilter(newest_first=newest_first, **where))
            for r in chunk
        ]
    finally:
        await store.aclose()
    assert everything  # the search finds something to page through
    keys = [(r["at"], r["id"]) for r in everything]
    assert keys == sorted(keys, reverse=newest_first)
    assert [r["id"] for r in paged] == [r["id"] for r in everything]
    assert [r["id"] for r in exported] == [r["id"] for r in everything]


def test_a_cursor_that_is_not_one_is_refused() -> None:
    assert history.parse_cursor(history.cursor_of({"at": 1796524741.6803837, "id": 42})) == (
        1796524741.6803837,
        42,
    )
    for wrong in ("", "12", "x~1", "1~x", "nan~1", "1~-1", f"1~{2**63}", "1~1.5"):
        with pytest.raises(ValueError, match="is not a cursor"):
            history.parse_cursor(wrong)


SEARCH_INDEXES = (
    "log_person",
    "log_at",
    "log_job_status_at",
    "log_status_at",
    "log_action_at",
    "log_cycle_at",
)


async def people_keys(store: StateStore) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT key, job, source_id FROM log_people"))
        return sorted(tuple(row) for row in rows)


async def test_migration_13_makes_the_records_already_there_searchable_as_new_ones(url: str) -> None:
    store = await filled(url)
    written = await people_keys(store)
    async with store.engine.begin() as conn:  # back to version 12: records, no search keys or indexes
        await conn.execute(sa.text("DROP TABLE log_people"))
        for index in SEARCH_INDEXES:
            await conn.execute(sa.text(f"DROP INDEX {index}"))
        await conn.execute(sa.text("CREATE INDEX log_job_source ON log (job, source_id)"))
        await conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 13"))
    await store.aclose()
    store = await StateStore(url).open()
    try:
        async with store.engine.connect() as conn:
            assert await migrations.version(conn) == migrations.LATEST
            indexes = await conn.run_sync(
                lambda sync: {i["name"] for i in sa.inspect(sync).get_indexes("log")}
            )
        assert set(SEARCH_INDEXES) <= indexes and "log_job_source" not in indexes
        assert await people_keys(store) == written  # the keys the engine writes with a record
        found = await history.query_log(store, LogFilter(person="lovel", newest_first=True))
        assert ops(found) == expected(1, 4, 7, 9)
        await store.write_log(
            [plain(500.0, "people", 11, "E001", "T-ADA", "update", "succeeded", ADA, "c5")], keep_times=True
        )
        found = await history.query_log(
            store, LogFilter(person="ADA.LOVELACE@example.com", limit=2, newest_first=True)
        )
        assert ops(found) == ["c5-11", RECORDS[8][2]]
    finally:
        await store.aclose()


async def test_the_pruner_forgets_whom_no_record_names_any_more(url: str) -> None:
    store = await filled(url)
    try:
        async with store.writing() as conn:  # all but Alan's records and Ada's first two are recent
            await conn.execute(
                sa.text(
                    "UPDATE log SET at = :now "
                    "WHERE NOT (source_id = 'E003' OR (source_id = 'E001' AND at = 100))"
                ),
                {"now": time.time()},
            )
        assert await history.prune_log(store, 3600.0, batch=2) == 4
        left = {(job, source_id) for _key, job, source_id in await people_keys(store)}
        found = await history.query_log(store, LogFilter(person="lovel"))
        nobody = await history.query_log(store, LogFilter(person="turing"))
    finally:
        await store.aclose()
    assert {source_id for _job, source_id in left} == {"E001", "E002", "E0010"}
    assert len(left) == 3  # Ada in one job only: her only record of the other was pruned
    assert ops(found) == [RECORDS[6][2], RECORDS[8][2]] and nobody == []


def test_a_records_keys_are_its_ids_and_the_names_and_mails_it_sent() -> None:
    keys = logrows.person_keys("E001", "CN=Ada Lovelace,OU=People", ADA)
    assert keys == [
        "ada",
        "lovelace",
        "ada lovelace",
        "ada.lovelace@example.com",
        "e001",
        "cn=ada lovelace,ou=people",
    ]
    paths = (
        '{"emails[type eq \\"work\\"].value": "A@B.C", "urn:x:User:employeeNumber": "42", "manager": "Bo"}'
    )
    assert logrows.person_keys(None, None, paths) == ["a@b.c", "42"]
    assert logrows.person_keys("s", None, "not json") == ["s"]
