"""The string functions: Append, ConvertToBase64, ConvertToUTF8Hex, CStr, InStr, Join, Left, Len, Mid,
NormalizeDiacritics, PCase, Split, StripSpaces, ToLower, ToUpper and Word.

Each applies to every value of a list and keeps null null, unless its documentation says otherwise
(Join and Split read and make lists; InStr, Left, Mid and Word read null as "").
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from engine.mapping.functions.errors import MappingError
from engine.mapping.functions.values import DYNAMIC, Evaluator, integer, map_text, on_text, text
from engine.mapping.limits import MAX_CHARS, MAX_ITEMS, LimitError, check_length


def append(source: Any, suffix: Any) -> Any:
    if source.__class__ is str and suffix.__class__ is str:
        return source + suffix
    if source.__class__ is list:
        return [append(v, suffix) for v in source if v is not None]
    s = text(source)
    if s is None:
        return None
    return s + (text(suffix) or "")


to_base64 = on_text(lambda s: base64.b64encode(s.encode("utf-16-le")).decode("ascii"))
to_utf8_hex = on_text(lambda s: s.encode("utf-8", "surrogateescape").hex().upper())

cstr = on_text(str)


def in_str(value1: Any, value2: Any, start: Any = None, compare: Any = None) -> int:
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


def build_join(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
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
        sep = text(separator(source)) or "" if static is None else static
        if len(sep) * len(parts) > MAX_CHARS:  # a long separator between many values
            check_length(sum(map(len, parts)) + len(sep) * (len(parts) - 1))
        return sep.join(parts)

    return run


length = on_text(len)
"""Len: the number of characters of the text (of each value of a list); null stays null."""


def left(source: Any, count: Any) -> Any:
    if source.__class__ is str and count.__class__ is int:
        return source if count < 0 else source[:count]
    if source.__class__ is list:
        return [left(v, count) for v in source if v is not None]
    s, n = text(source) or "", integer(count, "NumChars")
    return s if n is None or n < 0 else s[:n]


def mid(source: Any, start: Any, length: Any) -> Any:
    if source.__class__ is str and start.__class__ is int and length.__class__ is int and start > 0 <= length:
        return source[start - 1 : start - 1 + length]
    if source.__class__ is list:
        return [mid(v, start, length) for v in source if v is not None]
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


def normalize_diacritics(s: Any) -> Any:
    if s.__class__ is not str:
        return map_text(s, normalize_diacritics)
    if s.isascii():
        return s
    bare = _COMBINING_MARKS.sub("", unicodedata.normalize("NFD", s))
    if bare.isascii():
        return bare
    return unicodedata.normalize("NFC", _UNACCENTED.sub(lambda m: _PLAIN_LETTERS[m[0]], bare))


# A word runs over letters and digits; an apostrophe inside a word does not split it (as .NET's ToTitleCase).
_TITLE_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def _title(m: re.Match[str]) -> str:
    word = m[0]
    return word[:1].upper() + word[1:].lower()


@lru_cache(maxsize=64)
def _words_between(separators: str) -> re.Pattern[str]:
    return re.compile(f"[^{re.escape(separators)}]+")


def pcase(source: Any, separators: Any = None) -> Any:
    """PCase: without separators, words as .NET's ToTitleCase sees them (str.title, but "it's" stays)."""
    if source.__class__ is list:
        return [pcase(v, separators) for v in source if v is not None]
    s, seps = text(source), text(separators)
    if s is None:
        return None
    if seps:
        return _words_between(seps).sub(_title, s)
    return _TITLE_WORD.sub(_title, s) if "'" in s else s.title()


def split(source: Any, delimiter: Any) -> list[str] | None:
    """Split trims each value and drops empty ones, as the product's example output shows."""
    sep = text(delimiter)
    if not sep:
        raise MappingError("delimiter is empty")
    values = source if source.__class__ is list else None if source is None else [source]
    if values is None:
        return None
    for v in values:  # counted before the list is built: a long text could split into millions
        if (t := text(v)) and len(t) > MAX_ITEMS * len(sep) and t.count(sep) >= MAX_ITEMS:
            raise LimitError(f"the result would hold more than {MAX_ITEMS:,} values")
    return [p for v in values if (t := text(v)) for part in t.split(sep) if (p := part.strip())]


def strip_spaces(s: Any) -> Any:
    return s.replace(" ", "") if s.__class__ is str else map_text(s, strip_spaces)


def _turkic(culture: Any) -> bool:
    """Turkish and Azeri case the dotted and dotless i apart; every other culture is invariant."""
    return culture is not None and (text(culture) or "")[:2].lower() in ("tr", "az")


def _case(change: Callable[[str], str], turkic_i: Callable[[str], str]) -> Callable[..., Any]:
    """ToLower or ToUpper: `change` the case, after `turkic_i` spells the i for Turkish and Azeri."""

    def run(source: Any, culture: Any = None) -> Any:
        if source.__class__ is str and culture is None:
            return change(source)
        if source.__class__ is list:
            return [run(v, culture) for v in source if v is not None]
        s = text(source)
        if s is None:
            return None
        return change(turkic_i(s) if _turkic(culture) else s)

    return run


to_lower = _case(str.lower, lambda s: s.replace("I", "\u0131").replace("\u0130", "i"))
to_upper = _case(str.upper, lambda s: s.replace("i", "\u0130").replace("\u0131", "I"))


@lru_cache(maxsize=64)
def _delimiters(chars: str) -> re.Pattern[str]:
    return re.compile(f"[{re.escape(chars)}]+")


def word(source: Any, number: Any, delimiters: Any) -> Any:
    one_char = delimiters.__class__ is str and len(delimiters) == 1
    if source.__class__ is str and number.__class__ is int and number > 0 and one_char:
        words = [w for w in source.split(delimiters) if w]
        return words[number - 1] if number <= len(words) else ""
    if source.__class__ is list:
        return [word(v, number, delimiters) for v in source if v is not None]
    s, n, d = text(source) or "", integer(number, "WordNumber"), text(delimiters) or ""
    if n is None or n < 1:
        return ""
    if len(d) == 1:
        words = [w for w in s.split(d) if w]
    else:
        words = [w for w in _delimiters(d).split(s) if w] if d else [s] if s else []
    return words[n - 1] if n <= len(words) else ""
