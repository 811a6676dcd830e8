"""A person's start and end dates (`dates:` of a user job): where each object stands on a given day.

The source gives the dates (`starts_on`, `ends_on`: the names of its attributes), as a day
(`2027-03-01`) or a moment (`2027-03-01T09:00`, with or without its offset); a day or a moment
without an offset is read in the job's `time_zone`. A day begins at its midnight there. Relative to
`now`, a person is:

* `future`: before the start less `prehire_days`: not created yet (an account made already, for a
  start that moved later, is kept disabled);
* `prehire`: within `prehire_days` of the start: created, but disabled until the start;
* `active`: from the start (or with no start), until the end;
* `ended`: from the beginning of the end date: deprovisioned as a person who left the source is
  (disabled, and deleted once `delete_after_days` pass), though the row is still in the export.

Each phase knows when it ends (`Standing.until`), so that the scheduler runs the job then and not
only at the next change of data. A value that is no date fails that object (a `MappingError` naming
the attribute and the forms read), which is then left as it is: never taken for a person who left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.config.validation import as_mapping, check_keys, join, number, string
from common.errors import ConfigError
from engine.mapping.functions.errors import MappingError

Phase = Literal["future", "prehire", "active", "ended"]

FORMS: Final = "a day (2027-03-01) or a moment (2027-03-01T09:00, 2027-03-01T09:00:00+01:00)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """Where one object stands at a moment, and when that ends (Unix seconds; None: never)."""

    phase: Phase
    until: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DateSettings:
    """A user job's `dates:`: the source attributes holding the start and end, and how to read them."""

    starts_on: str | None = None
    ends_on: str | None = None
    time_zone: str = "UTC"
    prehire_days: float = 0.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)  # cached by zoneinfo: one instance per key

    def standing(self, attributes: dict[str, Any], now: float) -> Standing:
        """Where the object with these source `attributes` stands at `now`."""
        start = self._moment(attributes, self.starts_on)
        end = self._moment(attributes, self.ends_on)
        if end is not None and now >= end:
            return Standing(phase="ended", until=None)
        if start is not None:
            created = start - self.prehire_days * 86_400.0
            if now < created:
                return Standing(phase="future", until=created)
            if now < start:
                return Standing(phase="prehire", until=start)
        return Standing(phase="active", until=end)

    def _moment(self, attributes: dict[str, Any], name: str | None) -> float | None:
        if name is None:
            return None
        value = attributes.get(name)
        if value is None or value == "" or value == []:
            return None
        if type(value) is str:  # most: a day, shared by many people (once per object per cycle)
            return _text_moment(name, value, self.time_zone)
        return moment_of(name, value, self.zone)


def moment_of(name: str, value: Any, zone: ZoneInfo) -> float:
    """The Unix time a source value of attribute `name` stands for (a day: its midnight in `zone`);
    `MappingError` naming the attribute and the forms read when it is no date. The value itself is not
    repeated: a date of birth mapped by mistake would reach the log."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = _parsed(name, value.strip())
    else:
        raise MappingError(f"{name}: a {type(value).__name__} is no date; give {FORMS}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


@lru_cache(maxsize=16_384)
def _text_moment(name: str, text: str, time_zone: str) -> float:
    """`moment_of` a text, remembered: parsing it and placing it in its zone took half the planning
    of an unchanged object (tests/bench/plan.py, `dated_unchanged_plan_s`)."""
    return moment_of(name, text, ZoneInfo(time_zone))


def _parsed(name: str, text: str) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day)
        return datetime.fromisoformat(text)
    except ValueError:
        raise MappingError(f"{name}: {len(text)} characters that are no date; give {FORMS}") from None


def next_boundary(current: float | None, candidate: float | None) -> float | None:
    """The earlier of two moments to wake at (None: none)."""
    if candidate is None:
        return current
    return candidate if current is None or candidate < current else current


DATE_KEYS: Final = ("starts_on", "ends_on", "time_zone", "prehire_days")


def parse_dates(path: str, raw: Any, *, object_type: str, deprovision: str | None) -> DateSettings | None:
    """A job's `dates:` (None when absent): names the source attributes, and checks that what they
    ask for can be done (a user job; an end that deprovisions; prehire days with a start)."""
    if raw is None:
        return None
    raw = as_mapping(path, raw)
    check_keys(path, raw, DATE_KEYS)
    if object_type != "user":
        raise ConfigError(path, "applies to user jobs only", "remove `dates:` from this group job")
    starts_on = (
        string(join(path, "starts_on"), raw["starts_on"]) if raw.get("starts_on") is not None else None
    )
    ends_on = string(join(path, "ends_on"), raw["ends_on"]) if raw.get("ends_on") is not None else None
    if starts_on is None and ends_on is None:
        raise ConfigError(
            path, "names no date", "name the source attribute of the start (`starts_on`) or end (`ends_on`)"
        )
    time_zone = string(join(path, "time_zone"), raw.get("time_zone", "UTC"))
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            join(path, "time_zone"),
            f"{time_zone!r} is no time zone known here",
            "give an IANA name, such as Europe/Berlin",
        ) from None
    prehire_days = 0.0
    if raw.get("prehire_days") is not None:
        where = join(path, "prehire_days")
        prehire_days = number(where, raw["prehire_days"], minimum=0)
        if not prehire_days < 36_500:
            raise ConfigError(where, f"{raw['prehire_days']!r} is out of range", "give the days, such as 7")
        if starts_on is None:
            raise ConfigError(where, "needs a start date", "name its source attribute in `starts_on`")
    if ends_on is not None and deprovision == "none":
        raise ConfigError(
            join(path, "ends_on"),
            "would do nothing: a person past the end date is deprovisioned, and this job's "
            "`deprovision` is 'none'",
            "set `deprovision: disable` (or `delete`), or remove `ends_on`",
        )
    return DateSettings(starts_on=starts_on, ends_on=ends_on, time_zone=time_zone, prehire_days=prehire_days)
