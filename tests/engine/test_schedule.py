"""A job's schedule says when its next cycle is due: after an interval, or at the next cron match (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from common.errors import ConfigError
from engine.core.schedule import Schedule, parse_schedule

PATH = "jobs[0].schedule"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_no_schedule_means_run_only_when_triggered() -> None:
    assert parse_schedule(PATH, None) is None


@pytest.mark.parametrize(
    ("raw", "interval_s"),
    [
        ({"interval_s": 3600}, 3600.0),
        ({"interval_s": 1.5}, 1.5),
        ({"interval": "90s"}, 90.0),
        ({"interval": "15m"}, 900.0),
        ({"interval": "2h"}, 7200.0),
        ({"interval": "1d"}, 86400.0),
        ({"interval": " 1.5 m "}, 90.0),
    ],
)
def test_intervals_are_read_in_seconds(raw: dict[str, Any], interval_s: float) -> None:
    assert parse_schedule(PATH, raw) == Schedule(interval_s=interval_s)


def test_interval_next_is_one_interval_later() -> None:
    schedule = parse_schedule(PATH, {"interval": "15m"})
    assert schedule is not None
    assert schedule.next_after(at("2024-01-31 23:50:00")) == at("2024-02-01 00:05:00")


@pytest.mark.parametrize(
    ("cron", "moment", "due"),
    [
        ("*/5 * * * *", "2024-01-01 00:02:00", "2024-01-01 00:05:00"),
        ("*/5 * * * *", "2024-01-01 00:05:00", "2024-01-01 00:10:00"),  # strictly after
        ("*/5 * * * *", "2024-01-01 00:04:59.999", "2024-01-01 00:05:00"),
        ("0 6 * * 1-5", "2024-03-08 07:00:00", "2024-03-11 06:00:00"),  # Friday, after 06:00 -> Monday
        ("30 2 1 * *", "2024-12-15 00:00:00", "2025-01-01 02:30:00"),
        ("0 0 29 2 *", "2024-03-01 00:00:00", "2028-02-29 00:00:00"),
    ],
)
def test_cron_next_is_the_next_match_in_utc(cron: str, moment: str, due: str) -> None:
    schedule = parse_schedule(PATH, {"cron": cron})
    assert schedule is not None
    assert schedule.next_after(at(moment)) == at(due)


def test_next_after_takes_any_timezone_and_answers_in_utc() -> None:
    schedule = Schedule(cron="0 9 * * *")
    paris_summer = timezone(timedelta(hours=2))
    due = schedule.next_after(datetime(2024, 7, 1, 10, 30, tzinfo=paris_summer))  # 08:30 UTC
    assert due == at("2024-07-01 09:00:00")
    assert due.utcoffset() == timedelta(0)
    assert Schedule(interval_s=60).next_after(datetime(2024, 7, 1, 10, 30, tzinfo=paris_summer)) == at(
        "2024-07-01 08:31:00"
    )


def test_next_after_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule(interval_s=60).next_after(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("raw", "path", "problem", "fix"),
    [
        (
            {"cron": "61 * * * *"},
            f"{PATH}.cron",
            "the minute field '61' is not valid (it takes 0-59)",
            "five",
        ),
        ({"cron": "* 24 * * *"}, f"{PATH}.cron", "the hour field '24' is not valid", "five"),
        ({"cron": "* * * *"}, f"{PATH}.cron", "it has 4 fields, not 5", "five fields"),
        ({"cron": "0 * * * * *"}, f"{PATH}.cron", "a field for seconds is not supported", "five"),
        ({"cron": "0 0 30 2 *"}, f"{PATH}.cron", "matches no date at all", "five"),
        ({"cron": ""}, f"{PATH}.cron", "expected a non-empty string", None),
        ({"interval_s": 0.5}, f"{PATH}.interval_s", "at least 1 second, got 0.5", "longer"),
        ({"interval": "0s"}, f"{PATH}.interval", "at least 1 second, got '0s'", "longer"),
        ({"interval_s": 1e300}, f"{PATH}.interval_s", "longer than a year", "shorter interval"),
        ({"interval": "400d"}, f"{PATH}.interval", "longer than a year", "no schedule"),
        ({"interval_s": 366 * 86_400 + 1}, f"{PATH}.interval_s", "longer than a year", "cron"),
        ({"interval": "15 minutes"}, f"{PATH}.interval", "with a unit s, m, h or d", '"15m"'),
        ({"interval": 900}, f"{PATH}.interval", "with a unit s, m, h or d", "interval_s"),
        ({"interval_s": "1h"}, f"{PATH}.interval_s", "expected a number", None),
        ({"interval": "1h", "cron": "0 * * * *"}, PATH, "has both `interval:` and `cron:`", "keep one"),
        ({"interval": "1h", "interval_s": 3600}, PATH, "has both", "keep one"),
        ({}, PATH, "is empty", "remove `schedule:`"),
        ("15m", PATH, "expected a mapping, got str", 'interval: "15m"'),
        ({"crom": "* * * * *"}, f"{PATH}.crom", "unknown key", "did you mean 'cron'?"),
    ],
)
def test_schedule_errors_name_the_path_and_the_fix(
    raw: Any, path: str, problem: str, fix: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_schedule(PATH, raw)
    assert caught.value.path == path
    assert problem in caught.value.problem
    if fix is not None:
        assert caught.value.fix is not None and fix in caught.value.fix


def test_a_schedule_is_either_an_interval_or_a_cron() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Schedule()
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(interval_s=60, cron="* * * * *")
    with pytest.raises(ValueError, match="minute field"):
        Schedule(cron="99 * * * *")
