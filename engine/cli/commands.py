"""The commands that operate a running engine through its admin API: `roster status`, `logs`
(`engine/cli/logs.py`), `audit` (`engine/cli/audit.py`), `agents` (`engine/cli/agents.py`), `trigger`,
`pause`, `resume`, `restart`, `reset`, `approve` and `reject`. Those that act take `--comment`, which
the audit trail records beside the API account of the token.

They never open the state store themselves: the engine may run elsewhere, and it alone writes. Each
prints rich tables, or with `--json` the API's answer as it came.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table

from common.errors import RosterError
from engine.cli.agents import add_agents_command, print_targets
from engine.cli.audit import add_audit_command
from engine.cli.client import DEFAULT_URL, ApiClient
from engine.cli.logs import add_logs_command

DEFAULT_TOKEN_FILE = Path(".roster/api-token")
APPROVE_TIMEOUT_S = 3600.0
SWITCH_HELP = {
    "pause": "pause a job: a running cycle publishes nothing new, no cycle starts until resumed",
    "resume": "resume a paused job",
    "restart": "take a job out of quarantine and drop its staged deprovisions",
    "reset": "restart a job and forget its links to target objects (asks first; --yes does not)",
    "approve": "let the deprovisions and updates held for approval go ahead (runs a cycle now)",
    "reject": "drop the deprovisions and updates held for approval",
}
DONE = {"pause": "paused", "resume": "resumed", "restart": "restarted", "reset": "reset"}
ALREADY = {"pause": "already paused", "resume": "not paused"}
"""What pause and resume say, without asking the engine for anything, of a job already so."""


def add_operating_commands(commands: Any) -> None:
    """Add the commands to `roster`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        default=os.environ.get("ROSTER_API_URL", DEFAULT_URL),
        help=f"the engine's admin API (env ROSTER_API_URL; default {DEFAULT_URL})",
    )
    common.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding the API token (default: env ROSTER_API_TOKEN, else {DEFAULT_TOKEN_FILE})",
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")

    status = commands.add_parser("status", parents=[common], help="show the jobs of a running engine")
    status.add_argument("job", nargs="?", help="only this job, with its last cycles")
    status.set_defaults(func=_status)

    add_logs_command(commands, common, client)
    add_audit_command(commands, common, client)
    add_agents_command(commands, common, client)

    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--comment", help="why: the audit trail records it with who did it")
    trigger = commands.add_parser("trigger", parents=[common, acting], help="start a cycle of a job now")
    trigger.add_argument("job")
    trigger.set_defaults(func=_trigger)

    for name, text in SWITCH_HELP.items():
        switch = commands.add_parser(name, parents=[common, acting], help=text)
        switch.add_argument("job")
        if name == "reset":
            switch.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        switch.set_defaults(func=_switch, switch=name)


def client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.api, _token(args.token_file))


def _token(token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RosterError(f"--token-file: cannot read {token_file}: {exc.strerror}") from None
    env = os.environ.get("ROSTER_API_TOKEN")
    if env:
        return env.strip()
    if DEFAULT_TOKEN_FILE.is_file():
        return DEFAULT_TOKEN_FILE.read_text(encoding="utf-8").strip()
    return None


def _json(console: Console, data: Any) -> None:
    console.print_json(orjson.dumps(data, default=str).decode())


# -- status ------------------------------------------------------------------------------------------


def _status(args: argparse.Namespace, console: Console) -> int:
    api = client(args)
    listed = {} if args.job else api.get("/jobs")
    jobs = [api.get(f"/jobs/{args.job}")] if args.job else listed["jobs"]
    if args.json:
        _json(console, jobs[0] if args.job else listed)
        return 0
    for warning in listed.get("warnings", []):
        console.print(f"[bold yellow]warning[/] {warning}", highlight=False, soft_wrap=True)
    table = Table(title="Jobs", title_justify="left")
    for column in (
        "job",
        "state",
        "target",
        "last cycle",
        "ended",
        "changes",
        "target read back",
        "next run",
    ):
        table.add_column(column)
    for job in jobs:
        cycles = [c for c in job["last_cycles"] if not c["trigger"].startswith("reconcile:")]
        last = cycles[0] if cycles else None
        table.add_row(
            job["job"],
            _state(job["state"]),
            job["target"],
            last["status"] if last else "none yet",
            _when(last["finished_at"]) if last else "",
            _changes(last["counts"]) if last else "",
            _reconciled(job.get("last_reconciled")),
            (job["next_run"] or "")[:19].replace("T", " "),
        )
    console.print(table)
    print_targets(console, api.get("/agents"), only={job["target"] for job in jobs})
    for job in jobs:
        _explain(console, job)
    if args.job:
        _cycles(console, jobs[0]["last_cycles"])
    return 0


def _now(state: str, done: str) -> str:
    """ "; now STATE" after what was done, unless it says the same ("paused; now paused")."""
    return "" if state == done else f"; now {_state(state)}"


def _state(state: str) -> str:
    colour = {"active": "green", "paused": "yellow", "quarantined": "red"}.get(state, "magenta")
    return f"[{colour}]{state.replace('_', ' ')}[/]"


def _explain(console: Console, job: dict[str, Any]) -> None:
    """Why a job is not simply active, and what a running cycle has done so far."""
    name = job["job"]
    if job["quarantine"]:
        console.print(f"{name}: quarantined: {escape(job['quarantine']['reason'])}", highlight=False)
    if job["approval"]:
        staged = job["approval"]["staged"]
        console.print(
            f"{name}: {staged} held operation(s) wait for `roster approve {name}` or `roster reject {name}`:"
            f" {escape(job['approval']['reason'])}",
            highlight=False,
        )
    now = time.time()
    pending = job.get("pending_deletions") or []
    if pending:
        first, count = pending[0], f"{len(pending)}{' or more' if len(pending) >= 100 else ''}"
        console.print(
            f"{name}: {count} leaver(s) disabled and kept for the grace period; the first,"
            f" {escape(first['source_id'])}, is deleted on {_day(first['delete_at'])} unless back"
            f" in the source (`roster status {name} --json` lists them)",
            highlight=False,
        )
    if job.get("next_date_change"):
        console.print(
            f"{name}: the next start or end date is reached on {_day(job['next_date_change'])};"
            " the job runs then",
            highlight=False,
        )
    for run in job["running"]:
        line = (
            f"{name}: cycle {run['cycle_id']} running {_duration(now - run['started_at'])}:"
            f" read {run['read']}, planned {run['planned']}, settled {run['settled']},"
            f" retries {run['retries']}"
        )
        deadline_at = run.get("deadline_at")
        if run.get("past_deadline"):
            line += (
                f"; [red]past its deadline[/] by {_duration(now - deadline_at)}, {run['awaiting']} result(s)"
                " never came and cannot be recorded as lost (is the state store reachable?)"
            )
        elif deadline_at is not None and run["awaiting"]:
            line += f"; awaits {run['awaiting']} result(s), gives them up in {_duration(deadline_at - now)}"
        console.print(line, highlight=False)


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cycles(console: Console, cycles: list[dict[str, Any]]) -> None:
    table = Table(title="Last cycles", title_justify="left")
    for column in ("cycle", "trigger", "status", "started", "seconds", "changes"):
        table.add_column(column)
    for cycle in cycles:
        seconds = cycle.get("duration_s")
        table.add_row(
            cycle["cycle_id"],
            cycle["trigger"],
            cycle["status"],
            _when(cycle["started_at"]),
            "" if seconds is None else f"{seconds:.1f}",
            _changes(cycle["counts"]),
        )
    console.print(table)


def _reconciled(last: dict[str, Any] | None) -> str:
    """When the target was last reconciled and what was wrong then ("never": only the state speaks)."""
    if not last:
        return "never"
    wrong = ("drifted", "missing", "unlinked", "orphan")
    found = ", ".join(f"{last['situations'][k]} {k}" for k in wrong if last["situations"].get(k))
    return f"{_duration(time.time() - last['at'])} ago: {found or 'all in step'}"


def _changes(counts: dict[str, Any]) -> str:
    shown: tuple[str, ...] = (
        "created",
        "updated",
        "disabled",
        "deleted",
        "failed",
        "lost_in_transit",
        "staged",
    )
    if "in_step" in counts:  # a reconciliation's record: what it found wrong
        shown = ("drifted", "missing", "unlinked", "orphan", "unknown")
    parts = [f"{counts[k]} {k}" for k in shown if counts.get(k)]
    return ", ".join(parts) or "none"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


# -- doing -------------------------------------------------------------------------------------------


def _trigger(args: argparse.Namespace, console: Console) -> int:
    started = client(args).post(f"/jobs/{args.job}/cycles", _comment(args))
    if args.json:
        _json(console, started)
    else:
        said = started.get("message") or "a cycle started"
        console.print(f"{args.job}: {said}; `roster status {args.job}` follows it", highlight=False)
    return 0


def _switch(args: argparse.Namespace, console: Console) -> int:
    name, job = args.switch, args.job
    if name == "reset" and not args.yes and not _confirmed(job):
        console.print("reset cancelled", highlight=False)
        return 1
    api = client(args)
    if name in ALREADY:
        now = api.get(f"/jobs/{job}")
        if (now["state"] == "paused") == (name == "pause"):
            if args.json:
                _json(console, now)
            else:
                said = ALREADY[name] if name == "pause" else f"{ALREADY[name]} ({_state(now['state'])})"
                console.print(f"{job}: {said}", highlight=False)
            return 0
    done = api.post(
        f"/jobs/{job}/{name}", _comment(args), timeout_s=APPROVE_TIMEOUT_S if name == "approve" else None
    )
    if args.json:
        _json(console, done)
    elif name == "approve":
        cycle = done["cycle"]
        console.print(
            f"{job}: approved {done['approved']} held operation(s);"
            f" cycle {cycle['cycle_id']} {cycle['status']}: {cycle['updated']} updated,"
            f" {cycle['disabled']} disabled, {cycle['deleted']} deleted, {cycle['failed']} failed",
            highlight=False,
        )
    elif name == "reject":
        console.print(f"{job}: dropped {done['rejected']} held operation(s)", highlight=False)
    else:
        console.print(f"{job}: {DONE[name]}{_now(done['state'], DONE[name])}", highlight=False)
    return 0


def _comment(args: argparse.Namespace) -> dict[str, str] | None:
    """The body of an acting request: the comment, when one was given (no body otherwise)."""
    return {"comment": args.comment} if args.comment else None


def _confirmed(job: str) -> bool:
    if not sys.stdin.isatty():
        raise RosterError(
            f"reset asks for confirmation and no one can answer here: run `roster reset {job} --yes`"
        )
    return Confirm.ask(
        f"Reset {job!r}? It forgets every link to target objects; the next cycle matches each object again",
        default=False,
    )
