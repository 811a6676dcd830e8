"""What a SQL source makes of database values: attribute values, and the watermark it saves.

Attribute values come out as the other sources give them, so that mappings and scoping read a SQL
column as they read a JSON Lines field: text, whole numbers, floats and booleans as they are; NULL as
None; a timestamp, date or time as its ISO 8601 text (`2024-05-01T09:30:00+00:00`, `2024-05-01`); a
DECIMAL as a whole number when it is one and a float otherwise; a UUID or an address as its text;
bytes (BLOB, BYTEA) as base64, as SCIM writes binary; an array as a list and JSON as it is.

A watermark is saved as text in the state store, so it carries its type: `["updated_at", "t",
"2024-05-01T09:30:00.123456+00:00"]` (JSON of the column, a type tag and the value as text). The
column is there so that a job whose `watermark_column:` changed reads in full rather than compare one
column with the other's value.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any, Final

import orjson

PLAIN: Final = frozenset({str, int, float, bool, type(None)})
"""The types a value keeps as it is (the common case: checked first, by identity)."""


def _decimal(value: decimal.Decimal) -> int | float | str:
    if not value.is_finite():
        return str(value)
    return int(value) if value == value.to_integral_value() else float(value)


def _iso(value: dt.date | dt.time) -> str:
    return value.isoformat()


def _interval(value: dt.timedelta) -> float:
    return value.total_seconds()


def _binary(value: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _items(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    return [item if type(item) in PLAIN else convert(item) for item in value]


def _mapping(value: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): (v if type(v) in PLAIN else convert(v)) for k, v in value.items()}


_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    dt.datetime: _iso,
    dt.date: _iso,
    dt.time: _iso,
    dt.timedelta: _interval,
    decimal.Decimal: _decimal,
    bytes: _binary,
    bytearray: _binary,
    memoryview: _binary,
    list: _items,
    tuple: _items,
    dict: _mapping,
}


def convert(value: Any) -> Any:
    """A database value as the other sources give it (see the module docstring); anything else that a
    driver returns (a UUID, an IP address, a range) as its text."""
    kind = type(value)
    if kind in PLAIN:
        return value
    converter = _CONVERTERS.get(kind)
    if converter is None:
        for base, found in _CONVERTERS.items():  # a subclass, such as asyncpg's own Record or pendulum
            if isinstance(value, base):
                converter = found
                break
        else:
            return str(value)
    return converter(value)


# -- Watermarks ------------------------------------------------------------------------------------

Mark = int | float | decimal.Decimal | dt.datetime | dt.date | str | bytes
"""A watermark column's value, as the driver gives it and takes it back."""


def encode_mark(column: str, value: Mark) -> str:
    """The watermark text of `value`, the highest of `column` that a read met."""
    if isinstance(value, bool):  # a bool is an int, but no watermark
        raise TypeError("a boolean column cannot be a watermark")
    if isinstance(value, dt.datetime):
        tag, text = "t", value.isoformat()
    elif isinstance(value, dt.date):
        tag, text = "d", value.isoformat()
    elif isinstance(value, int):
        tag, text = "i", str(value)
    elif isinstance(value, decimal.Decimal):
        tag, text = "n", str(value)
    elif isinstance(value, float):
        tag, text = "f", repr(value)
    elif isinstance(value, bytes | bytearray | memoryview):  # a rowversion
        tag, text = "b", bytes(value).hex()
    else:
        tag, text = "s", str(value)
    return orjson.dumps([column, tag, text]).decode()


def decode_mark(column: str, text: str) -> Mark | None:
    """The value a watermark saved for `column`; None when it is not one (another column, or not a
    watermark of this source at all): the read is then a full one."""
    try:
        saved_column, tag, value = orjson.loads(text)
        if saved_column != column or not isinstance(value, str):
            return None
        parsed: Mark
        if tag == "t":
            parsed = dt.datetime.fromisoformat(value)
        elif tag == "d":
            parsed = dt.date.fromisoformat(value)
        elif tag == "i":
            parsed = int(value)
        elif tag == "n":
            parsed = decimal.Decimal(value)
        elif tag == "f":
            parsed = float(value)
        elif tag == "b":
            parsed = bytes.fromhex(value)
        elif tag == "s":
            parsed = value
        else:
            return None
    except (ValueError, TypeError, decimal.InvalidOperation):
        return None
    return parsed


def back_off(value: Mark, overlap_s: float) -> Mark:
    """Where a read starts that must also see rows committed late: `overlap_s` seconds before a
    timestamp, that many units below a number; a text or binary watermark has no such distance."""
    if overlap_s <= 0:
        return value
    if isinstance(value, dt.datetime):
        return value - dt.timedelta(seconds=overlap_s)
    if isinstance(value, dt.date):
        return value - dt.timedelta(days=int(overlap_s // 86_400))
    if isinstance(value, int):
        return value - int(overlap_s)
    if isinstance(value, decimal.Decimal):
        return value - decimal.Decimal(str(overlap_s))
    if isinstance(value, float):
        return value - overlap_s
    return value
