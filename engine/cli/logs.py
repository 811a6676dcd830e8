"""`roster logs`: the provisioning log of a running engine, as a table, JSON, or a JSONL/CSV export.

Newest first by default, as `journalctl -r` and the Entra portal show a log; `--oldest-first` reads it
in the order it was written. Exports carry times in ISO 8601 (UTC). `--redact` hides what a record
says about a person, so that a log can be handed on: see `redact`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.cli.client import ApiClient

REDACTED = "***"
MIN_QUOTED = 2
"""Attribute values shorter than this are not searched for in error messages (a "1" is everywhere)."""


def add_logs_command(commands: Any, common: argparse.ArgumentParser, client: Any) -> None:
    """Add `roster logs` to `roster`'s subparsers; `client(args)` opens the admin API."""
    logs = commands.add_parser("logs", parents=[common], help="read the provisioning log, newest first")
    logs.add_argument("--job")
    logs.add_argument("--status", help="succeeded, failed, skipped, retrying or warning")
    logs.add_argument(
        "--action",
        help="create, update, disable, delete, staged_delete, staged_update or reconcile (its findings)",
    )
    logs.add_argument("--source-id")
    logs.add_argument(
        "--person",
        help="a source or target id, a name or a mail: the records of everyone it gives "
        "(case aside; from 3 characters on, everyone it begins)",
    )
    logs.add_argument("--cycle", help="a cycle id")
    logs.add_argument("--since", type=moment, help="from: 2h (ago), 2024-06-01T08:00, or Unix seconds")
    logs.add_argument("--until", type=moment, help="before: same forms as --since")
    logs.add_argument(
        "--oldest-first", action="store_true", help="oldest record first (default: newest first)"
    )
    logs.add_argument("--after-id", type=int, help="only records after this id (paging --oldest-first)")
    logs.add_argument("--before-id", type=int, help="only records before this id (paging newest first)")
    logs.add_argument("--cursor", help="the next page: where the page before ended, as the table says")
    logs.add_argument("--limit", type=int, default=100, help="at most this many records (default 100)")
    logs.add_argument(
        "--export", choices=("jsonl", "csv"), help="stream every match to stdout, times in ISO 8601 UTC"
    )
    logs.add_argument(
        "--redact",
        action="store_true",
        help="hide every attribute value (and those values where an error message quotes them); "
        "ids, job, action, status and error codes stay",
    )
    logs.set_defaults(func=lambda args, console: logs_command(args, console, client(args)))


def moment(value: str) -> float:
    """Unix seconds from `90m`/`2h`/`7d` (that long ago), an ISO 8601 time (UTC unless it says), or
    Unix seconds."""
    ago = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if ago:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86_400}[ago.group(2)]
        return time.time() - float(ago.group(1)) * unit
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time: give 2h (ago), 2024-06-01T08:00 or Unix seconds"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every attribute value replaced by `***` (the attribute names stay, so one sees
    what changed), and those values removed from its error message and steps wherever quoted. Ids
    (source, target, operation, cycle), job, action, status, times and error class and code stay: a
    redacted log is still followed object by object and counted."""
    attributes = record.get("attributes") or {}
    values = sorted(
        {text for value in attributes.values() for text in _texts(value) if len(text) >= MIN_QUOTED},
        key=len,
        reverse=True,  # a longer value first: "Ann Lee" before "Ann"
    )
    hidden = dict(record)
    if attributes:
        hidden["attributes"] = dict.fromkeys(attributes, REDACTED)
    if values and hidden.get("error_message"):
        hidden["error_message"] = _scrub(hidden["error_message"], values)
    if values and isinstance(hidden.get("steps"), dict):
        hidden["steps"] = {k: _scrub(v, values) for k, v in hidden["steps"].items()}
    return hidden


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif value is not None and value != REDACTED:
        yield str(value)


def _scrub(text: str, values: list[str]) -> str:
    for value in values:
        text = text.replace(value, REDACTED)
    return text


def logs_command(args: argparse.Namespace, console: Console, api: ApiClient) -> int:
    where = {
        "job": args.job,
        "status": args.status,
        "action": args.action,
        "source_id": args.source_id,
        "cycle_id": args.cycle,
        "person": args.person,
        "cursor": args.cursor,
        "since": args.since,
        "until": args.until,
        "after_id": args.after_id,
        "before_id": args.before_id,
        "order": "oldest" if args.oldest_first else "newest",
    }
    if args.export:
        _export(api, where, args.export, redacted=args.redact)
        return 0
    page = api.get("/logs", {**where, "limit": args.limit})
    if args.redact:
        page["records"] = [redact(record) for record in page["records"]]
    if args.json:
        console.print_json(orjson.dumps(page).decode())
        return 0
    console.print(_table(page["records"], newest_first=not args.oldest_first))
    if page.get("next_cursor") is not None:
        more = "older" if not args.oldest_first else "more"
        console.print(f"{more}: add --cursor {page['next_cursor']}", highlight=False)
    return 0


def _export(api: ApiClient, where: dict[str, Any], form: str, *, redacted: bool) -> None:
    out = sys.stdout.buffer
    if not redacted:
        for chunk in api.stream("/logs/export", {**where, "format": form}):
            out.write(chunk)
        out.flush()
        return
    # Redacted: read the JSON Lines, hide, and write them in the asked form with the engine's own
    # formatting, a page of lines at a time.
    from engine.store.history import csv_rows, jsonl

    header = True
    for records in _pages(_lines(api.stream("/logs/export", {**where, "format": "jsonl"}))):
        hidden = [redact(orjson.loads(line)) for line in records]
        out.write(jsonl(hidden) if form == "jsonl" else csv_rows(hidden, header=header).encode())
        header = False
    if header and form == "csv":
        out.write(csv_rows([], header=True).encode())
    out.flush()


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        *lines, rest = (rest + chunk).split(b"\n")
        yield from (line for line in lines if line)
    if rest:
        yield rest


def _pages(lines: Iterable[bytes], size: int = 1_000) -> Iterator[list[bytes]]:
    page: list[bytes] = []
    for line in lines:
        page.append(line)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _table(records: list[dict[str, Any]], *, newest_first: bool) -> Table:
    order = "newest first" if newest_first else "oldest first"
    table = Table(title=f"Provisioning log ({order})", title_justify="left")
    for column in ("id", "at (UTC)", "job", "action", "status", "source id", "target id", "message"):
        table.add_column(column, overflow="fold")
    for record in records:
        message = " ".join(
            str(record[k]) for k in ("error_class", "error_code", "error_message") if record.get(k)
        )
        # Text cells: a value such as `emails[type eq "work"]` is data, not rich markup.
        table.add_row(
            str(record["id"]),
            datetime.fromtimestamp(record["at"], UTC).strftime("%Y-%m-%d %H:%M:%S"),
            Text(record["job"]),
            record["action"],
            record["status"],
            Text(record["source_id"] or ""),
            Text(record["target_id"] or ""),
            Text(message),
        )
    return table
