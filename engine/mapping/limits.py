"""The bounds on evaluating an expression, and how much of a value a message may quote.

An expression is evaluated at parse time (its constant parts are folded) and per object, so every
evaluation must end quickly and in little memory, whatever the job file or the source holds: a value
(a text, or all the texts of a list together) holds at most `MAX_CHARS` characters and a list at most
`MAX_ITEMS` values, a regular expression runs at most `REGEX_TIMEOUT_S` per call, a date format is at
most `MAX_FORMAT_CHARS` long, and a number read from text at most `MAX_NUMBER_CHARS` characters. Each
bound that is crossed raises `LimitError`, a `ValueError` whose message says which bound, so the caller
can name the function (and, at parse time, the mapping).

It knows nothing of the expression language, so `dotnet.py` can use it too.
"""

from __future__ import annotations

from typing import Any, Final

MAX_CHARS: Final = 1_000_000
"""Characters in one value (for a list: in all its values together)."""
MAX_ITEMS: Final = 100_000
"""Values in one list."""
REGEX_TIMEOUT_S: Final = 0.25
"""CPU time of one regular expression search, substitution or match."""
MAX_FORMAT_CHARS: Final = 200
"""Characters in a .NET date format string (`yyyyMMddHHmmss.fZ` has 17)."""
MAX_NUMBER_CHARS: Final = 40
"""Characters of a number written as text (a 64-bit FILETIME has 19 digits)."""
QUOTE_CHARS: Final = 100
"""Characters of a value that a message quotes."""


class LimitError(ValueError):
    """An evaluation would cross one of the bounds of this module."""


def quote(value: Any) -> str:
    """`repr(value)` for a message, cut to about `QUOTE_CHARS` characters with the full length said."""
    if isinstance(value, str):
        if len(value) <= QUOTE_CHARS:
            return repr(value)
        return f"{value[:QUOTE_CHARS]!r}... ({len(value):,} characters)"
    if isinstance(value, list | tuple) and len(value) > 10:
        return f"{quote(value[:10])[:-1]}, ...] ({len(value):,} values)"
    shown = repr(value)
    if len(shown) <= QUOTE_CHARS:
        return shown
    return f"{shown[:QUOTE_CHARS]}... ({len(shown):,} characters)"


def shorten(message: str) -> str:
    """A message from elsewhere (a library's exception), cut to a few quoted values' length."""
    limit = 3 * QUOTE_CHARS
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message):,} characters)"


def check_text(value: str) -> str:
    if len(value) > MAX_CHARS:
        raise LimitError(f"the result would be {len(value):,} characters long, more than {MAX_CHARS:,}")
    return value


def check_size(value: Any) -> Any:
    """`value` itself if it is within the bounds (a text, a list of texts or anything else)."""
    cls = value.__class__
    if cls is str:
        if len(value) > MAX_CHARS:
            raise LimitError(f"the result would be {len(value):,} characters long, more than {MAX_CHARS:,}")
    elif cls is list:
        if len(value) > MAX_ITEMS:
            raise LimitError(f"the result would hold {len(value):,} values, more than {MAX_ITEMS:,}")
        total = sum(len(v) for v in value if v.__class__ is str)
        if total > MAX_CHARS:
            raise LimitError(f"the result would hold {total:,} characters, more than {MAX_CHARS:,}")
    return value


def check_length(length: int) -> None:
    """Refuse, before it is built, a text of `length` characters."""
    if length > MAX_CHARS:
        raise LimitError(f"the result would be {length:,} characters long, more than {MAX_CHARS:,}")


def replace_text(s: str, old: str, new: str) -> str:
    """`s.replace(old, new)`, refused before it is built when the result would be too long."""
    grow = len(new) - len(old)
    if grow > 0 and len(s) * (grow + 1) > MAX_CHARS:
        check_length(len(s) + s.count(old) * grow if old else len(s) + (len(s) + 1) * len(new))
    return s.replace(old, new)
