"""A source that reads a CSV or JSON Lines file, such as an HR export.

The file is streamed one batch of rows at a time, so memory stays flat whatever its size; the only
thing that grows is the set of ids seen so far, which finds duplicates. A row that cannot be used
becomes a `SourceProblem` with its line number and is skipped; a file that cannot be read at all (it
is missing, or its header has no id column) raises `SourceError`.

The set holds the ids alone: a line number beside each cost 28 MB more over a million rows. The
problem of a repeated id names the line of its first occurrence all the same, found by reading the
file again once the read is over, which only a file that repeats an id pays for (`_Repeats`).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import difflib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import orjson

from common.config.validation import boolean, check_keys, choice, join, string
from common.errors import ConfigError, SourceError
from engine.core.values import flaw
from engine.model import SourceObject, SourceProblem
from engine.sources.base import ProblemLog

if TYPE_CHECKING:
    from _csv import Reader

FileType = Literal["csv", "jsonl"]

FILE_TYPES: tuple[FileType, ...] = ("csv", "jsonl")
KEYS = ("type", "path", "id_column", "encoding", "delimiter", "empty_as_null")
CSV_ONLY_KEYS = ("delimiter", "empty_as_null")
SUFFIX_TYPES: dict[str, FileType] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_CSV_OPEN_AT_END = "unexpected end of data"  # the csv module's error for a quote still open at the end


def _undecodable(text: str) -> bool:
    """Whether `text` holds bytes the codec could not decode. "surrogateescape" turns them into lone
    surrogates, which no valid decoding produces and which UTF-8 refuses to encode: encoding a line
    finds one several times faster than a regular expression, and most lines are ASCII anyway."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSourceSettings:
    """Where the file is and how to read it; `path` is already resolved against the job file's directory."""

    type: FileType
    path: Path
    id_column: str
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    empty_as_null: bool = True

    def __post_init__(self) -> None:
        if self.type not in FILE_TYPES:
            raise ValueError(f"type must be one of {', '.join(FILE_TYPES)}, got {self.type!r}")
        if not self.id_column:
            raise ValueError("id_column must not be empty")
        if len(self.delimiter) != 1 or self.delimiter in '"\r\n':
            raise ValueError(
                f"delimiter must be one character other than a quote or a newline, got {self.delimiter!r}"
            )


def parse_file_source(path: str, raw: Mapping[str, Any], *, base_dir: Path) -> FileSourceSettings:
    """Validate a job's `source:` section; errors name the key's path, the problem and the fix."""
    check_keys(path, raw, KEYS, required=("path", "id_column"))
    file_path = string(join(path, "path"), raw["path"])
    resolved = base_dir / Path(file_path).expanduser()
    if "type" in raw:
        file_type: FileType = choice(join(path, "type"), raw["type"], FILE_TYPES)  # type: ignore[assignment]
    elif resolved.suffix.lower() in SUFFIX_TYPES:
        file_type = SUFFIX_TYPES[resolved.suffix.lower()]
    else:
        raise ConfigError(
            join(path, "type"),
            f"is required: the type of {file_path!r} cannot be told from its name",
            "add `type: csv` or `type: jsonl`",
        )
    if file_type != "csv":
        for key in CSV_ONLY_KEYS:
            if key in raw:
                raise ConfigError(
                    join(path, key), f"applies to CSV files only, not {file_type}", f"remove `{key}:`"
                )
    return FileSourceSettings(
        type=file_type,
        path=resolved,
        id_column=string(join(path, "id_column"), raw["id_column"]),
        encoding=_encoding(join(path, "encoding"), raw.get("encoding", "utf-8-sig")),
        delimiter=_delimiter(join(path, "delimiter"), raw.get("delimiter", ",")),
        empty_as_null=boolean(join(path, "empty_as_null"), raw.get("empty_as_null", True)),
    )


def _encoding(path: str, raw: Any) -> str:
    name = string(path, raw)
    try:
        codecs.lookup(name)
    except LookupError:
        raise ConfigError(
            path, f"unknown encoding {name!r}", "use e.g. utf-8-sig, utf-8, cp1252 or latin-1"
        ) from None
    return name


def _delimiter(path: str, raw: Any) -> str:
    if not isinstance(raw, str) or len(raw) != 1 or raw in '"\r\n':
        raise ConfigError(
            path,
            f"expected one character other than a quote or a newline, got {raw!r}",
            'use e.g. ",", ";", "|" or "\\t" (in double quotes in YAML)',
        )
    return raw


class FileSource(ProblemLog):
    """Streams the objects of a CSV or JSON Lines file; see the module docstring."""

    full = True
    """A file is always read whole."""
    watermark = None

    def __init__(self, settings: FileSourceSettings) -> None:
        super().__init__()
        self.settings = settings

    async def batches(self, size: int) -> AsyncIterator[list[SourceObject]]:
        """Yield lists of at most `size` objects, reading only one batch ahead.

        Each batch is read synchronously (a batch of 1,000 rows takes a few milliseconds), then the
        event loop gets its turn; measured, this is faster than handing each batch to a thread.
        """
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self._forget_problems()
        reader = self._read_csv(size) if self.settings.type == "csv" else self._read_jsonl(size)
        try:
            for batch in reader:
                yield batch
                await asyncio.sleep(0)
        finally:
            reader.close()

    def _open(self) -> IO[str]:
        settings = self.settings
        try:
            # newline="" lets the csv module see quoted newlines; errors="surrogateescape" keeps a bad
            # byte from ending the read: the line that holds it is reported instead.
            return open(settings.path, encoding=settings.encoding, errors="surrogateescape", newline="")
        except FileNotFoundError:
            raise SourceError(
                f"{settings.path}: no such file (check the source's `path:`; a relative path is "
                "resolved against the directory of the job file)"
            ) from None
        except OSError as exc:
            raise SourceError(f"{settings.path}: cannot be read: {exc.strerror or exc}") from None

    def _decode_failed(self, exc: UnicodeDecodeError) -> SourceError:
        return SourceError(
            f"{self.settings.path}: cannot be decoded as {self.settings.encoding} ({exc.reason}); "
            "set the source's `encoding:` to the file's encoding"
        )

    def _read_csv(self, size: int, *, again: bool = False) -> Generator[list[SourceObject], None, None]:
        """The objects of the CSV file; `again` for the read that finds where repeated ids came first."""
        with self._open() as file:
            # strict: a stray character after a closing quote, or a quote left open at the end, is
            # reported rather than silently glued into a field.
            lines = _Lines(file)
            reader = csv.reader(lines, delimiter=self.settings.delimiter, strict=True)
            try:
                header, header_line = self._header(reader, lines)
                yield from self._csv_batches(reader, header, header_line, lines, size, again)
            except UnicodeDecodeError as exc:  # only codecs that surrogateescape cannot help, like utf-16
                raise self._decode_failed(exc) from None

    def _csv_batches(
        self, reader: Reader, header: list[str], header_line: int, lines: _Lines, size: int, again: bool
    ) -> Iterator[list[SourceObject]]:
        settings = self.settings
        width = len(header)
        id_index = header.index(settings.id_column)
        empty_as_null = settings.empty_as_null
        seen: set[str] = set()
        repeats = _Repeats(self)
        batch: list[SourceObject] = []
        previous_end = header_line
        while True:  # a record the csv module cannot parse is reported, then the loop goes on after it
            try:
                for row in reader:
                    # A quoted field may span lines: the record starts after the previous one ended.
                    line = previous_end + 1
                    previous_end = reader.line_num
                    if lines.undecodable:  # the csv module pulls only this record's lines: it is this one
                        lines.undecodable = False
                        self._problem(line, f"has bytes that are not {settings.encoding}; row skipped")
                        continue
                    if len(row) != width:
                        if row and len(row) < width and lines.unterminated:
                            # Only the file's last line can lack a newline: the export was cut in this row.
                            torn = f"{len(row)} of the header's {width} fields, no newline"
                            self._problem(line, _torn(torn))
                        elif row:  # an empty list is a blank line
                            self._problem(line, f"has {len(row)} fields, the header has {width}; row skipped")
                        continue
                    source_id = row[id_index]
                    if not source_id or source_id.isspace():
                        self._problem(line, f"has no id: {settings.id_column!r} is empty; row skipped")
                        continue
                    if (id_flaw := flaw(source_id)) is not None:
                        self._problem(line, f"has an id that holds {id_flaw}; row skipped")
                        continue
                    count = len(seen)
                    seen.add(source_id)
                    if len(seen) == count:
                        repeats.add(line, source_id)
                        continue
                    # Not zip(strict=True): the row has the header's width (checked above), and strict
                    # costs a third of building the dict.
                    if empty_as_null and "" in row:  # most rows have no empty field
                        attributes = {key: value or None for key, value in zip(header, row, strict=False)}
                    else:
                        attributes = dict(zip(header, row, strict=False))
                    batch.append(SourceObject(source_id, attributes, line))
                    if len(batch) >= size:
                        yield batch
                        batch = []
                break
            except csv.Error as exc:
                line, previous_end = previous_end + 1, reader.line_num
                lines.undecodable = False
                if str(exc) == _CSV_OPEN_AT_END:  # the file ends inside a quoted field
                    self._problem(
                        line,
                        f"opens a quoted field still open at the end of the file (line {previous_end}): the"
                        " file looks cut off, or a closing quote is missing; skipped to the end",
                    )
                    continue
                self._problem(line, f"cannot be parsed as CSV ({exc}); skipped up to line {previous_end}")
        if not again:
            repeats.name_first_lines(lambda: self._read_csv(size, again=True))
        if batch:
            yield batch

    def _header(self, reader: Reader, lines: _Lines) -> tuple[list[str], int]:
        path = self.settings.path
        try:
            header = next(row for row in reader if row)
        except StopIteration:
            raise SourceError(f"{path}: the file is empty (its first row must name the columns)") from None
        except csv.Error as exc:
            raise SourceError(f"{path}: the header cannot be parsed as CSV ({exc})") from None
        line = reader.line_num
        if lines.undecodable:
            raise SourceError(
                f"{path}: the header on line {line} has bytes that are not {self.settings.encoding} "
                "(set the source's `encoding:` to the file's encoding)"
            )
        id_column = self.settings.id_column
        if id_column not in header:
            columns = ", ".join(repr(column) for column in header)
            raise SourceError(
                f"{path}: the header on line {line} has no column {id_column!r}; its columns are {columns} "
                f"({self._id_column_fix(header)})"
            )
        duplicates = sorted({repr(column) for column in header if header.count(column) > 1})
        if duplicates:
            raise SourceError(
                f"{path}: the header on line {line} names {', '.join(duplicates)} more than once "
                "(give each column its own name)"
            )
        return header, line

    def _id_column_fix(self, header: list[str]) -> str:
        settings = self.settings
        fix = "set the source's `id_column:` to the column that holds each object's unique id"
        by_case = {column.strip().casefold(): column for column in header}
        close = by_case.get(settings.id_column.strip().casefold()) or next(
            iter(difflib.get_close_matches(settings.id_column, header, n=1)), None
        )
        if close is not None:
            fix = f"did you mean {close!r}? {fix}"
        if len(header) == 1 and any(mark in header[0] for mark in ",;\t|"):
            fix += f"; the header was read as one column, so check `delimiter:` ({settings.delimiter!r})"
        return fix

    def _read_jsonl(self, size: int, *, again: bool = False) -> Generator[list[SourceObject], None, None]:
        """The objects of the JSON Lines file; `again` as for `_read_csv`."""
        seen: set[str] = set()
        repeats = _Repeats(self)
        batch: list[SourceObject] = []
        with self._open() as file:
            try:
                for line, text in enumerate(file, 1):
                    try:
                        value = orjson.loads(text)
                    except orjson.JSONDecodeError as exc:
                        value = _with_lone_surrogates(text, exc)
                        if value is _NOT_JSON:
                            if text.strip():  # blank lines are allowed
                                self._problem(line, self._json_problem(text, exc))
                            continue
                    source_id = value.get(self.settings.id_column) if type(value) is dict else None
                    if type(source_id) is not str or not source_id or source_id.isspace():
                        if type(source_id) is int:
                            source_id = str(source_id)
                        else:
                            self._problem(line, self._json_id_problem(value))
                            continue
                    elif (id_flaw := flaw(source_id)) is not None:
                        self._problem(line, f"has an id that holds {id_flaw}; line skipped")
                        continue
                    count = len(seen)
                    seen.add(source_id)
                    if len(seen) == count:
                        repeats.add(line, source_id)
                        continue
                    batch.append(SourceObject(source_id, value, line))
                    if len(batch) >= size:
                        yield batch
                        batch = []
            except UnicodeDecodeError as exc:  # only codecs that surrogateescape cannot help, like utf-16
                raise self._decode_failed(exc) from None
        if not again:
            repeats.name_first_lines(lambda: self._read_jsonl(size, again=True))
        if batch:
            yield batch

    def _json_problem(self, text: str, exc: orjson.JSONDecodeError) -> str:
        if _undecodable(text):
            return f"has bytes that are not {self.settings.encoding}; line skipped"
        if text[-1:] not in ("\n", "\r"):  # only the file's last line can lack a newline
            return _torn(f"no newline, not valid JSON: {exc}")
        return f"is not valid JSON ({exc}); line skipped"

    def _json_id_problem(self, value: Any) -> str:
        id_column = self.settings.id_column
        if type(value) is not dict:
            return f"is JSON {_json_kind(value)}, not an object; line skipped"
        if id_column not in value:
            keys = ", ".join(repr(key) for key in list(value)[:20])
            return f"has no id: no key {id_column!r} (its keys are {keys}); line skipped"
        source_id = value[id_column]
        if type(source_id) is str or source_id is None:
            return f"has no id: {id_column!r} is empty; line skipped"
        kind = _json_kind(source_id)
        return f"has no id: {id_column!r} is {kind}, not a string or a whole number; line skipped"


class _Lines:
    """The lines of a file, passed through to the csv module, noting whether one held undecodable bytes
    (`undecodable`, until the reader clears it) and whether the last one lacked a newline, which only
    the file's last line can (`unterminated`).

    Read a block of lines at a time: a block that decodes cleanly (nearly all of them) goes to the
    csv module as a list, which it iterates in C; only a block with a bad byte, and an unterminated
    last line, go a line at a time through the checks. Per line, those cost a quarter of the read."""

    __slots__ = ("_file", "undecodable", "unterminated")

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.undecodable = False
        self.unterminated = False

    def __iter__(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._blocks())

    def _blocks(self) -> Iterator[Iterable[str]]:
        while block := self._file.readlines(_BLOCK_CHARS):
            last = block.pop() if block[-1][-1:] not in ("\n", "\r") else None
            if block:
                joined = "".join(block)
                yield block if joined.isascii() or not _undecodable(joined) else self._checked(block)
            if last is not None:  # the end of the file: the export may have been cut in this row
                yield self._checked([last], final=True)

    def _checked(self, lines: list[str], *, final: bool = False) -> Iterator[str]:
        for text in lines:
            if _undecodable(text):
                self.undecodable = True
            self.unterminated = final
            yield text


_BLOCK_CHARS = 1 << 16


_NOT_JSON: Any = object()


def _with_lone_surrogates(text: str, exc: orjson.JSONDecodeError) -> Any:
    """The value of a line that orjson refused only for a lone surrogate escape (`"\\ud800"`), which
    the standard library reads: the mapping then refuses the one object whose mapped value holds it,
    naming the attribute (`engine.core.values`), instead of the line being skipped as not JSON.
    `_NOT_JSON` for any other line orjson refused."""
    if "surrogate" not in str(exc) or _undecodable(text):  # raw bad bytes are the codec's problem
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def _torn(detail: str) -> str:
    return f"ends the file in the middle of a row ({detail}): the file looks cut off; row skipped"


def _repeated(source_id: str, first: int | None) -> str:
    where = "an earlier line" if first is None else f"line {first}"
    return f"repeats the id {source_id!r} of {where}; the repeat is skipped"


class _Repeats:
    """The repeated ids of one read, each a problem at once (so that it counts and keeps its place
    among the problems) whose first line `name_first_lines` fills in once the read is over."""

    __slots__ = ("_ids", "_log")

    def __init__(self, log: ProblemLog) -> None:
        self._log = log
        self._ids: dict[int, str] = {}  # index in the log's problems -> the id repeated there

    def add(self, line: int, source_id: str) -> None:
        log = self._log
        index = len(log.problems)
        log._problem(line, _repeated(source_id, None))
        if len(log.problems) > index:  # kept, not only counted past the cap
            self._ids[index] = source_id

    def name_first_lines(self, read_again: Callable[[], Iterator[list[SourceObject]]]) -> None:
        """Read the file again (its problems not counted twice) for the line where each repeated id
        came first; one that is no longer found (the file changed meanwhile) keeps "an earlier line"."""
        if not self._ids:
            return
        log = self._log
        wanted = set(self._ids.values())
        first: dict[str, int] = {}
        problems, omitted, skipped = log.problems, log.problems_omitted, log.skipped
        log._forget_problems()
        try:
            for batch in read_again():
                for obj in batch:
                    if obj.source_id in wanted:
                        first.setdefault(obj.source_id, obj.line)
        except SourceError:
            pass  # gone or unreadable now: the lines stay unnamed
        finally:
            log.problems, log.problems_omitted, log.skipped = problems, omitted, skipped
        for index, source_id in self._ids.items():
            if source_id in first:
                problems[index] = SourceProblem(problems[index].line, _repeated(source_id, first[source_id]))


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
