"""The provisioning log as stored compactly, on SQLite and the real PostgreSQL: what migration 8 makes
of a version 7 store's records, which must read, filter and export exactly as before, and the rules
of the compact form (op ids given back whole, a result written twice adds nothing, dictionaries that
hold no one's own values)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.store import history, logrows, migrations
from engine.store.state import StateStore, state_url
from queues.contracts import Result
from tests.databases import state_store_url
from tests.engine.log_v7 import back_to_version_7_log, log_v7

# Written by main's code before migration 8 (a store's log rows, and `roster logs`' exports of them):
# its records cover results, retries, failures with error details, op ids with and without a number
# (and one with a leading zero), two jobs, a held deprovision, a lost operation, odd JSON.
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "log_v7.json").read_text())
ROWS: list[dict[str, Any]] = FIXTURE["rows"]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with state_store_url(request.param, tmp_path, "roster_log") as store_url:
        yield store_url


async def migrated_store(url: str) -> StateStore:
    """A store of version 7 holding the fixture's records, opened (so migrated) by this Roster."""
    async with StateStore(url) as store, store.engine.begin() as conn:
        await back_to_version_7_log(conn)
        await conn.execute(log_v7.insert(), ROWS)
    return await StateStore(url).open()


async def exports(store: StateStore, where: history.LogFilter | None = None) -> tuple[bytes, str]:
    records = [r async for page in history.iter_log(store, where or history.LogFilter()) for r in page]
    return history.jsonl(records), history.csv_rows(records, header=True)


def iso_times_jsonl(text: str) -> str:
    """The fixture's JSON Lines (written when exports gave epoch seconds) as exports give them now:
    the same records, `at` in ISO 8601."""
    lines = [orjson.loads(line) for line in text.split("\n") if line]
    return history.jsonl({**line, "at": history.iso_utc(line["at"])} for line in lines).decode()


def iso_times_csv(text: str) -> str:
    """The fixture's CSV, `at` in ISO 8601, every other cell as it was."""
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [], lineterminator="\n")
    writer.writeheader()
    for row in reader:
        writer.writerow({**row, "at": history.iso_utc(float(row["at"]))})
    return out.getvalue()


async def test_migration_8_keeps_every_record_and_its_exports_are_as_before(url: str) -> None:
    store = await migrated_store(url)
    try:
        async with store.engine.connect() as conn:
            assert await migrations.version(conn) == migrations.LATEST
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in sa.inspect(sync).get_columns("log")}
            )
            viewed = [
                dict(r._mapping) for r in await conn.execute(sa.text("SELECT * FROM log_view ORDER BY id"))
            ]
        assert "op_id" not in columns  # the compact table, not the old one
        as_jsonl, as_csv = await exports(store)
        assert as_jsonl.decode() == iso_times_jsonl(FIXTURE["jsonl"])
        assert as_csv == iso_times_csv(FIXTURE["csv"])
        stored = [r for job in ("people", "groups") for r in await store.log_records(job)]
        assert sorted(stored, key=lambda r: r["id"]) == ROWS  # attributes: the very JSON text written
        assert viewed == [{k: v for k, v in row.items() if k != "attributes"} for row in ROWS]
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "where",
    [
        {"job": "people"},
        {"job": "groups"},
        {"job": "nobody"},
        {"status": "failed"},
        {"status": "lost-in-transit"},
        {"action": "update"},
        {"source_id": "s1"},
        {"cycle_id": "c1"},
        {"cycle_id": "20261206T010203-a1b2c3", "status": "succeeded"},
        {"job": "people", "source_id": "s9"},
    ],
)
async def test_migrated_records_filter_as_before(url: str, where: dict[str, str]) -> None:
    store = await migrated_store(url)
    try:
        found = await history.query_log(store, history.LogFilter(**where))  # type: ignore[arg-type]
    finally:
        await store.aclose()
    expected = [row["id"] for row in ROWS if all(row[k] == v for k, v in where.items())]
    assert [r["id"] for r in found] == expected


def result(
    op_id: str, source_id: str, *, status: str = "succeeded", attempts: int = 1, **fields: Any
) -> Result:
    values: dict[str, Any] = {
        "op_id": op_id,
        "job": "people",
        "target": "db",
        "cycle_id": "20261206T010203-a1b2c3",
        "source_id": source_id,
        "action": "create",
        "status": status,
        "attempts": attempts,
        "emitted_at": 100.0,
        "completed_at": 100.5,
        "target_id": f"t-{source_id}",
        "applied_hash": "cd" * 16 if status == "succeeded" else None,
        **fields,
    }
    return Result(**values)


async def test_after_migration_a_result_written_again_adds_nothing_and_new_records_come_last(
    url: str,
) -> None:
    store = await migrated_store(url)
    try:
        again = [  # results the old store had logged, one with an op id ending in no number
            result("20261206T010203-a1b2c3-1", "s1"),
            result("20261206T010203-a1b2c3-9", "s9", status="retrying", attempts=1),
            result("op-007", "s4", action="update", cycle_id="c1"),
        ]
        await store.apply_results(again)
        await store.apply_results(again)
        new = result("20261206T010203-a1b2c3-13", "s13")
        await store.apply_results([new, new])
        records = [r async for page in history.iter_log(store, history.LogFilter()) for r in page]
    finally:
        await store.aclose()
    assert [r["id"] for r in records[: len(ROWS)]] == [row["id"] for row in ROWS]
    [added] = records[len(ROWS) :]
    assert added["id"] > ROWS[-1]["id"] and added["op_id"] == new.op_id and added["status"] == "succeeded"


async def test_a_late_result_replaces_the_lost_record_of_a_migrated_store(url: str) -> None:
    [lost] = [row for row in ROWS if row["status"] == "lost-in-transit"]
    store = await migrated_store(url)
    try:
        late = result(lost["op_id"], lost["source_id"], action=lost["action"], cycle_id=lost["cycle_id"])
        await store.apply_results([late], late=[lost["op_id"]])
        records = await history.query_log(store, history.LogFilter(source_id=lost["source_id"]))
    finally:
        await store.aclose()
    assert [(r["op_id"], r["status"]) for r in records] == [
        (row["op_id"], row["status"]) for row in ROWS if row["source_id"] == lost["source_id"] and row != lost
    ] + [(lost["op_id"], "succeeded")]


async def test_records_written_now_read_back_as_written(url: str) -> None:
    sent = {
        "c-1": '{"userName":"zoë","title":"Engineer","company":"Example Corp"}',
        "c-2": '{"userName":"ana","title":"Engineer","company":"Example Corp"}',
        "c-007": '{"note":"\\u2028 é \\"quoted\\"","n":[1,2.5,null,true]}',
        "x": "{}",
    }
    results = [
        result("c-1", "a", cycle_id="c"),
        result("c-2", "b", cycle_id="c", status="failed", error_class="PermanentError", error_message="no"),
        result("c-007", "c", cycle_id="c"),
        result("x", "d", cycle_id="c"),
        result("c-3", "e", cycle_id="c"),  # sent nothing: no attributes
        result("c-" + "9" * 18, "f", cycle_id="c"),  # the largest number an op id's end is stored as
        result("c-" + "9" * 19, "g", cycle_id="c"),
    ]
    async with StateStore(url) as store:
        await store.apply_results(results, sent)
        records = await store.log_records("people")
    assert [(r["op_id"], r["cycle_id"], r["source_id"], r["status"], r["attributes"]) for r in records] == [
        (r.op_id, "c", r.source_id, r.status, sent.get(r.op_id)) for r in results
    ]
    assert records[1]["error_class"] == "PermanentError" and records[1]["error_message"] == "no"


async def test_a_write_that_fails_while_adding_names_is_written_whole_when_tried_again(
    tmp_path: Path,
) -> None:
    # More new names than one statement adds, the last of them refused: the names added before it
    # are rolled back with it, and the retry (the result message comes again) must not take them
    # as there.
    results = [result(f"op-{i:04d}x", f"s{i}") for i in range(600)]
    async with StateStore(state_url(str(tmp_path / "state.db"))) as store:
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON log_names WHEN NEW.name = 'op-0599x' "
                    "BEGIN SELECT RAISE(ABORT, 'injected'); END"
                )
            )
        with pytest.raises(sa.exc.DBAPIError, match="injected"):
            await store.apply_results(results)
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("DROP TRIGGER refuse"))
        await store.apply_results(results)
        records = await store.log_records("people")
    assert [(r["op_id"], r["source_id"]) for r in records] == [(r.op_id, r.source_id) for r in results]


@pytest.mark.parametrize(
    "op_id",
    ["c-1", "c-10", "c-0", "c-01", "c-007", "x", "", "7", "07", "c-" + "9" * 18, "c-" + "9" * 19, "a-1-b"],
)
def test_an_op_id_is_stored_as_parts_that_give_it_back_whole(op_id: str) -> None:
    prefix, number = logrows.split_op_id(op_id)
    assert prefix is not None and number is not None
    assert (prefix if number == logrows.NO_NUMBER else prefix + str(number)) == op_id
    assert number < 2**63


def test_a_dictionary_holds_attribute_names_and_shared_values_but_no_ones_own() -> None:
    records = [
        f'{{"userName":"user{i}","mail":"user{i}@example.org","company":"Example Corp","dept":"{d}"}}'
        for i, d in enumerate(["Sales"] * 5 + ["Legal"] * 3 + ["R&D"] * 4)
    ]
    zdict = logrows.make_zdict(records)
    assert b'"company":"Example Corp"' in zdict and b'"dept":"Sales"' in zdict and b'"dept":"R&D"' in zdict
    assert b"Legal" not in zdict  # three records hold it: fewer than SHARED_BY
    assert b"user" not in zdict.replace(b'"userName":', b"")  # one record's own values never
    packed = [logrows.compress(text, (1, zdict)) for text in records]
    assert all(
        key == 1 and len(data or b"") < len(text) / 2
        for (key, data), text in zip(packed, records, strict=True)
    )
    assert [logrows.decompress(data, zdict) for _key, data in packed] == records
