"""`roster audit`: who did what to a running engine's jobs, newest first, as a table or JSON.

The entries come from the admin API (`GET /audit`), which needs the viewer role; those of the command
lines that act without the API (`roster run`, `provision`, `reconcile`) are in the same trail, under
the login of who ran them, from the address `local`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.cli.client import ApiClient
from engine.cli.logs import moment


def add_audit_command(commands: Any, common: argparse.ArgumentParser, client: Any) -> None:
    """Add `roster audit` to `roster`'s subparsers; `client(args)` opens the admin API."""
    audit = commands.add_parser(
        "audit", parents=[common], help="read the audit trail: who did what, when, from where; newest first"
    )
    audit.add_argument("--actor", help="only this actor: an API account (admin, ...) or a login")
    audit.add_argument("--job", help="only this job")
    audit.add_argument("--action", help="trigger, pause, resume, restart, reset, approve, reject, ...")
    audit.add_argument("--since", type=moment, help="from: 2h (ago), 2024-06-01T08:00, or Unix seconds")
    audit.add_argument("--until", type=moment, help="before: same forms as --since")
    audit.add_argument("--limit", type=int, default=100, help="at most this many entries (default 100)")
    audit.add_argument(
        "--output", choices=("table", "json"), default="table", help="a table (default) or the API's JSON"
    )
    audit.set_defaults(func=lambda args, console: audit_command(args, console, client(args)))


def audit_command(args: argparse.Namespace, console: Console, api: ApiClient) -> int:
    where = {
        "actor": args.actor,
        "job": args.job,
        "action": args.action,
        "since": args.since,
        "until": args.until,
        "limit": args.limit,
    }
    page = api.get("/audit", where)
    if args.json or args.output == "json":
        console.print_json(orjson.dumps(page).decode())
        return 0
    console.print(_table(page["records"]))
    return 0


def _table(records: list[dict[str, Any]]) -> Table:
    table = Table(title="Audit trail (newest first)", title_justify="left")
    for column in ("at (UTC)", "actor", "from", "action", "job", "object", "outcome", "comment"):
        table.add_column(column, overflow="fold")
    for record in records:
        kind = {"service_account": "account", "oidc_user": "oidc", "local_user": "login"}
        actor = f"{record['actor_name']} ({kind.get(record['actor_kind'], record['actor_kind'])})"
        outcome = record["outcome"] if not record["reason"] else f"{record['outcome']}: {record['reason']}"
        # Text cells: names and comments are data, not rich markup.
        table.add_row(
            datetime.fromtimestamp(record["at"], UTC).strftime("%Y-%m-%d %H:%M:%S"),
            Text(actor),
            Text(record["address"]),
            record["action"],
            Text(record["job"] or ""),
            Text(record["object"] or ""),
            Text(outcome),
            Text(record["comment"] or ""),
        )
    return table
