"""`roster agents`: the workers and engines a running engine hears (`GET /agents`), and the part of
`roster status` that says how many workers serve each target, warning of a target with jobs and none.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.cli.client import ApiClient

STATE_COLOURS = {"running": "green", "draining": "yellow", "gone": "red"}


def add_agents_command(
    commands: Any, common: argparse.ArgumentParser, client: Callable[[argparse.Namespace], ApiClient]
) -> None:
    agents = commands.add_parser(
        "agents",
        parents=[common],
        help="show the workers and engines a running engine hears: versions, targets, health",
    )
    agents.set_defaults(func=lambda args, console: _agents(client(args), args, console))


def _agents(api: ApiClient, args: argparse.Namespace, console: Console) -> int:
    listed = api.get("/agents")
    if args.json:
        console.print_json(orjson.dumps(listed).decode())
        return 0
    table = Table(title="Agents", title_justify="left")
    for column in ("id", "kind", "host", "version", "wire", "state", "targets", "up", "last seen"):
        table.add_column(column)
    for agent in listed["agents"]:
        state = agent["state"]
        shown = f"[{STATE_COLOURS.get(state, 'magenta')}]{state}[/]"
        if agent.get("gone_reason"):
            shown += f" ({escape(agent['gone_reason'])})"
        table.add_row(
            escape(agent["id"]),
            agent["kind"],
            escape(agent["host"]),
            escape(agent["version"]),
            ",".join(str(v) for v in agent["wire_versions"]),
            shown,
            ", ".join(
                f"{escape(t['name'])} ({t['in_flight']} in flight, up to {t['concurrency']} at once)"
                for t in agent["targets"]
            ),
            _duration(agent["uptime_s"]),
            f"{_duration(agent['last_seen_s'])} ago",
        )
    console.print(table)
    for agent in listed["agents"]:
        for target in agent["targets"]:
            if target.get("last_error") and agent["state"] != "gone":
                where = f"{escape(agent['id'])}: {escape(target['name'])}"
                console.print(
                    f"{where}: last error: {escape(target['last_error'])}",
                    highlight=False,
                    soft_wrap=True,
                )
    print_target_warnings(console, listed)
    return 0


def print_targets(console: Console, listed: dict[str, Any], only: set[str] | None = None) -> None:
    """For `roster status`: per target of the jobs shown, the workers running for it, then warnings."""
    targets = [t for t in listed["targets"] if only is None or t["target"] in only]
    table = Table(title="Targets", title_justify="left")
    for column in ("target", "jobs", "workers"):
        table.add_column(column)
    for target in targets:
        workers = target["workers"]
        colour = "green" if workers else "red"
        table.add_row(escape(target["target"]), ", ".join(target["jobs"]), f"[{colour}]{workers}[/]")
    console.print(table)
    print_target_warnings(console, {**listed, "targets": targets})


def print_target_warnings(console: Console, listed: dict[str, Any]) -> None:
    """A line for each target with jobs and no running worker: its operations wait, they are not slow."""
    for target in listed["targets"]:
        if target["jobs"] and not target["workers"]:
            heard = (
                f"in the {_duration(listed['listening_s'])} the engine has listened"
                if listed["listening_s"] < 60
                else "now"
            )
            console.print(
                f"[bold yellow]warning[/] target '{escape(target['target'])}' has jobs"
                f" ({escape(', '.join(target['jobs']))}) and no live worker {heard}: its operations wait in"
                " its queue until a worker serving it starts (`roster agents` lists the workers)",
                highlight=False,
                soft_wrap=True,
            )


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
