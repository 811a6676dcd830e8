"""The .NET conventions inside expressions copied from the cloud product: dates and regular expressions.

The product runs on .NET, so its expressions carry .NET syntax inside their string arguments: FormatDateTime
takes .NET custom and standard date format strings (`yyyyMMddHHmmss.fZ`, `o`), dates print as .NET's
`M/d/yyyy h:mm:ss tt`, and Replace and the REGEX MATCH scoping operator take .NET regular expressions
(`(?<name>...)`, `\\k<name>`) and replacement strings (`$1`, `${name}`). This module translates them to
Python's `datetime` and `re` or `regex` (each format string and pattern once: the translations are
cached), so an expression copied from the product gives the same result here. Every call is bounded
(`engine.mapping.limits`): a regular expression that could backtrack without end runs in the `regex`
package, under a timeout.

It knows nothing of the expression language: a text that cannot be read raises `ValueError` with a message
meant for the user, and the functions that call it turn that into a `MappingError` for the failing object.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache, partial
from typing import Any

import regex

from engine.mapping.limits import (
    MAX_CHARS,
    MAX_FORMAT_CHARS,
    REGEX_TIMEOUT_S,
    LimitError,
    check_length,
    quote,
)

# --- dates ------------------------------------------------------------------------------------------

_DATE_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,7}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_DATE_US = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?\s*(AM|PM)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_MAX_DATE_CHARS = 100
"""A date as text is short; a longer text is refused before any pattern reads it."""
_DATE_LDAP = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,7}))?(Z|[+-]\d{4})?")


def _offset(raw: str | None) -> timezone:
    if not raw or raw.upper() == "Z":
        return UTC
    digits = raw[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
    return timezone(timedelta(minutes=-minutes if raw[0] == "-" else minutes))


def parse_datetime(raw: str) -> datetime:
    """A date string in the forms the product's examples use, as an aware UTC datetime.

    ISO 8601 (`2020-03-16`, `2009-06-15T01:45:30-07:00`, and Workday's `2020-03-16-07:00`), US
    (`8/25/2021 5:41:18 PM`) and LDAP generalized time (`20150123105347.1Z`); no offset means UTC.
    """
    s = raw.strip()
    if len(s) > _MAX_DATE_CHARS:
        raise ValueError(f"{quote(raw)} is not a date (longer than {_MAX_DATE_CHARS} characters)")
    if m := _DATE_ISO.fullmatch(s):
        y, mo, d, h, mi, sec, frac, off = m.groups()
    elif m := _DATE_US.fullmatch(s):
        mo, d, y, h, mi, sec, frac, ampm, off = m.groups()
        if h is not None and ampm:
            h = str(int(h) % 12 + (12 if ampm.upper() == "PM" else 0))
    elif m := _DATE_LDAP.fullmatch(s):
        y, mo, d, h, mi, sec, frac, off = m.groups()
    else:
        raise ValueError(f"{quote(raw)} is not a date")
    try:
        value = datetime(
            int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
            int((frac or "0").ljust(6, "0")[:6]), tzinfo=_offset(off),
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{quote(raw)} is not a date ({exc})") from None
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """The product's date text, `M/d/yyyy h:mm:ss tt`, in UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    hour = value.hour % 12 or 12
    half = "AM" if value.hour < 12 else "PM"
    return f"{value.month}/{value.day}/{value.year} {hour}:{value.minute:02}:{value.second:02} {half}"


_FORMAT_TOKEN = re.compile(
    r"d{1,4}|f{1,7}|F{1,7}|h{1,2}|H{1,2}|K|m{1,2}|M{1,4}|s{1,2}|t{1,2}|y{1,5}|z{1,3}"
    r"|'[^']*'|\"[^\"]*\"|\\.|%.|.",
    re.DOTALL,
)
_MONTHS = tuple(calendar.month_name)[1:]
_DAYS = tuple(calendar.day_name)


def _piece(token: str) -> tuple[str, str | None, Callable[[datetime], str]]:
    """One .NET custom format token: its parsing regex, the field it fills, and its formatter."""
    c, n = token[0], len(token)
    if c == "%" and n == 2:
        return _piece(token[1])
    two = "{:02}".format
    table: dict[str, tuple[str, str | None, Callable[[datetime], str]]] = {
        "d": (r"\d{1,2}", "day", lambda v: str(v.day)),
        "dd": (r"\d{2}", "day", lambda v: two(v.day)),
        "ddd": (r"[A-Za-z]{3}", None, lambda v: _DAYS[v.weekday()][:3]),
        "dddd": (r"[A-Za-z]+", None, lambda v: _DAYS[v.weekday()]),
        "M": (r"\d{1,2}", "month", lambda v: str(v.month)),
        "MM": (r"\d{2}", "month", lambda v: two(v.month)),
        "MMM": (r"[A-Za-z]{3}", "month_name", lambda v: _MONTHS[v.month - 1][:3]),
        "MMMM": (r"[A-Za-z]+", "month_name", lambda v: _MONTHS[v.month - 1]),
        "y": (r"\d{1,2}", "year2", lambda v: str(v.year % 100)),
        "yy": (r"\d{2}", "year2", lambda v: two(v.year % 100)),
        "yyy": (r"\d{3,4}", "year", lambda v: f"{v.year:03}"),
        "yyyy": (r"\d{4}", "year", lambda v: f"{v.year:04}"),
        "yyyyy": (r"\d{5}", "year", lambda v: f"{v.year:05}"),
        "h": (r"\d{1,2}", "hour12", lambda v: str(v.hour % 12 or 12)),
        "hh": (r"\d{2}", "hour12", lambda v: two(v.hour % 12 or 12)),
        "H": (r"\d{1,2}", "hour", lambda v: str(v.hour)),
        "HH": (r"\d{2}", "hour", lambda v: two(v.hour)),
        "m": (r"\d{1,2}", "minute", lambda v: str(v.minute)),
        "mm": (r"\d{2}", "minute", lambda v: two(v.minute)),
        "s": (r"\d{1,2}", "second", lambda v: str(v.second)),
        "ss": (r"\d{2}", "second", lambda v: two(v.second)),
        "t": (r"[AaPp]", "ampm", lambda v: "A" if v.hour < 12 else "P"),
        "tt": (r"[AaPp][Mm]", "ampm", lambda v: "AM" if v.hour < 12 else "PM"),
        "z": (r"[+-]\d{1,2}(?::?\d{2})?", "offset", lambda v: _format_offset(v, "z")),
        "zz": (r"[+-]\d{1,2}(?::?\d{2})?", "offset", lambda v: _format_offset(v, "zz")),
        "zzz": (r"[+-]\d{1,2}(?::?\d{2})?", "offset", lambda v: _format_offset(v, "zzz")),
        "K": (r"(?:Z|[+-]\d{2}:?\d{2})?", "offset", lambda v: _format_offset(v, "K")),
    }
    if token in table:
        return table[token]
    if c in "fF":
        digits = (lambda v: f"{v.microsecond:06}0"[:n]) if c == "f" else (
            lambda v: f"{v.microsecond:06}0"[:n].rstrip("0"))  # fmt: skip
        return (rf"\d{{{n}}}" if c == "f" else rf"\d{{0,{n}}}"), "fraction", digits
    literal = token[1:-1] if c in "'\"" and n > 1 else token[1:] if c == "\\" else token
    return re.escape(literal), None, lambda v: literal


def _format_offset(value: datetime, kind: str) -> str:
    delta = value.utcoffset()
    if kind == "K" and delta is None:
        return ""
    if kind == "K" and value.tzinfo is UTC:
        return "Z"
    minutes = int((delta or timedelta()) / timedelta(minutes=1))
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    if kind == "z":
        return f"{sign}{minutes // 60}"
    if kind == "zz":
        return f"{sign}{minutes // 60:02}"
    return f"{sign}{minutes // 60:02}:{minutes % 60:02}"


@dataclass(frozen=True, slots=True)
class DateFormat:
    """A .NET custom date and time format string, compiled once for parsing and formatting."""

    pattern: regex.Pattern[str]
    fields: tuple[tuple[str, str], ...]
    formatters: tuple[Callable[[datetime], str], ...]

    def parse(self, raw: str) -> datetime:
        s = raw.strip()
        if len(s) > _MAX_DATE_CHARS:
            raise ValueError(f"{quote(raw)} is not a date (longer than {_MAX_DATE_CHARS} characters)")
        try:  # a format of many name tokens (dddd MMMM ...) could backtrack for long
            m = self.pattern.fullmatch(s, timeout=REGEX_TIMEOUT_S)
        except TimeoutError:
            raise LimitError(f"reading {quote(raw)} with the input format took too long") from None
        if m is None:
            raise ValueError(f"{quote(raw)} does not match the input format")
        got: dict[str, str] = {field: m[group] for group, field in self.fields if m[group] is not None}
        year = int(got["year"]) if "year" in got else None
        if year is None and "year2" in got:
            short = int(got["year2"])
            year = 2000 + short if short < 50 else 1900 + short  # .NET's two-digit year rule (2049)
        month = int(got.get("month", 0)) or None
        if month is None and "month_name" in got:
            names = [name.lower() for name in _MONTHS]
            word = got["month_name"].lower()
            month = next((i + 1 for i, name in enumerate(names) if name.startswith(word)), None)
            if month is None:
                raise ValueError(f"{quote(raw)} names no month")
        hour = int(got.get("hour", 0))
        if "hour12" in got:
            hour = int(got["hour12"]) % 12 + (12 if got.get("ampm", "a")[0].lower() == "p" else 0)
        try:
            return datetime(
                year or 1, month or 1, int(got.get("day", 1)), hour, int(got.get("minute", 0)),
                int(got.get("second", 0)), int(got.get("fraction", "0").ljust(6, "0")[:6]),
                tzinfo=_offset(got["offset"]) if got.get("offset") else None,
            )  # fmt: skip
        except ValueError as exc:
            raise ValueError(f"{quote(raw)} is not a valid date ({exc})") from None

    def format(self, value: datetime) -> str:
        return "".join(f(value) for f in self.formatters)


_STANDARD_FORMATS = {
    "o": "yyyy-MM-ddTHH:mm:ss.fffffffK",
    "s": "yyyy-MM-ddTHH:mm:ss",
    "u": "yyyy-MM-dd HH:mm:ssZ",
}


@lru_cache(maxsize=256)
def date_format(spec: str) -> DateFormat:
    """The compiled format; a format longer than `MAX_FORMAT_CHARS` raises `LimitError`."""
    if len(spec) > MAX_FORMAT_CHARS:
        raise LimitError(
            f"the date format is {len(spec):,} characters long, more than {MAX_FORMAT_CHARS}: {quote(spec)}"
        )
    spec = _STANDARD_FORMATS.get(spec.lower(), spec) if len(spec) == 1 else spec
    parts: list[str] = []
    fields: list[tuple[str, str]] = []
    formatters: list[Callable[[datetime], str]] = []
    for i, token in enumerate(_FORMAT_TOKEN.findall(spec)):
        part, field, formatter = _piece(token)
        if field is not None:
            fields.append((f"g{i}", field))
            part = f"(?P<g{i}>{part})"
        parts.append(part)
        formatters.append(formatter)
    compiled = regex.compile("".join(parts), regex.IGNORECASE | regex.VERSION0)
    return DateFormat(compiled, tuple(fields), tuple(formatters))


# --- regular expressions ---------------------------------------------------------------------------

_NAMED_GROUP = re.compile(r"\(\?(?:<(?![=!])|')(\w+)[>']")


FAST_CHARS = 1_000
"""A text this short is searched by `re` when the pattern is simple (see `_simple`), with no timer."""
_FAST_QUANTIFIERS = 2
_QUANTIFIER_BRACES = re.compile(r"\{\d*(?:,\d*)?\}")


class Regex:
    """A .NET regular expression, compiled once; each call on it ends within `REGEX_TIMEOUT_S` and
    makes no text longer than `MAX_CHARS`, or raises `LimitError`.

    A simple pattern on a short text runs in `re` (fast, and its time is bounded by its shape);
    anything else runs in the `regex` package, whose calls take a timeout.
    """

    __slots__ = ("_bounded", "_fast", "groupindex", "text")

    def __init__(self, text: str, bounded: regex.Pattern[str], fast: re.Pattern[str] | None) -> None:
        self.text = text
        self.groupindex = bounded.groupindex
        self._bounded = bounded
        self._fast = fast

    def _timed(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args, timeout=REGEX_TIMEOUT_S)
        except TimeoutError:
            size = len(args[-1])
            raise LimitError(
                f"the regular expression {quote(self.text)} took more than {REGEX_TIMEOUT_S} s on a value "
                f"of {size:,} characters; simplify it (a repeated group such as (a+)+ can backtrack "
                "without end)"
            ) from None

    def search(self, s: str) -> Any:
        """The first match in `s`, or None."""
        fast = self._fast
        if fast is not None and len(s) <= FAST_CHARS:
            return fast.search(s)
        return self._timed(self._bounded.search, s)

    def finditer(self, s: str) -> list[Any]:
        """Every match in `s`."""
        fast = self._fast
        if fast is not None and len(s) <= FAST_CHARS:
            return list(fast.finditer(s))
        return self._timed(lambda text, timeout: list(self._bounded.finditer(text, timeout=timeout)), s)

    def substituter(self, template: str) -> Callable[[str], str]:
        """`sub` with `template` (a Python template, from `replacement_template`), checked once."""
        refs = template.count("\\g<")
        fast = self._fast

        def most(n: int) -> int:  # the longest result on a text of n characters
            return n + (n + 1) * len(template) + refs * n

        bounded = self._bounded.sub

        def slow(s: str) -> str:
            if most(len(s)) <= MAX_CHARS:
                return str(self._timed(bounded, template, s))
            grown = 0

            def expand(m: Any) -> str:
                nonlocal grown
                out: str = m.expand(template)
                grown += len(out) - (m.end() - m.start())
                check_length(len(s) + grown)
                return out

            return str(self._timed(bounded, expand, s))

        if fast is None or most(FAST_CHARS) > MAX_CHARS:
            return slow
        fast_sub = fast.sub

        def sub(s: str) -> str:
            return fast_sub(template, s) if len(s) <= FAST_CHARS else slow(s)

        return sub

    def fast_substituter(self, template: str) -> Callable[[str], str] | None:
        """`sub` with `template` in `re` for a text of at most `FAST_CHARS`, when that is safe; else None."""
        fast = self._fast
        if (
            fast is None
            or FAST_CHARS + (FAST_CHARS + 1) * len(template) + template.count("\\g<") * FAST_CHARS > MAX_CHARS
        ):
            return None
        return partial(fast.sub, template)

    def sub(self, template: str, s: str) -> str:
        return self.substituter(template)(s)


def _simple(pattern: str) -> bool:
    """True when no group is repeated, nothing refers back or looks around, and at most two quantifiers
    appear: then `re` needs at most a few million steps on a text of `FAST_CHARS`."""
    if any(marker in pattern for marker in ("(?P=", "(?=", "(?!", "(?<")):
        return False
    quantifiers, i, n, prev, in_class = 0, 0, len(pattern), "", False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if pattern[i + 1 : i + 2].isdigit():
                return False  # a backreference
            prev, i = "x", i + 2
            continue
        if in_class:
            in_class, prev, i = c != "]", "x", i + 1
            continue
        if c == "[":
            in_class = True
            i += 1 + (pattern[i + 1 : i + 2] == "^")
            i += pattern[i : i + 1] == "]"
            continue
        braces = _QUANTIFIER_BRACES.match(pattern, i) if c == "{" else None
        if c in "*+?" or braces:
            if c == "?" and prev == "(":
                prev, i = "x", i + 1  # (?: (?i) ...
                continue
            if prev == "q":  # a lazy or possessive quantifier: still one
                i += 1
                continue
            if prev == ")":
                return False  # a repeated group
            quantifiers += 1
            prev, i = "q", braces.end() if braces else i + 1
            continue
        prev, i = c, i + 1
    return quantifiers <= _FAST_QUANTIFIERS


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> Regex:
    """Compile a .NET regular expression: `(?<name>...)`, `(?'name'...)` and `\\k<name>` become Python's.

    Raises `re.error` when it is not a valid pattern.
    """
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            if pattern[i + 1] == "k" and pattern[i + 2 : i + 3] in ("<", "'"):
                end = pattern.find(">" if pattern[i + 2] == "<" else "'", i + 3)
                if end > 0:
                    out.append(f"(?P={pattern[i + 3 : end]})")
                    i = end + 1
                    continue
            out.append(pattern[i : i + 2])
            i += 2
        elif in_class:
            in_class = c != "]"
            out.append(c)
            i += 1
        elif c == "[":
            in_class = True
            start = i + 1 + (pattern[i + 1 : i + 2] == "^")
            start += pattern[start : start + 1] == "]"  # a leading ']' is literal
            out.append(pattern[i:start])
            i = start
        elif (m := _NAMED_GROUP.match(pattern, i)) is not None:
            out.append(f"(?P<{m[1]}>")
            i = m.end()
        else:
            out.append(c)
            i += 1
    text = "".join(out)
    fast: re.Pattern[str] | None = None
    try:
        fast = re.compile(text)
    except re.error as exc:  # `regex` may still read it (\\p{L}); if not, `re`'s message is the clearer
        try:
            bounded = regex.compile(text, regex.VERSION0)
        except regex.error:
            raise exc from None
    else:
        bounded = regex.compile(text, regex.VERSION0)
    if not _simple(text):
        fast = None
    return Regex(pattern, bounded, fast)


def replacement_template(template: str) -> str:
    """A .NET replacement string (`$1`, `${name}`, `$$`, `$&`) as a Python `re.sub` template."""
    out = template.replace("\\", "\\\\")
    out = re.sub(
        r"\$(?:\{(\w+)\}|(\d+)|(&)|(\$))", lambda m: "$" if m[4] else f"\\g<{m[1] or m[2] or 0}>", out
    )
    return out
