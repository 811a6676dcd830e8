"""The expression functions, by name: arity, signature, volatility and implementation.

Names, argument order and 1-based positions follow Microsoft's "Reference for writing expressions for
attribute mappings", so an expression copied from the cloud product gives the same result here. Values
are None (absent), str, int, float, bool, `datetime` (from CDate, Now, DateAdd, DateFromNum; shown as
`M/d/yyyy h:mm:ss tt` in UTC, like the product) or a list (a multi-valued attribute). String functions
apply to each value of a list. Where the documentation is silent, a null input gives a null output, so
`Coalesce` and a mapping's `default` can still step in.

A function is *eager* (`impl` gets the argument values) or *built* (`build` gets the argument
evaluators and the arguments known at parse time, for short-circuiting and for choosing a form once).
The parser (`expression.py`) checks arity and calls `check`/`build`; nothing here knows the syntax. The
.NET date formats and regular expressions that some functions take are translated by `dotnet.py`.
"""

from __future__ import annotations

import base64
import calendar
import operator
import re
import secrets
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import Any, Final, Literal

from common.errors import RosterError
from engine.mapping.dotnet import compile_regex, date_format, format_utc, parse_datetime, replacement_template

Evaluator = Callable[[Mapping[str, Any]], Any]
Volatility = Literal["random", "clock"] | None


class MappingError(RosterError):
    """An expression cannot be evaluated for one object: that object fails, not the cycle."""

    def __init__(self, problem: str, *, function: str | None = None, column: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.function = function
        self.column = column
        self.target: str | None = None

    def __str__(self) -> str:
        where = f"{self.function} at column {self.column}: " if self.function else ""
        return f"{self.target}: {where}{self.problem}" if self.target else f"{where}{self.problem}"


class ArgumentError(Exception):
    """A parse-time problem with one argument (or the call, when `index` is None)."""

    def __init__(self, index: int | None, problem: str) -> None:
        super().__init__(problem)
        self.index = index
        self.problem = problem


class OmitFlow(Exception):
    """Raised by IgnoreFlowIfNullOrEmpty; the expression then evaluates to `OMIT`."""


class _Omit:
    __slots__ = ()

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()
"""The value of an expression whose attribute must be left out of the flow (IgnoreFlowIfNullOrEmpty).

Deliberately not JSON-serializable: a mapper that forgets to drop it fails loudly instead of sending it.
"""


class _Dynamic:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DYNAMIC"


DYNAMIC: Final = _Dynamic()
"""In the `consts` given to `check`/`build`: this argument is only known per object."""


class UniqueCandidates:
    """What SelectUniqueValue evaluates to: the candidate values, best first.

    Uniqueness can only be checked in the target, so the engine sends the candidates and the worker
    resolves them: it tries each in order (matching on the target attribute, as it matches objects)
    and writes the first one that no other object holds; when every one is taken the operation fails
    permanently ("all unique candidates taken"), as the product escrows the entry. `wire()` is the form
    meant for the operation's attributes.
    """

    __slots__ = ("values",)

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values

    def wire(self) -> dict[str, list[str]]:
        return {"$unique": list(self.values)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UniqueCandidates) and other.values == self.values

    def __hash__(self) -> int:
        return hash(self.values)

    def __repr__(self) -> str:
        return f"UniqueCandidates({self.values!r})"


@dataclass(frozen=True, slots=True)
class Function:
    """One function of the expression language."""

    name: str
    params: str
    min_args: int
    max_args: int | None
    impl: Callable[..., Any] | None = None
    build: Callable[[tuple[Evaluator, ...], tuple[Any, ...]], Evaluator] | None = None
    check: Callable[[tuple[Any, ...]], None] | None = None
    volatile: Volatility = None
    absorbs_clock: Callable[[tuple[Any, ...]], bool] | None = None
    """True when the result changes far less often than a clock argument (DateDiff in days)."""

    @property
    def signature(self) -> str:
        return f"{self.name}{self.params}"


# --- values -----------------------------------------------------------------------------------------


def text(value: Any) -> str | None:
    """A single value as the product prints it; None stays None, a list is an error."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if cls is bool:
        return "True" if value else "False"
    if cls is int:
        return str(value)
    if cls is float:
        return str(int(value)) if value.is_integer() else repr(value)
    if cls is datetime:
        return format_utc(value)
    if cls is list:
        raise MappingError(f"expected one value, got a list of {len(value)}")
    return str(value)


def number(value: Any, what: str, kind: str = "a number") -> int | float | None:
    cls = value.__class__
    if cls is int or cls is float:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if cls is str:
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                pass
    raise MappingError(f"{what} must be {kind}, got {value!r}")


def integer(value: Any, what: str) -> int | None:
    if value.__class__ is int:
        return value  # type: ignore[no-any-return]
    n = number(value, what, "a whole number")
    if n is None or n.__class__ is int:
        return n  # type: ignore[return-value]
    if n.is_integer():  # type: ignore[union-attr]
        return int(n)
    raise MappingError(f"{what} must be a whole number, got {value!r}")


def truth(value: Any) -> bool:
    """CBool: non-zero numbers and "True" are true; null and "" are false."""
    cls = value.__class__
    if cls is bool:
        return value  # type: ignore[no-any-return]
    if value is None:
        return False
    if cls is int or cls is float:
        return value != 0  # type: ignore[no-any-return]
    if cls is str:
        low = value.strip().lower()
        if low in ("true", "false", ""):
            return low == "true"
        try:
            return float(low) != 0
        except ValueError:
            pass
    raise MappingError(f"cannot read {value!r} as True or False")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _strings(fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A string function of one argument: null stays null, a list maps value by value."""

    def run(value: Any) -> Any:
        if value.__class__ is str:
            return fn(value)
        return _other_than_text(value, fn)

    return run


def _other_than_text(value: Any, fn: Callable[[str], Any]) -> Any:
    """A string function's value for null (null), a list (each value) or a number or boolean (its text)."""
    if value is None:
        return None
    if value.__class__ is list:
        return [fn(t) for v in value if (t := text(v)) is not None]
    return fn(text(value))


# --- dates ------------------------------------------------------------------------------------------

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_FILETIME_NEVER = 0x7FFFFFFFFFFFFFFF


def as_datetime(value: Any, what: str) -> datetime | None:
    if value is None or value.__class__ is datetime:
        return value  # type: ignore[no-any-return]
    if value.__class__ is str:
        try:
            return parse_datetime(value)
        except ValueError as exc:
            raise MappingError(str(exc)) from None
    raise MappingError(f"{what} must be a date, got {value!r}")


_INTERVALS = ("yyyy", "q", "m", "d", "ww", "h", "n", "s")
_DAY_OR_LONGER = frozenset({"yyyy", "q", "m", "d", "ww"})


def _interval(value: Any) -> str:
    name = text(value)
    if name is None or name.lower() not in _INTERVALS:
        raise MappingError(f"interval must be one of {', '.join(_INTERVALS)}, got {value!r}")
    return name.lower()


def _check_interval(consts: tuple[Any, ...]) -> None:
    if consts[0] is not DYNAMIC:
        try:
            _interval(consts[0])
        except MappingError as exc:
            raise ArgumentError(0, exc.problem) from None


def _add_months(value: datetime, months: int) -> datetime:
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


def _date_add(interval: Any, amount: Any, when: Any) -> datetime | None:
    kind = _interval(interval)
    n = number(amount, "value")
    moment = as_datetime(when, "dateTime")
    if moment is None or n is None:
        return None
    n = int(n)
    if kind in ("yyyy", "q", "m"):
        return _add_months(moment, n * {"yyyy": 12, "q": 3, "m": 1}[kind])
    unit = {"d": "days", "ww": "weeks", "h": "hours", "n": "minutes", "s": "seconds"}[kind]
    return moment + timedelta(**{unit: n})


def _week_start(value: datetime) -> datetime:
    day = value.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=(value.weekday() + 1) % 7)  # weeks start on Sunday, as in VB


def _date_diff(interval: Any, first: Any, second: Any) -> int | None:
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


def _date_from_num(value: Any) -> datetime | None:
    n = integer(value, "value")
    if n is None or n == 0 or n >= _FILETIME_NEVER:
        return None  # 0 and the largest value mean "never" in Active Directory
    if n < 0:
        raise MappingError(f"value must not be negative, got {n}")
    return _FILETIME_EPOCH + timedelta(microseconds=n // 10)


def _num_from_date(value: Any) -> int | None:
    moment = as_datetime(value, "value")
    if moment is None:
        return None
    return (moment - _FILETIME_EPOCH) // timedelta(microseconds=1) * 10


def _format_date_time(source: Any, *rest: Any) -> Any:
    # dateTimeStyles (.NET parsing flags) is accepted and ignored: white space around the date is allowed.
    _styles, in_format, out_format = rest if len(rest) == 3 else (None, *rest)
    if source.__class__ is list:
        return [_format_date_time(v, *rest) for v in source if v is not None]
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
        except ValueError as exc:
            raise MappingError(str(exc)) from None
    return date_format(out).format(moment)


# --- the functions ----------------------------------------------------------------------------------


def _append(source: Any, suffix: Any) -> Any:
    if source.__class__ is str and suffix.__class__ is str:
        return source + suffix
    if source.__class__ is list:
        return [_append(v, suffix) for v in source if v is not None]
    s = text(source)
    if s is None:
        return None
    return s + (text(suffix) or "")


def _bit_and(a: Any, b: Any) -> int | None:
    x, y = integer(a, "value1"), integer(b, "value2")
    return None if x is None or y is None else x & y


def _cdate(value: Any) -> Any:
    if value.__class__ is list:
        return [as_datetime(v, "expression") for v in value]
    return as_datetime(value, "expression")


def _build_coalesce(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        for arg in args:
            value = arg(source)
            if value is not None and (value.__class__ is not list or value):
                return value
        return None

    return run


_base64 = _strings(lambda s: base64.b64encode(s.encode("utf-16-le")).decode("ascii"))
_utf8_hex = _strings(lambda s: s.encode("utf-8", "surrogateescape").hex().upper())


def _count(value: Any) -> int:
    if value is None:
        return 0
    return len(value) if value.__class__ is list else 1


_cstr = _strings(str)


def _ignore_flow(value: Any) -> Any:
    if _empty(value):
        raise OmitFlow
    return value


def _build_iif(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    condition, if_true, if_false = args

    def run(source: Mapping[str, Any]) -> Any:
        return if_true(source) if truth(condition(source)) else if_false(source)

    return run


def _in_str(value1: Any, value2: Any, start: Any = None, compare: Any = None) -> int:
    """VB's InStr: the 1-based position of value2 in value1 from `start`, or 0."""
    haystack, needle = text(value1) or "", text(value2) or ""
    begin = integer(start, "start")
    begin = 1 if begin is None else begin
    if begin < 1:
        raise MappingError(f"start must be 1 or more, got {begin}")
    if text(compare) in ("1", "vbTextCompare"):
        haystack, needle = haystack.casefold(), needle.casefold()
    if begin > len(haystack) + (needle == ""):
        return 0
    return haystack.find(needle, begin - 1) + 1


def _item(value: Any, index: Any) -> Any:
    i = integer(index, "index")
    if i is None or value is None:
        return None
    if i < 1:
        raise MappingError(f"index starts at 1, got {i}")
    values = value if value.__class__ is list else [value]
    return values[i - 1] if i <= len(values) else None


def _check_item(consts: tuple[Any, ...]) -> None:
    if consts[1].__class__ is int and consts[1] < 1:
        raise ArgumentError(1, f"index starts at 1, got {consts[1]}")


def _build_join(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    """Join skips null and empty values: `Join(", ", "", [sn], [givenName])` gives "Doe, John"."""
    separator, sources = args[0], args[1:]
    static = None if consts[0] is DYNAMIC else text(consts[0]) or ""

    def run(source: Mapping[str, Any]) -> Any:
        parts: list[str] = []
        for arg in sources:
            value = arg(source)
            if value.__class__ is str:
                if value:
                    parts.append(value)
            elif value.__class__ is list:
                parts.extend(t for v in value if (t := text(v)))
            elif value is not None and (t := text(value)):
                parts.append(t)
        if not parts:
            return None
        return (text(separator(source)) or "" if static is None else static).join(parts)

    return run


def _left(source: Any, count: Any) -> Any:
    if source.__class__ is str and count.__class__ is int:
        return source if count < 0 else source[:count]
    if source.__class__ is list:
        return [_left(v, count) for v in source if v is not None]
    s, n = text(source) or "", integer(count, "NumChars")
    return s if n is None or n < 0 else s[:n]


def _mid(source: Any, start: Any, length: Any) -> Any:
    if source.__class__ is str and start.__class__ is int and length.__class__ is int and start > 0 <= length:
        return source[start - 1 : start - 1 + length]
    if source.__class__ is list:
        return [_mid(v, start, length) for v in source if v is not None]
    s, i, n = text(source) or "", integer(start, "start"), integer(length, "length")
    if i is None or n is None:
        return s
    if i < 1:
        raise MappingError(f"start is 1-based and must be 1 or more, got {i}")
    if n < 0:
        raise MappingError(f"length must not be negative, got {n}")
    return s[i - 1 : i - 1 + n]


# Letters that carry no separable accent, spelled as the product's table spells them.
_PLAIN_LETTERS = {
    "æ": "ae",
    "Æ": "AE",
    "ø": "oe",
    "Ø": "OE",
    "œ": "oe",
    "Œ": "OE",
    "ß": "ss",
    "ł": "l",
    "Ł": "L",
}
_PLAIN_LETTERS["\u0131"] = "i"  # the dotless i
_UNACCENTED = re.compile(f"[{''.join(_PLAIN_LETTERS)}]")


# The Unicode blocks of combining diacritical marks: the accents that NFD splits off Latin letters.
_COMBINING_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def _normalize_diacritics(s: Any) -> Any:
    if s.__class__ is not str:
        return _other_than_text(s, _normalize_diacritics)
    if s.isascii():
        return s
    bare = _COMBINING_MARKS.sub("", unicodedata.normalize("NFD", s))
    if bare.isascii():
        return bare
    return unicodedata.normalize("NFC", _UNACCENTED.sub(lambda m: _PLAIN_LETTERS[m[0]], bare))


def _not(value: Any) -> bool:
    """Not: True only when the source is True (or "True"); anything else, null included, gives True."""
    if value.__class__ is str:
        return value.strip().lower() != "true"
    return value is not True


# A word runs over letters and digits; an apostrophe inside a word does not split it (as .NET's ToTitleCase).
_TITLE_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def _title(m: re.Match[str]) -> str:
    word = m[0]
    return word[:1].upper() + word[1:].lower()


@lru_cache(maxsize=64)
def _words_between(separators: str) -> re.Pattern[str]:
    return re.compile(f"[^{re.escape(separators)}]+")


def _pcase(source: Any, separators: Any = None) -> Any:
    """PCase: without separators, words as .NET's ToTitleCase sees them (str.title, but "it's" stays)."""
    if source.__class__ is list:
        return [_pcase(v, separators) for v in source if v is not None]
    s, seps = text(source), text(separators)
    if s is None:
        return None
    if seps:
        return _words_between(seps).sub(_title, s)
    return _TITLE_WORD.sub(_title, s) if "'" in s else s.title()


_SPECIAL = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/"
_POOLS = ("0123456789", _SPECIAL, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _random_string(length: Any, *minimums_and_avoid: Any) -> str:
    total = integer(length, "Length") or 0
    minimums = [integer(v, "minimum") or 0 for v in minimums_and_avoid[:4]]
    avoid = set(text(minimums_and_avoid[4]) or "") if len(minimums_and_avoid) > 4 else set()
    if not 0 < total <= 256:
        raise MappingError(f"Length must be 1 to 256, got {total}")
    if min(minimums) < 0 or sum(minimums) > total:
        raise MappingError(f"the minimums add up to {sum(minimums)}, more than Length {total}")
    pools = ["".join(c for c in pool if c not in avoid) for pool in _POOLS]
    if any(need and not pool for need, pool in zip(minimums, pools, strict=True)) or not "".join(pools):
        raise MappingError("CharactersToAvoid leaves no characters to choose from")
    chars = [secrets.choice(pool) for need, pool in zip(minimums, pools, strict=True) for _ in range(need)]
    everything = "".join(pools)
    chars += [secrets.choice(everything) for _ in range(total - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def _remove_duplicates(value: Any) -> Any:
    if value.__class__ is not list:
        return value
    try:
        return list(dict.fromkeys(value))
    except TypeError:  # unhashable values (objects): keep the first of each, in order
        return [v for i, v in enumerate(value) if v not in value[:i]]


def _build_replace(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    """Replace chooses its form once, from which arguments are given (as the product describes)."""
    given = [i < len(consts) and consts[i] is not None for i in range(7)]
    src = args[0]
    arg = [args[i] if given[i] else (lambda source: None) for i in range(7)]
    if given[2]:
        pattern: re.Pattern[str] | None = None
        if consts[2] is not DYNAMIC:
            try:
                pattern = compile_regex(text(consts[2]) or "")
            except (re.error, RecursionError, OverflowError, ValueError) as exc:
                raise ArgumentError(2, f"invalid regular expression: {exc}") from None
        group = consts[3] if given[3] and consts[3] is not DYNAMIC else None
        if pattern is not None and group is not None and str(group) not in pattern.groupindex:
            raise ArgumentError(3, f"the regular expression has no group named {group!r}")
        regex_arg = arg[2]

        def regex(source: Mapping[str, Any]) -> re.Pattern[str]:
            return pattern or compile_regex(text(regex_arg(source)) or "")

        if given[3] and given[5]:
            return _replace_from_attribute(src, regex, arg[3], arg[5])
        if given[3]:
            return _replace_group(src, regex, arg[3], arg[4])
        if pattern is not None and consts[4] is not DYNAMIC:
            replacement = replacement_template(text(consts[4]) or "")
            try:
                pattern.sub(replacement, "")  # checks the group references once
            except (re.error, IndexError) as exc:
                raise ArgumentError(4, f"invalid replacement: {exc}") from None
            return _fixed(src, partial(pattern.sub, replacement))
        return _replace_regex(src, regex, arg[4])
    if not given[1]:
        raise ArgumentError(None, "needs an oldValue (plain form) or a regexPattern (regex form)")
    if given[6]:
        return _replace_in_template(src, arg[1], arg[6])
    if consts[1] is not DYNAMIC and consts[4] is not DYNAMIC and (old := text(consts[1])):
        new = text(consts[4]) or ""
        return _fixed(src, lambda s: s.replace(old, new))
    return _replace_plain(src, arg[1], arg[4])


def _fixed(src: Evaluator, change: Callable[[str], str]) -> Evaluator:
    """Replace with everything but the source known at parse time: the common case, kept short."""

    def run(source: Mapping[str, Any]) -> Any:
        value = src(source)
        return change(value) if value.__class__ is str else _map_text(value, change)

    return run


def _map_text(value: Any, fn: Callable[[str], Any]) -> Any:
    if value.__class__ is list:
        return [fn(t) for v in value if (t := text(v)) is not None]
    s = text(value)
    return None if s is None else fn(s)


def _replace_plain(src: Evaluator, old: Evaluator, new: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        o, n = text(old(source)), text(new(source)) or ""
        return _map_text(src(source), (lambda s: s.replace(o, n)) if o else str)

    return run


def _replace_in_template(src: Evaluator, old: Evaluator, template: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        o, t = text(old(source)) or "", text(template(source)) or ""
        return _map_text(src(source), lambda s: t.replace(o, s) if o else t)

    return run


def _replace_regex(src: Evaluator, regex: Callable[..., re.Pattern[str]], new: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        pattern, replacement = regex(source), replacement_template(text(new(source)) or "")
        return _map_text(src(source), lambda s: pattern.sub(replacement, s))

    return run


def _replace_group(
    src: Evaluator, regex: Callable[..., re.Pattern[str]], group: Evaluator, new: Evaluator
) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        pattern, name, replacement = regex(source), text(group(source)) or "", text(new(source)) or ""

        def sub(s: str) -> str:
            out, last = [], 0
            for m in pattern.finditer(s):
                start, end = m.span(name)
                if start >= 0:
                    out += (s[last:start], replacement)
                    last = end
            return "".join(out) + s[last:]

        return _map_text(src(source), sub)

    return run


def _replace_from_attribute(
    src: Evaluator, regex: Callable[..., re.Pattern[str]], group: Evaluator, other: Evaluator
) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        value = src(source)
        if not _empty(value):
            return value
        fallback = text(other(source))
        m = regex(source).search(fallback) if fallback else None
        return m[text(group(source)) or 0] if m else None

    return run


def _select_unique(*rules: Any) -> UniqueCandidates:
    values = tuple(dict.fromkeys(t for rule in rules if (t := text(rule))))
    if not values:
        raise MappingError("every rule gave an empty value")
    return UniqueCandidates(values)


def _single_app_role(value: Any) -> Any:
    first = value[0] if value.__class__ is list and value else None if value == [] else value
    if isinstance(first, dict):
        return first.get("displayName") or first.get("value") or first.get("id")
    return first


def _split(source: Any, delimiter: Any) -> list[str] | None:
    """Split trims each value and drops empty ones, as the product's example output shows."""
    sep = text(delimiter)
    if not sep:
        raise MappingError("delimiter is empty")
    values = source if source.__class__ is list else None if source is None else [source]
    if values is None:
        return None
    return [p for v in values if (t := text(v)) for part in t.split(sep) if (p := part.strip())]


def _strip_spaces(s: Any) -> Any:
    return s.replace(" ", "") if s.__class__ is str else _other_than_text(s, _strip_spaces)


def _build_switch(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    """Switch compares text, case-sensitively; a null source matches the key ""."""
    source_arg, default = args[0], args[1]
    keys, values = consts[2::2], args[3::2]
    if all(k is not DYNAMIC for k in keys):
        table: dict[str, Evaluator] = {}
        for key, value in zip(keys, values, strict=True):
            table.setdefault(text(key) or "", value)
        get = table.get

        def lookup(source: Mapping[str, Any]) -> Any:
            return get(text(source_arg(source)) or "", default)(source)

        return lookup
    key_args = args[2::2]

    def scan(source: Mapping[str, Any]) -> Any:
        s = text(source_arg(source)) or ""
        for key, value in zip(key_args, values, strict=True):
            if (text(key(source)) or "") == s:
                return value(source)
        return default(source)

    return scan


def _check_switch(consts: tuple[Any, ...]) -> None:
    if len(consts) % 2:
        raise ArgumentError(None, f"takes keys and values in pairs, got {len(consts)} arguments")


def _turkic(culture: Any) -> bool:
    """Turkish and Azeri case the dotted and dotless i apart; every other culture is invariant."""
    return culture is not None and (text(culture) or "")[:2].lower() in ("tr", "az")


def _to_lower(source: Any, culture: Any = None) -> Any:
    if source.__class__ is str and culture is None:
        return source.lower()
    if source.__class__ is list:
        return [_to_lower(v, culture) for v in source if v is not None]
    s = text(source)
    if s is None:
        return None
    return (s.replace("I", "\u0131").replace("\u0130", "i") if _turkic(culture) else s).lower()


def _to_upper(source: Any, culture: Any = None) -> Any:
    if source.__class__ is str and culture is None:
        return source.upper()
    if source.__class__ is list:
        return [_to_upper(v, culture) for v in source if v is not None]
    s = text(source)
    if s is None:
        return None
    return (s.replace("i", "\u0130").replace("\u0131", "I") if _turkic(culture) else s).upper()


@lru_cache(maxsize=64)
def _delimiters(chars: str) -> re.Pattern[str]:
    return re.compile(f"[{re.escape(chars)}]+")


def _word(source: Any, number: Any, delimiters: Any) -> Any:
    one_char = delimiters.__class__ is str and len(delimiters) == 1
    if source.__class__ is str and number.__class__ is int and number > 0 and one_char:
        words = [w for w in source.split(delimiters) if w]
        return words[number - 1] if number <= len(words) else ""
    if source.__class__ is list:
        return [_word(v, number, delimiters) for v in source if v is not None]
    s, n, d = text(source) or "", integer(number, "WordNumber"), text(delimiters) or ""
    if n is None or n < 1:
        return ""
    if len(d) == 1:
        words = [w for w in s.split(d) if w]
    else:
        words = [w for w in _delimiters(d).split(s) if w] if d else [s] if s else []
    return words[n - 1] if n <= len(words) else ""


def _absorbs_clock_in_days(consts: tuple[Any, ...]) -> bool:
    return consts[0] is not DYNAMIC and (text(consts[0]) or "").lower() in _DAY_OR_LONGER


def _absorbs_clock_in_date_format(consts: tuple[Any, ...]) -> bool:
    out = consts[-1]
    return out is not DYNAMIC and not re.search(r"[hHmsfFtT]|^[oOsSuU]$", text(out) or "")


_RANDOM_PARAMS = (
    "(Length, MinimumNumbers, MinimumSpecialCharacters, MinimumCapital, MinimumLowerCase, CharactersToAvoid)"
)
_REPLACE_PARAMS = (
    "(source, oldValue, regexPattern, regexGroupName, replacementValue, replacementAttributeName, template)"
)
F = Function
# fmt: off
FUNCTIONS: Final[dict[str, Function]] = {f.name: f for f in (
    F("Append", "(source, suffix)", 2, 2, _append),
    F("BitAnd", "(value1, value2)", 2, 2, _bit_and),
    F("CBool", "(expression)", 1, 1, truth),
    F("CDate", "(expression)", 1, 1, _cdate),
    F("Coalesce", "(source1, source2, ..., defaultValue)", 1, None, build=_build_coalesce),
    F("ConvertToBase64", "(source)", 1, 1, _base64),
    F("ConvertToUTF8Hex", "(source)", 1, 1, _utf8_hex),
    F("Count", "(attribute)", 1, 1, _count),
    F("CStr", "(value)", 1, 1, _cstr),
    F("DateAdd", "(interval, value, dateTime)", 3, 3, _date_add, check=_check_interval),
    F("DateDiff", "(interval, date1, date2)", 3, 3, _date_diff, check=_check_interval,
      absorbs_clock=_absorbs_clock_in_days),
    F("DateFromNum", "(value)", 1, 1, _date_from_num),
    F("FormatDateTime", "(source, dateTimeStyles, inputFormat, outputFormat)", 3, 4, _format_date_time,
      absorbs_clock=_absorbs_clock_in_date_format),
    F("Guid", "()", 0, 0, lambda: str(uuid.uuid4()), volatile="random"),
    F("IgnoreFlowIfNullOrEmpty", "(expression)", 1, 1, _ignore_flow),
    F("IIF", "(condition, valueIfTrue, valueIfFalse)", 3, 3, build=_build_iif),
    F("InStr", "(value1, value2, start, compareType)", 2, 4, _in_str),
    F("IsNull", "(expression)", 1, 1, lambda v: v is None or v == []),
    F("IsNullOrEmpty", "(expression)", 1, 1, _empty),
    F("IsPresent", "(expression)", 1, 1, lambda v: not _empty(v)),
    F("IsString", "(expression)", 1, 1, lambda v: v.__class__ is str),
    F("Item", "(attribute, index)", 2, 2, _item, check=_check_item),
    F("Join", "(separator, source1, source2, ...)", 2, None, build=_build_join),
    F("Left", "(String, NumChars)", 2, 2, _left),
    F("Mid", "(source, start, length)", 3, 3, _mid),
    F("NormalizeDiacritics", "(source)", 1, 1, _normalize_diacritics),
    F("Not", "(source)", 1, 1, _not),
    F("Now", "()", 0, 0, lambda: datetime.now(UTC), volatile="clock"),
    F("NumFromDate", "(value)", 1, 1, _num_from_date),
    F("PCase", "(source, wordSeparators)", 1, 2, _pcase),
    F("RandomString", _RANDOM_PARAMS, 5, 6, _random_string, volatile="random"),
    F("Redact", "(value)", 1, 1, lambda v: v),
    F("RemoveDuplicates", "(attribute)", 1, 1, _remove_duplicates),
    F("Replace", _REPLACE_PARAMS, 5, 7, build=_build_replace),
    F("SelectUniqueValue", "(uniqueValueRule1, uniqueValueRule2, ...)", 2, None, _select_unique),
    F("SingleAppRoleAssignment", "(appRoleAssignments)", 1, 1, _single_app_role),
    F("Split", "(source, delimiter)", 2, 2, _split),
    F("StripSpaces", "(source)", 1, 1, _strip_spaces),
    F("Switch", "(source, defaultValue, key1, value1, key2, value2, ...)", 4, None, build=_build_switch,
      check=_check_switch),
    F("ToLower", "(source, culture)", 1, 2, _to_lower),
    F("ToUpper", "(source, culture)", 1, 2, _to_upper),
    F("Word", "(String, WordNumber, Delimiters)", 3, 3, _word),
)}
# fmt: on
"""Every function, by its case-sensitive name (the product's syntax is case-sensitive)."""


def compare(op: str, left: Any, right: Any) -> bool:
    """`=`, `<>`, `<`, `<=`, `>`, `>=` inside IIF and CBool: numbers as numbers, dates as dates, else text.

    A null side makes the comparison false, as the product's IIF fails its check on a null attribute.
    """
    order = _ORDER[op]
    if left.__class__ is str and right.__class__ is str:
        return order(left, right)  # type: ignore[no-any-return]
    if left is None or right is None:
        return False
    a = text(left) if left.__class__ is bool else left
    b = text(right) if right.__class__ is bool else right
    if a.__class__ is datetime or b.__class__ is datetime:
        a, b = as_datetime(a, "a compared date"), as_datetime(b, "a compared date")
    elif isinstance(a, int | float) or isinstance(b, int | float):
        a, b = _maybe_number(a), _maybe_number(b)
        if not (isinstance(a, int | float) and isinstance(b, int | float)):
            a, b = text(a), text(b)
    else:
        a, b = text(a), text(b)
    return order(a, b)  # type: ignore[no-any-return]


def _maybe_number(value: Any) -> Any:
    if value.__class__ is not str:
        return value
    try:
        return float(value)
    except ValueError:
        return value


_ORDER: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
