"""Start and end dates (`dates:`) against a real scim2-server and a real slapd, with a clock the test
moves (no waiting for days): a joiner whose start is 10 days ahead is not in the target until 7 days
ahead, then is there disabled, and is enabled on the day, with the same id; a leaver still in the
export is disabled on the end date and deleted once the grace has passed. The scheduler wakes at each
of these moments, and a date that cannot be read fails its row and leaves its account as it is."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from common.errors import ConfigError
from engine.config import parse_engine_config
from engine.pipeline.scheduler import Scheduler
from tests.databases import private_database
from tests.integration.pipeline import Interposer, pipeline, target_rows
from tests.integration.test_ldap_cycle import PEOPLE_MAPPINGS
from tests.integration.test_ldap_cycle import people as ldap_people
from tests.integration.test_ldap_cycle import person as ldap_person
from tests.integration.test_ldap_cycle import target as ldap_target
from tests.integration.test_leavers import config as leavers_config
from tests.integration.test_leavers import users
from tests.integration.test_rule_groups import write_people
from tests.integration.test_scim_groups import person, write_sources
from tests.integration.test_sql_source import cycle_config as sql_cycle_config
from tests.integration.test_sql_source import fill_people, pg
from tests.scim_server import ScimServer
from tests.slapd import Slapd
from workers.worker import Worker

DAY = 86_400.0
ZONE = "Europe/Berlin"
DATES = {"starts_on": "start_date", "ends_on": "end_date", "time_zone": ZONE, "prehire_days": 7}


def day_ahead(days: int) -> date:
    return datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=days)


def midnight(day: date) -> float:
    """When `day` begins in the job's time zone."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(ZONE)).timestamp()


class Clock:
    """The runner's and the scheduler's clock, set to a moment the test names."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self) -> float:
        return time.time() if self.at is None else self.at

    def now(self) -> datetime:
        return datetime.fromtimestamp(self(), UTC)


async def test_a_joiner_appears_disabled_prehire_days_ahead_and_is_enabled_on_the_day(
    tmp_path: Path, scim: ScimServer
) -> None:
    start = day_ahead(10)
    joiner = person(9, start_date=start.isoformat())
    staff = [person(i) for i in range(3)]
    write_sources(tmp_path, [*staff, joiner], [])
    clock = Clock()
    raw = leavers_config(tmp_path, scim.url, dates=DATES)
    del raw["jobs"][0]["delete_after_days"]  # no daily wake for a grace: the scheduler wakes for dates alone
    async with pipeline(tmp_path, raw) as p:
        p.runner.clock = clock
        (job,) = p.runner.config.jobs
        scheduler = Scheduler(p.runner, [job], clock=clock.now)

        first = await p.runner.run_cycle(job)
        assert (first.created, first.failed, first.not_started) == (3, 0, 1), first
        assert first.counts()["not_started"] == 1
        assert "E00009" not in await users(scim)
        created_at = midnight(start) - 7 * DAY
        assert p.runner.date_due["people"] == created_at
        wake_s = await scheduler.delay_s(job, clock.now())
        assert wake_s is not None and abs(wake_s - (created_at - time.time())) < 5

        clock.at = created_at - 60  # a minute early: still not there
        assert (await p.runner.run_cycle(job)).created == 0
        assert "E00009" not in await users(scim)

        clock.at = created_at + 60  # 7 days ahead: created, disabled
        prehire = await p.runner.run_cycle(job)
        assert (prehire.created, prehire.updated, prehire.failed) == (1, 0, 0), prehire
        target_id, active = (await users(scim))["E00009"]
        assert active is False
        assert p.runner.date_due["people"] == midnight(start)
        wake_s = await scheduler.delay_s(job, clock.now())
        assert wake_s == midnight(start) - clock.at

        write_sources(tmp_path, [*staff, {**joiner, "title": "Team Lead"}], [])
        changed = await p.runner.run_cycle(job)  # a change before the start: applied, still disabled
        assert (changed.updated, changed.created) == (1, 0), changed
        assert (await users(scim))["E00009"] == (target_id, False)
        clock.at = midnight(start) - 60
        assert (await p.runner.run_cycle(job)).updated == 0

        clock.at = midnight(start) + 60  # the day: enabled, the same user
        day_one = await p.runner.run_cycle(job)
        assert (day_one.updated, day_one.created, day_one.disabled) == (1, 0, 0), day_one
        assert (await users(scim))["E00009"] == (target_id, True)
        assert p.runner.date_due["people"] is None
        again = await p.runner.run_cycle(job)
        assert (again.updated, again.created) == (0, 0)

    assert {ext: active for ext, (_, active) in (await users(scim)).items()} == {
        "E00000": True,
        "E00001": True,
        "E00002": True,
        "E00009": True,
    }


class AppliedThenStopped(Interposer):
    """Applies the operations, then never answers: the engine stops before it hears a result. Its
    worker is given no grace to finish the call it is in (`stopped_once_applied`)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.applied = asyncio.Event()

    async def interpose(self, ops: Any) -> Any:
        await self.inner.apply(ops)
        self.applied.set()
        await asyncio.Event().wait()


async def stopped_once_applied(tmp_path: Path, raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A cycle of `raw`'s one job, its engine stopped once the connector applied the first batch and
    before any result of it is heard. The worker lets the call it is stuck in go after 0.2 s, not after
    the 10 s a real one has."""
    monkeypatch.setattr(Worker.stop, "__defaults__", (0.2,))
    stalled: list[AppliedThenStopped] = []

    def wrap(connector: Any) -> AppliedThenStopped:
        stalled.append(AppliedThenStopped(connector))
        return stalled[-1]

    async with pipeline(tmp_path, raw, wrap=wrap) as p:
        (job,) = p.runner.config.jobs
        cycle = asyncio.create_task(p.runner.run_cycle(job))
        await asyncio.wait_for(stalled[0].applied.wait(), 30)
        cycle.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cycle


async def test_prehires_created_by_an_engine_stopped_before_their_results_end_disabled_once_each(
    tmp_path: Path, scim: ScimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = day_ahead(3)
    joiners = [person(i, start_date=start.isoformat()) for i in range(4)]
    write_sources(tmp_path, joiners, [])
    raw = leavers_config(tmp_path, scim.url, dates=DATES)
    await stopped_once_applied(tmp_path, raw, monkeypatch)
    assert {ext: active for ext, (_, active) in (await users(scim)).items()} == dict.fromkeys(
        ("E00000", "E00001", "E00002", "E00003"), False
    )
    async with pipeline(tmp_path, raw) as p:  # the next engine: no result known, so planned again
        (job,) = p.runner.config.jobs
        again = await p.runner.run_cycle(job)
        assert (again.created, again.failed) == (4, 0), again
        assert (await p.runner.run_cycle(job)).changed == 0
        states = {s: (await p.state.entry("people", s)).state for s in ("E00000", "E00003")}  # type: ignore[union-attr]
    held = await users(scim)
    assert {ext: active for ext, (_, active) in held.items()} == dict.fromkeys(
        ("E00000", "E00001", "E00002", "E00003"), False
    )
    assert states == dict.fromkeys(("E00000", "E00003"), "disabled")


async def test_a_leaver_still_in_the_export_is_disabled_on_the_end_date_and_deleted_after_the_grace(
    tmp_path: Path, scim: ScimServer
) -> None:
    end = day_ahead(5)
    people = [person(0), person(1, end_date=end.isoformat()), person(2, end_date=day_ahead(400).isoformat())]
    write_sources(tmp_path, people, [])
    clock = Clock()
    async with pipeline(tmp_path, leavers_config(tmp_path, scim.url, dates=DATES)) as p:
        p.runner.clock = clock
        (job,) = p.runner.config.jobs
        assert (await p.runner.run_cycle(job)).created == 3
        ids = {ext: target_id for ext, (target_id, _) in (await users(scim)).items()}
        assert p.runner.date_due["people"] == midnight(end)

        clock.at = midnight(end) + 60
        ended = await p.runner.run_cycle(job)
        assert (ended.disabled, ended.deleted, ended.updated, ended.ended) == (1, 0, 0, 1), ended
        assert (await users(scim))["E00001"] == (ids["E00001"], False)

        clock.at = midnight(end) + 31 * DAY  # past the grace of 30 days
        gone = await p.runner.run_cycle(job)
        assert (gone.deleted, gone.created) == (1, 0), gone
        assert (await p.runner.run_cycle(job)).created == 0  # the row stays in the export: not back

    held = await users(scim)
    assert set(held) == {"E00000", "E00002"}
    assert all(active for _, active in held.values())


async def test_a_date_that_cannot_be_read_fails_its_row_and_leaves_its_account_as_it_is(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(0), person(1, end_date=day_ahead(30).isoformat())]
    write_sources(tmp_path, people, [])
    async with pipeline(tmp_path, leavers_config(tmp_path, scim.url, dates=DATES)) as p:
        (job,) = p.runner.config.jobs
        await p.runner.run_cycle(job)
        ids = await users(scim)
        write_sources(tmp_path, [people[0], {**people[1], "end_date": "next Friday"}], [])
        bad = await p.runner.run_cycle(job)
        assert (bad.failed, bad.disabled, bad.deleted, bad.updated) == (1, 0, 0, 0), bad
        (record,) = [r for r in await p.state.log_records("people") if r["status"] == "failed"]
        assert record["source_id"] == "E00001"
        assert "end_date" in record["error_message"] and "2027-03-01" in record["error_message"]
        assert "next Friday" not in record["error_message"]
    assert await users(scim) == ids


async def test_a_prehire_is_created_disabled_in_a_directory(tmp_path: Path, slapd: Slapd) -> None:
    start = day_ahead(3)
    rows = [{**ldap_person(0), "start_date": ""}, {**ldap_person(1), "start_date": start.isoformat()}]
    write_people(tmp_path, rows)
    raw = {
        "engine": {"batch_size": 50, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "employee_id"},
                "target": "directory",
                "mappings": PEOPLE_MAPPINGS,
                "dates": DATES,
            }
        ],
        "targets": [ldap_target(slapd)],
    }
    clock = Clock()
    async with pipeline(tmp_path, raw) as p:
        p.runner.clock = clock
        (job,) = p.runner.config.jobs
        assert (await p.runner.run_cycle(job)).created == 2
        held = ldap_people(slapd)
        assert held["E00001"].get("employeetype") == ["disabled"]
        assert held["E00000"].get("employeetype", []) == []
        clock.at = midnight(start) + 60
        assert (await p.runner.run_cycle(job)).updated == 1
    assert ldap_people(slapd)["E00001"].get("employeetype", []) == []


@pytest.mark.parametrize(
    ("dates", "field", "said"),
    [
        ({"starts_on": "start", "time_zone": "Mars/Olympus"}, "jobs[0].dates.time_zone", "IANA name"),
        ({"ends_on": "end", "prehire_days": 7}, "jobs[0].dates.prehire_days", "starts_on"),
        ({"time_zone": "UTC"}, "jobs[0].dates", "starts_on"),
        ({"starts_on": "start", "begins": "x"}, "jobs[0].dates", "begins"),
    ],
)
def test_wrong_dates_name_the_field_and_the_fix(
    tmp_path: Path, dates: dict[str, Any], field: str, said: str
) -> None:
    raw = leavers_config(tmp_path, "http://127.0.0.1:1/scim/v2", dates=dates)
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert field in str(caught.value) and said in str(caught.value)


def test_an_end_date_needs_a_job_that_deprovisions(tmp_path: Path) -> None:
    raw = leavers_config(tmp_path, "http://127.0.0.1:1/scim/v2", dates={"ends_on": "end"}, deprovision="none")
    del raw["jobs"][0]["delete_after_days"]
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert "jobs[0].dates.ends_on" in str(caught.value) and "deprovision: disable" in str(caught.value)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with private_database("roster_dates") as url:
        yield url


@pytest.mark.postgres
async def test_an_incremental_source_is_read_whole_when_an_end_date_is_reached(
    pg_url: str, tmp_path: Path
) -> None:
    """No row changes on the day a person's end date comes: the cycle due then reads the whole table,
    where an incremental read (rows changed since the watermark) would see nobody."""
    await fill_people(pg_url, 5)
    end = day_ahead(2)
    await pg(
        pg_url,
        "ALTER TABLE people ADD COLUMN end_date date",
        f"UPDATE people SET end_date = '{end.isoformat()}' WHERE employee_id = 'E0002'",
    )
    raw = sql_cycle_config(tmp_path, pg_url)
    raw["jobs"][0]["dates"] = {"ends_on": "end_date", "time_zone": ZONE}
    clock = Clock()
    async with pipeline(tmp_path, raw) as p:
        p.runner.clock = clock
        (job,) = p.runner.config.jobs
        first = await p.runner.run_cycle(job)
        assert (first.read, first.created) == (5, 5), first
        assert (await p.runner.run_cycle(job)).read <= 1  # incremental: the watermark's row at most
        clock.at = midnight(end) + 60
        ended = await p.runner.run_cycle(job)
        assert (ended.read, ended.disabled) == (5, 1), ended
        assert (await p.runner.run_cycle(job)).read <= 1  # incremental again: no date to come
    rows = await target_rows(f"sqlite:///{tmp_path / 'accounts.db'}")
    assert {key: int(row["active"]) for key, row in rows.items()} == {
        "E0001": 1,
        "E0002": 0,
        "E0003": 1,
        "E0004": 1,
        "E0005": 1,
    }
