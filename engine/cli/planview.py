"""What `roster plan` prints: a table of the objects' changes (the first `--limit`) and the totals, or
JSON Lines (every object, then each job's totals); and the diff lines `roster preview` shares."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import IO, Any

import orjson
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.core.changes import Change, Diff
from engine.core.references import ResolvedReference
from engine.pipeline.dryrun import JobPlan, PlannedObject

MEMBERS_SHOWN = 5
"""Member target ids shown per object in the table (JSON has them all)."""


def value_text(value: Any) -> str:
    """A value as a person reads it in a diff: text quoted, nothing as `(empty)`."""
    if value is None or value == "" or value == []:
        return "(empty)"
    return orjson.dumps(value, default=str).decode()


def change_text(change: Change) -> str:
    return f"{value_text(change.old)} -> {value_text(change.new)}"


def diff_rows(
    changes: Diff, *, old_known: bool = True, references: Sequence[ResolvedReference] = ()
) -> list[tuple[str, str]]:
    """(attribute, what happens to it) for each change, members last; a changed reference attribute
    is followed by the source ids it names and the target ids they are sent as."""
    if old_known:
        rows = [(c.attribute, f"{c.kind}: {change_text(c)}") for c in changes.attributes]
    else:
        rows = [(c.attribute, f"sent as {value_text(c.new)}") for c in changes.attributes]
    if references:
        by_attribute: dict[str, list[tuple[str, str]]] = {}
        for r in references:
            sent = r.target_id or "no target id yet (sent empty)"
            by_attribute.setdefault(r.attribute, []).append(
                (r.attribute, f"  {r.source_id} of {r.job} -> {sent}")
            )
        rows = [
            row
            for attribute, change in rows
            for row in ((attribute, change), *by_attribute.get(attribute, ()))
        ]
    for sign, ids in (("+", changes.members_added), ("-", changes.members_removed)):
        if ids:
            shown = ", ".join(sign + i for i in ids[:MEMBERS_SHOWN])
            more = f" and {len(ids) - MEMBERS_SHOWN:,} more" if len(ids) > MEMBERS_SHOWN else ""
            rows.append(("members", f"{'added' if sign == '+' else 'removed'} {len(ids):,}: {shown}{more}"))
    return rows


class PlanTable:
    """Collects the first `limit` objects of a job's plan for a table; counts the others."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.shown: list[PlannedObject] = []
        self.more = 0

    def __call__(self, planned: PlannedObject) -> None:
        if len(self.shown) < self.limit:
            self.shown.append(planned)
        else:
            self.more += 1

    def print(self, console: Console, plan: JobPlan) -> None:
        if self.shown:
            table = Table(title=f"{plan.job}: the next cycle", title_justify="left", box=box.SIMPLE_HEAD)
            for column in ("object", "action", "attribute", "change"):
                table.add_column(column)
            for planned in self.shown:
                _add_rows(table, planned)
            console.print(table)
        if self.more:
            console.print(
                f"{plan.job}: ... and {self.more:,} more object(s) with an operation "
                "(`--limit N` shows more, `--output json` shows them all)",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


def _add_rows(table: Table, planned: PlannedObject) -> None:
    action = planned.action
    if planned.held:
        action += f" (held: {planned.held.replace('_', ' ')})"
    if planned.enables:
        action += " (enables it again)"
    rows = diff_rows(planned.diff, old_known=planned.old_known, references=planned.references)
    if planned.error:
        rows = [("", f"mapping failed: {planned.error}")]
    elif not planned.old_known:
        rows.insert(0, ("", "last applied values not known (log pruned): every value as sent"))
    elif not rows and action.startswith("update"):
        rows = [("", "no visible attribute changes (a redacted value, or the state only)")]
    first = True
    for attribute, change in rows or [("", "")]:
        table.add_row(
            Text(planned.source_id if first else ""),
            Text(action if first else ""),
            Text(attribute),
            Text(change),
        )
        first = False


def print_totals(console: Console, plans: Sequence[JobPlan]) -> None:
    """The totals of every job, a column each, then each hold and problem in words."""
    table = Table(title="Plan totals", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("", no_wrap=True)
    for plan in plans:
        table.add_column(plan.job, justify="right", no_wrap=True)
    labels = [
        ("create", "created"),
        ("update", "updated"),
        ("disable", "disabled"),
        ("delete", "deleted"),
        ("unchanged", "unchanged"),
        ("out of scope", "out_of_scope"),
        ("fail (mapping)", "failed"),
        ("held for approval", "staged"),
    ]
    for label, key in labels:
        table.add_row(label, *(f"{plan.totals[key]:,}" for plan in plans))
    table.add_row("read", *(f"{plan.read:,}" for plan in plans))
    console.print(table)
    for plan in plans:
        say = f"{escape(plan.job)}:"
        if plan.error:
            console.print(f"[bold red]{say} the source could not be read:[/] {escape(plan.error)}")
        if not plan.full:
            console.print(f"{say} an incremental read: nothing would be deprovisioned", highlight=False)
        if plan.skipped_rows:
            console.print(
                f"[yellow]{say} {plan.skipped_rows:,} source row(s) could not be read[/]", highlight=False
            )
        for hold in plan.holds:
            console.print(f"[yellow]{say} would hold for approval:[/] {escape(str(hold))}", highlight=False)
        if plan.totals["pending_references"]:
            console.print(
                f"{say} {plan.totals['pending_references']:,} reference(s) name an object with no target id "
                "(not provisioned yet, failed, or gone): sent empty, set by a later cycle once it has one",
                highlight=False,
            )
        if plan.totals["pending_members"]:
            console.print(
                f"{say} {plan.totals['pending_members']:,} group member(s) not provisioned yet",
                highlight=False,
            )
    console.print("Nothing was written: no state, no log record, no operation sent.", highlight=False)


def object_line(job: str, planned: PlannedObject) -> bytes:
    """One object of the plan as a JSON line."""
    changes = planned.diff
    record: dict[str, Any] = {
        "job": job,
        "source_id": planned.source_id,
        "action": planned.action,
        "attributes": {
            c.attribute: {"change": c.kind, "old": c.old, "new": c.new} for c in changes.attributes
        },
        "old_known": planned.old_known,
    }
    if changes.members_added or changes.members_removed:
        record["members_added"] = list(changes.members_added)
        record["members_removed"] = list(changes.members_removed)
    if planned.references:
        record["references"] = [dataclasses.asdict(r) for r in planned.references]
    if planned.enables:
        record["enables"] = True
    if planned.held:
        record["held"] = planned.held
    if planned.error:
        record["error"] = planned.error
    return orjson.dumps(record, default=str) + b"\n"


def totals_line(plan: JobPlan) -> bytes:
    """A job's totals as the JSON line that ends its part of the plan."""
    record = {
        "job": plan.job,
        "totals": plan.counts(),
        "holds": [{"kind": hold.kind, "reason": hold.reason} for hold in plan.holds],
        "read": plan.read,
        "full": plan.full,
        "skipped_rows": plan.skipped_rows,
        "error": plan.error,
        "elapsed_s": round(plan.elapsed_s, 3),
    }
    return orjson.dumps(record) + b"\n"


class JsonLines:
    """Writes each object of a job's plan as a JSON line as it is planned."""

    def __init__(self, out: IO[bytes], job: str) -> None:
        self.out = out
        self.job = job

    def __call__(self, planned: PlannedObject) -> None:
        self.out.write(object_line(self.job, planned))
