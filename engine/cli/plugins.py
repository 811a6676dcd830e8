"""`roster plugins`: every connector and source type installed, with its version and where it comes from.

A type that could not be loaded is listed with its error, and the command exits 1, so that a deployment
check catches a broken plugin before a job that names it does.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.plugins import API_VERSION, PluginSet
from engine.sources.plugin import source_types
from workers.connectors.plugin import connector_types


def plugins_command(args: argparse.Namespace, console: Console) -> int:
    groups: list[tuple[str, PluginSet[Any]]] = [("connector", connector_types()), ("source", source_types())]
    rows = [row for kind, found in groups for row in _rows(kind, found)]
    if args.json:
        console.out(orjson.dumps({"api_version": API_VERSION, "plugins": rows}).decode(), highlight=False)
    else:
        table = Table("kind", "type", "package", "state", title="Installed types")
        table.add_column("entry point", overflow="fold")
        for row in rows:
            state = "[green]loaded[/]" if row["loaded"] else f"[red]broken:[/] {escape(row['error'])}"
            package = escape(f"{row['distribution']} {row['version']}")
            table.add_row(row["kind"], row["type"], package, state, escape(row["entry_point"]))
        console.print(table)
        broken = sum(not row["loaded"] for row in rows)
        console.print(
            f"{len(rows) - broken} loaded, {broken} broken (API version {API_VERSION})",
            highlight=False,
            soft_wrap=True,
        )
    return 1 if any(not row["loaded"] for row in rows) else 0


def _rows(kind: str, found: PluginSet[Any]) -> list[dict[str, Any]]:
    rows = []
    for loaded in found.loaded.values():
        origin = loaded.origin
        rows.append(_row(kind, origin, loaded=True, summary=loaded.plugin.summary, error=""))
    for broken in found.broken:
        rows.append(_row(kind, broken.origin, loaded=False, summary="", error=broken.error))
    return sorted(rows, key=lambda row: (row["type"], row["distribution"]))


def _row(kind: str, origin: Any, *, loaded: bool, summary: str, error: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "type": origin.name,
        "loaded": loaded,
        "distribution": origin.distribution,
        "version": origin.version,
        "builtin": origin.builtin,
        "entry_point": origin.value,
        "summary": summary,
        "error": error,
    }
