"""The values that functions take and give: the `OMIT` and `DYNAMIC` markers, the coercions every
family shares (`text`, `number`, `integer`, `truth`, `as_datetime`), applying a string function to
each value, and `compare`, the comparison operators of IIF and CBool."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from engine.mapping.dotnet import format_utc, parse_datetime
from engine.mapping.functions.errors import MappingError
from engine.mapping.limits import MAX_NUMBER_CHARS, LimitError, quote

Evaluator = Callable[[Mapping[str, Any]], Any]
"""An argument or a call, compiled: the source object's attributes in, the value out."""


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


def text(value: Any) -> str | None:
    """A single value as the product prints it; None stays None, a list is an error."""
    cls = value.__class__
    if cls is str:
        return value
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
        return value
    if value is None:
        return None
    if cls is str:
        if len(value) > MAX_NUMBER_CHARS:
            raise MappingError(
                f"{what} must be {kind} of at most {MAX_NUMBER_CHARS} characters, got {quote(value)}"
            )
        try:
            return int(value)
        except ValueError:
            try:
                n = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(n):
                    return n
    raise MappingError(f"{what} must be {kind}, got {quote(value)}")


def integer(value: Any, what: str) -> int | None:
    if value.__class__ is int:
        return value
    n = number(value, what, "a whole number")
    if n is None or isinstance(n, int):
        return n
    if n.is_integer():
        return int(n)
    raise MappingError(f"{what} must be a whole number, got {quote(value)}")


def truth(value: Any) -> bool:
    """CBool: non-zero numbers and "True" are true; null and "" are false."""
    cls = value.__class__
    if cls is bool:
        return value
    if value is None:
        return False
    if cls is int or cls is float:
        return value != 0
    if cls is str:
        low = value.strip().lower()
        if low in ("true", "false", ""):
            return low == "true"
        try:
            return float(low) != 0
        except ValueError:
            pass
    raise MappingError(f"cannot read {quote(value)} as True or False")


def empty(value: Any) -> bool:
    """Null, "" or an empty list (IsNullOrEmpty)."""
    return value is None or value == "" or value == []


def on_text(fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A string function of one argument: null stays null, a list maps value by value."""

    def run(value: Any) -> Any:
        if value.__class__ is str:
            return fn(value)
        return map_text(value, fn)

    return run


def map_text(value: Any, fn: Callable[[str], Any]) -> Any:
    """`fn` of the text of `value`: null stays null, a list maps each non-null value."""
    if value.__class__ is list:
        return [fn(t) for v in value if (t := text(v)) is not None]
    s = text(value)
    return None if s is None else fn(s)


def as_datetime(value: Any, what: str) -> datetime | None:
    if value is None or value.__class__ is datetime:
        return value
    if value.__class__ is str:
        try:
            return parse_datetime(value)
        except LimitError:
            raise
        except ValueError as exc:
            raise MappingError(str(exc)) from None
    raise MappingError(f"{what} must be a date, got {quote(value)}")


def compare(op: str, left: Any, right: Any) -> bool:
    """`=`, `<>`, `<`, `<=`, `>`, `>=` inside IIF and CBool: numbers as numbers, dates as dates, else text.

    A null side makes the comparison false, as the product's IIF fails its check on a null attribute.
    """
    order = _ORDER[op]
    if left.__class__ is str and right.__class__ is str:
        return order(left, right)
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
    return order(a, b)


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
