"""The date functions: CDate, DateAdd, DateDiff, DateFromNum, NumFromDate, FormatDateTime and Now.

Dates are aware `datetime` values; DateFromNum and NumFromDate read and write Active Directory's
FILETIME (100-nanosecond steps since 1601). Intervals are VB's: yyyy, q, m, d, ww, h, n, s.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.mapping.dotnet import date_format, parse_datetime
from engine.mapping.functions.errors import ArgumentError, MappingError
from engine.mapping.functions.values import DYNAMIC, as_datetime, integer, number, text
from engine.mapping.limits import LimitError, quote

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_FILETIME_NEVER = 0x7FFFFFFFFFFFFFFF
_FILETIME_MAX = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _FILETIME_EPOCH) // timedelta(
    microseconds=1
) * 10 + 9

_INTERVALS = ("yyyy", "q", "m", "d", "ww", "h", "n", "s")
_DAY_OR_LONGER = frozenset({"yyyy", "q", "m", "d", "ww"})


def _interval(value: Any) -> str:
    name = text(value)
    if name is None or name.lower() not in _INTERVALS:
        raise MappingError(f"interval must be one of {', '.join(_INTERVALS)}, got {quote(value)}")
    return name.lower()


def check_interval(consts: tuple[Any, ...]) -> None:
    if consts[0] is not DYNAMIC:
        try:
            _interval(consts[0])
        except MappingError as exc:
            raise ArgumentError(0, exc.problem) from None


def _add_months(value: datetime, months: int) -> datetime:
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


def date_add(interval: Any, amount: Any, when: Any) -> datetime | None:
    kind = _interval(interval)
    n = number(amount, "value")
    moment = as_datetime(when, "dateTime")
    if moment is None or n is None:
        return None
    n = int(n)
    try:
        if kind in ("yyyy", "q", "m"):
            return _add_months(moment, n * {"yyyy": 12, "q": 3, "m": 1}[kind])
        unit = {"d": "days", "ww": "weeks", "h": "hours", "n": "minutes", "s": "seconds"}[kind]
        return moment + timedelta(**{unit: n})
    except (OverflowError, ValueError):
        raise LimitError(
            f"adding {quote(n)} ({kind}) to {quote(text(moment))} gives a date outside the years 1 to 9999"
        ) from None


def _week_start(value: datetime) -> datetime:
    day = value.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=(value.weekday() + 1) % 7)  # weeks start on Sunday, as in VB


def date_diff(interval: Any, first: Any, second: Any) -> int | None:
    """VB's DateDiff: calendar counts for years, quarters, months and weeks; truncated spans otherwise."""
    kind = _interval(interval)
    a, b = as_datetime(first, "date1"), as_datetime(second, "date2")
    if a is None or b is None:
        return None
    a, b = a.astimezone(UTC), b.astimezone(UTC)
    if kind == "yyyy":
        return b.year - a.year
    if kind == "q":
        return (b.year - a.year) * 4 + (b.month - 1) // 3 - (a.month - 1) // 3
    if kind == "m":
        return (b.year - a.year) * 12 + b.month - a.month
    if kind == "ww":
        return (_week_start(b) - _week_start(a)).days // 7
    unit = {"d": timedelta(days=1), "h": timedelta(hours=1), "n": timedelta(minutes=1)}
    return int((b - a) / unit.get(kind, timedelta(seconds=1)))


def date_from_num(value: Any) -> datetime | None:
    n = integer(value, "value")
    if n is None or n == 0 or n >= _FILETIME_NEVER:
        return None  # 0 and the largest value mean "never" in Active Directory
    if n < 0:
        raise MappingError(f"value must not be negative, got {quote(n)}")
    if n > _FILETIME_MAX:
        raise LimitError(f"value {n} is a date after the year 9999 (at most {_FILETIME_MAX})")
    return _FILETIME_EPOCH + timedelta(microseconds=n // 10)


def num_from_date(value: Any) -> int | None:
    moment = as_datetime(value, "value")
    if moment is None:
        return None
    return (moment - _FILETIME_EPOCH) // timedelta(microseconds=1) * 10


def format_date_time(source: Any, *rest: Any) -> Any:
    # dateTimeStyles (.NET parsing flags) is accepted and ignored: white space around the date is allowed.
    _styles, in_format, out_format = rest if len(rest) == 3 else (None, *rest)
    if source.__class__ is list:
        return [format_date_time(v, *rest) for v in source if v is not None]
    if source is None:
        return None
    out = text(out_format)
    if not out:
        raise MappingError("outputFormat is empty")
    if source.__class__ is datetime:
        moment = source
    else:
        raw = text(source) or ""
        fmt = text(in_format)
        try:
            moment = date_format(fmt).parse(raw) if fmt else parse_datetime(raw)
        except LimitError:
            raise
        except ValueError as exc:
            raise MappingError(str(exc)) from None
    return date_format(out).format(moment)


def cdate(value: Any) -> Any:
    if value.__class__ is list:
        return [as_datetime(v, "expression") for v in value]
    return as_datetime(value, "expression")


def now() -> datetime:
    return datetime.now(UTC)


def absorbs_clock_in_days(consts: tuple[Any, ...]) -> bool:
    return consts[0] is not DYNAMIC and (text(consts[0]) or "").lower() in _DAY_OR_LONGER


def absorbs_clock_in_date_format(consts: tuple[Any, ...]) -> bool:
    out = consts[-1]
    return out is not DYNAMIC and not re.search(r"[hHmsfFtT]|^[oOsSuU]$", text(out) or "")
