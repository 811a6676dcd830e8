"""The columns a CSV or JSON Lines source offers, read as `roster validate` needs them: without a cycle.

A CSV file's columns are its header; a JSON Lines file has none, so its columns are the keys of its first
`SAMPLE_ROWS` objects (a key that none of them has is taken as absent). The file is opened as
`FileSource` opens it (its encoding, a bad byte kept rather than fatal) and only its head is read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import orjson

from common.errors import SourceError
from engine.sources.file import FileSourceSettings

SAMPLE_ROWS: Final = 100
"""JSON Lines objects whose keys stand for the file's columns."""


@dataclass(frozen=True, slots=True)
class FileColumns:
    """The columns found, and where they were read from, to say so in a problem."""

    names: tuple[str, ...]
    origin: str
    """`the header of /data/people.csv`, `the first 100 rows of /data/people.jsonl`."""


def file_columns(settings: FileSourceSettings) -> FileColumns:
    """The columns of the file `settings` name; `SourceError` when it cannot be read that far."""
    try:
        with open(settings.path, encoding=settings.encoding, errors="surrogateescape", newline="") as file:
            if settings.type == "csv":
                return _csv_header(settings, csv.reader(file, delimiter=settings.delimiter, strict=True))
            return _jsonl_keys(settings, file)
    except FileNotFoundError:
        raise SourceError(f"{settings.path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        raise SourceError(f"{settings.path}: cannot be read: {reason}") from None


def _csv_header(settings: FileSourceSettings, reader: Iterator[list[str]]) -> FileColumns:
    try:
        header = next((row for row in reader if row), None)
    except csv.Error as exc:
        raise SourceError(f"{settings.path}: the header cannot be parsed as CSV ({exc})") from None
    if header is None:
        raise SourceError(f"{settings.path}: the file is empty (its first row must name the columns)")
    return FileColumns(tuple(header), f"the header of {settings.path}")


def _jsonl_keys(settings: FileSourceSettings, lines: Iterable[str]) -> FileColumns:
    keys: dict[str, None] = {}
    objects = 0
    for text in lines:
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue  # the cycle reports the line; the next ones still tell the keys
        if isinstance(value, dict):
            keys.update(dict.fromkeys(value))
            objects += 1
            if objects >= SAMPLE_ROWS:
                break
    if not objects:
        raise SourceError(f"{settings.path}: holds no JSON object to tell its keys from")
    return FileColumns(tuple(keys), f"the first {objects} rows of {settings.path}")
