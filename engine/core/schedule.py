"""When a job's next cycle is due: a fixed interval or a cron expression.

A job without a schedule runs only when something triggers it (the CLI, the API, a pushed change).
This module only computes moments; the loop that sleeps until them lives with the CLI.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterError, croniter

from common.config.validation import check_keys, join, number, string
from common.errors import ConfigError

KEYS = ("interval_s", "interval", "cron")
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 366 * 86_400.0
"""A year: a longer interval is a typo (and past about 10^14 s no date can hold the next cycle)."""
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CRON_RANGES = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31",
    "month": "1-12 or jan-dec",
    "day-of-week": "0-6 or sun-sat",
}
CRON_FIELDS = " ".join(CRON_RANGES)

_INTERVAL = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*")
_CRON_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)  # a leap year, so February 29 is found
_EXAMPLES = 'e.g. `interval: "15m"`, `interval_s: 3600` or `cron: "*/5 * * * *"`'


@dataclass(frozen=True, slots=True)
class Schedule:
    """Either `interval_s` (seconds between cycles) or `cron` (five fields, read in UTC)."""

    interval_s: float | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if (self.interval_s is None) == (self.cron is None):
            raise ValueError("a schedule needs exactly one of interval_s and cron")
        if self.interval_s is not None and not _in_range(self.interval_s):
            raise ValueError(
                f"interval_s must be from {MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g}, got {self.interval_s}"
            )
        if self.cron is not None:
            problem = _cron_problem(self.cron)
            if problem:
                raise ValueError(f"cron {self.cron!r}: {problem}")

    def next_after(self, moment: datetime) -> datetime:
        """The first due moment strictly after `moment` (timezone-aware), in UTC."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"moment must be timezone-aware, got naive {moment.isoformat()}")
        moment = moment.astimezone(UTC)
        if self.interval_s is not None:
            return moment + timedelta(seconds=self.interval_s)
        assert self.cron is not None
        due: datetime = croniter(self.cron, moment).get_next(datetime)
        return due.astimezone(UTC)

    def __str__(self) -> str:
        if self.interval_s is not None:
            return f"every {self.interval_s:g}s"
        return f"cron {self.cron!r} (UTC)"


def parse_schedule(path: str, raw: Any) -> Schedule | None:
    """Read a job's `schedule:`; None (or no key) means the job runs only when triggered."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"expected a mapping, got {type(raw).__name__}", _EXAMPLES)
    check_keys(path, raw, KEYS)
    given = [key for key in KEYS if key in raw]
    if not given:
        raise ConfigError(path, "is empty", f"{_EXAMPLES}, or remove `schedule:` to run only when triggered")
    if len(given) > 1:
        keys = " and ".join(f"`{key}:`" for key in given)
        raise ConfigError(path, f"has both {keys}", "keep one: a schedule is an interval or a cron")
    key = given[0]
    if key == "cron":
        return Schedule(cron=_cron(join(path, key), raw[key]))
    if key == "interval":
        interval_s = parse_duration(join(path, key), raw[key])
    else:
        interval_s = number(join(path, key), raw[key])
    if not _long_enough(interval_s):
        raise ConfigError(
            join(path, key),
            f"must be a finite time of at least {MIN_INTERVAL_S:g} second, got {raw[key]!r}",
            "use a longer interval",
        )
    if interval_s > MAX_INTERVAL_S:
        raise ConfigError(
            join(path, key),
            f"is longer than a year ({MAX_INTERVAL_S:g} seconds), got {raw[key]!r}",
            'use a shorter interval, a cron such as "0 6 1 1 *" for once a year, or no schedule',
        )
    return Schedule(interval_s=interval_s)


def _long_enough(interval_s: float) -> bool:
    return math.isfinite(interval_s) and interval_s >= MIN_INTERVAL_S


def _in_range(interval_s: float) -> bool:
    return _long_enough(interval_s) and interval_s <= MAX_INTERVAL_S


def parse_duration(path: str, raw: Any) -> float:
    """Seconds from a duration such as \"90s\", \"15m\", \"1h\" or \"1d\"."""
    text = raw if isinstance(raw, str) else None
    match = _INTERVAL.fullmatch(text) if text is not None else None
    if match is None:
        raise ConfigError(
            path,
            f"expected a number with a unit s, m, h or d, got {raw!r}",
            'e.g. "90s", "15m", "1h" or "1d"; or give seconds as `interval_s:`',
        )
    return float(match[1]) * UNIT_SECONDS[match[2]]


def _cron(path: str, raw: Any) -> str:
    expression = " ".join(string(path, raw).split())
    problem = _cron_problem(expression)
    if problem:
        raise ConfigError(
            path,
            f"{raw!r} is not a valid cron expression: {problem}",
            f'use five fields, {CRON_FIELDS}, read in UTC: e.g. "0 6 * * 1-5" is 06:00 on weekdays',
        )
    return expression


def _cron_problem(expression: str) -> str | None:
    fields = expression.split()
    if len(fields) != 5:
        extra = " (a field for seconds is not supported)" if len(fields) == 6 else ""
        return f"it has {len(fields)} fields, not 5{extra}"
    try:
        croniter(expression)
    except (CroniterError, ValueError):
        # croniter does not say which field is wrong: try each alone, the others left at "*".
        for index, (name, allowed) in enumerate(CRON_RANGES.items()):
            alone = " ".join(field if i == index else "*" for i, field in enumerate(fields))
            try:
                croniter(alone)
            except (CroniterError, ValueError):
                return f"the {name} field {fields[index]!r} is not valid (it takes {allowed})"
        return "its fields do not go together"
    try:
        croniter(expression, _CRON_CHECK_FROM).get_next(datetime)
    except CroniterError:
        return "it matches no date at all (like February 30)"
    return None
