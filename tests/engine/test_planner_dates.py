"""The planner with start and end dates (`engine.core.dates`), pure: which operation each phase gets
against each state, when the next phase begins, and a date that cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from engine.cli.report import print_summary
from engine.core.dates import DateSettings, moment_of
from engine.core.planner import Planner, plan_action
from engine.core.snapshot import Snapshot
from engine.mapping.base import attribute_hash
from engine.mapping.functions.errors import MappingError
from engine.model import ACTIVE, DISABLED, CycleSummary, SourceObject, StateEntry
from tests.engine.test_planner import MAPPER

DAY = 86_400.0
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC).timestamp()
DATES = DateSettings(starts_on="start", ends_on="end", time_zone="Europe/Berlin", prehire_days=7)
BERLIN_MIDNIGHT_MARCH_10 = datetime(2027, 3, 9, 23, 0, tzinfo=UTC).timestamp()  # CET is UTC+1


def _obj(start: str = "", end: str = "") -> SourceObject:
    return SourceObject("E1", {"employee_id": "E1", "email": "u1@example.org", "start": start, "end": end})


def _hash() -> str:
    return MAPPER.map(_obj().attributes).hash


def _plan(obj: SourceObject, entry: StateEntry | None, now: float = NOW) -> tuple[Planner, str | None, bool]:
    planner = Planner(
        job="j",
        target="t",
        object_type="user",
        cycle_id="c",
        mapper=MAPPER,
        snapshot=Snapshot.of({obj.source_id: entry} if entry else {}),
        dates=DATES,
        now=now,
    )
    to_plan, _ = planner.prepare([obj])
    op = planner.plan(obj) if to_plan else None
    return planner, (op.action if op else None), bool(op and op.disabled)


def test_a_day_begins_at_its_midnight_in_the_time_zone_and_a_moment_keeps_its_offset() -> None:
    assert moment_of("start", "2027-03-10", DATES.zone) == BERLIN_MIDNIGHT_MARCH_10
    assert moment_of("start", "2027-03-10T09:00:00+00:00", DATES.zone) == BERLIN_MIDNIGHT_MARCH_10 + 10 * 3600
    with pytest.raises(MappingError) as caught:
        moment_of("start", "10/03/2027", DATES.zone)
    assert "start" in str(caught.value) and "10/03/2027" not in str(caught.value)


def test_before_the_prehire_days_nothing_is_created_and_the_job_wakes_when_they_begin() -> None:
    planner, action, _ = _plan(_obj(start="2027-03-10"), None, now=BERLIN_MIDNIGHT_MARCH_10 - 7 * DAY - 1)
    assert action is None and planner.not_started == 1 and planner.seen == 0
    assert planner.next_date == BERLIN_MIDNIGHT_MARCH_10 - 7 * DAY


def test_a_prehire_is_created_disabled_and_wakes_the_job_on_the_start() -> None:
    planner, action, disabled = _plan(_obj(start="2027-03-10"), None, now=BERLIN_MIDNIGHT_MARCH_10 - 7 * DAY)
    assert (action, disabled) == ("create", True)
    assert planner.next_date == BERLIN_MIDNIGHT_MARCH_10


def test_a_prehire_held_disabled_gets_nothing_and_a_change_an_update_that_keeps_it_disabled() -> None:
    prehire = _obj(start="2027-03-10")
    held = StateEntry("t1", _hash(), DISABLED)
    assert _plan(prehire, held)[1:] == (None, False)
    changed = StateEntry("t1", attribute_hash({"old": 1}), DISABLED)
    assert _plan(prehire, changed)[1:] == ("update", True)


def test_an_account_enabled_before_its_start_is_disabled_without_its_values_sent_again() -> None:
    _, action, _ = _plan(_obj(start="2027-03-10"), StateEntry("t1", _hash(), ACTIVE))
    assert action == "disable"
    # a start moved later than the prehire days: the account made already is kept, disabled
    _, action, _ = _plan(_obj(start="2027-06-01"), StateEntry("t1", _hash(), ACTIVE))
    assert action == "disable"


def test_on_the_start_date_the_account_is_enabled() -> None:
    entry = StateEntry("t1", _hash(), DISABLED)
    _, action, disabled = _plan(_obj(start="2027-03-10"), entry, now=BERLIN_MIDNIGHT_MARCH_10)
    assert (action, disabled) == ("update", False)


def test_past_the_end_date_an_object_is_left_unseen_to_be_deprovisioned_as_a_leaver() -> None:
    entry = StateEntry("t1", _hash(), ACTIVE)
    planner, action, _ = _plan(_obj(end="2027-03-01"), entry)
    assert action is None and planner.ended == 1
    planner.snapshot.add_entries({"E1": entry})
    assert [op.action for op in planner.plan_missing()] == ["disable"]


def test_a_date_that_cannot_be_read_fails_the_object_which_is_not_deprovisioned() -> None:
    entry = StateEntry("t1", _hash(), ACTIVE)
    planner = Planner(
        job="j",
        target="t",
        object_type="user",
        cycle_id="c",
        mapper=MAPPER,
        snapshot=Snapshot.of({"E1": entry}),
        dates=DATES,
        now=NOW,
    )
    obj = _obj(end="soon")
    planner.prepare([obj])
    with pytest.raises(MappingError):
        planner.plan(obj)
    assert planner.unseen() == []


def test_plan_action_for_an_object_held_disabled() -> None:
    assert plan_action(None, "h", disabled=True) == "create"
    assert plan_action(StateEntry("t", "h", ACTIVE), "h", disabled=True) == "disable"
    assert plan_action(StateEntry("t", "h", DISABLED), "h", disabled=True) is None
    assert plan_action(StateEntry("t", "old", DISABLED), "h", disabled=True) == "update"


def test_the_summary_table_says_who_is_before_the_start_and_past_the_end() -> None:
    console = Console(record=True, width=120)
    dated = CycleSummary(cycle_id="c", job="people", status="succeeded", read=10, not_started=3, ended=2)
    print_summary(console, [dated])
    lines = console.export_text().splitlines()
    assert any(line.split() == ["before", "start", "3"] for line in lines)
    assert any(line.split() == ["past", "end", "date", "2"] for line in lines)
    console = Console(record=True, width=120)
    print_summary(console, [CycleSummary(cycle_id="c", job="people", status="succeeded", read=10)])
    assert "before start" not in console.export_text()  # a job without dates shows no such rows
