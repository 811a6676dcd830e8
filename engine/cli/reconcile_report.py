"""What `roster reconcile` shows: the target's objects per situation, what was done about them, and
the first findings, each in words."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from common.process.cli import EXIT_ATTENTION, EXIT_FAILED, EXIT_OK
from engine.config import JobConfig
from engine.core.reconcile import SITUATIONS, Finding, shown
from engine.pipeline.reconciling import ReconcileSummary
from queues.contracts import MEMBERS

_LEFT_WRONG = ("drifted", "missing", "unlinked", "orphan", "unknown")

_SET_RIGHT_BY = {
    "drifted": {"correct"},
    "missing": {"recreate"},
    "unlinked": {"link"},
    "orphan": {"disable", "delete"},
}

_DONE_WORDS = {
    "correct": "drifted object(s) corrected by sending every mapped attribute again",
    "recreate": "missing object(s) created again",
    "link": "unlinked object(s) linked",
    "disable": "orphan(s) disabled",
    "delete": "orphan(s) deleted",
}


def print_reconciliation(console: Console, s: ReconcileSummary) -> None:
    if s.error is not None:
        console.print(f"[red]{escape(s.job)}: reconciliation failed[/]: {escape(s.error)}")
        console.print("nothing was changed.")
        return
    console.print(f"[bold]{escape(s.job)}[/]: the target against the source (reconciliation {s.cycle_id})")
    table = Table()
    table.add_column("situation")
    table.add_column("objects", justify="right")
    for situation in SITUATIONS:
        count = s.situations.get(situation, 0)
        if count or situation == "in_step":
            style = "red" if situation in _LEFT_WRONG else ""
            table.add_row(situation.replace("_", " "), f"[{style}]{count:,}[/]" if style else f"{count:,}")
    console.print(table)
    console.print(
        f"listed {s.listed:,} object(s) from the target in {s.listing_s:.1f} s, read {s.read:,} from "
        f"the source; {s.elapsed_s:.1f} s in all"
    )
    for finding in s.findings:
        who = finding.source_id or finding.target_id or "?"
        console.print(f"  {escape(who)}: {escape(finding.describe())}", highlight=False)
    shown = len(s.findings)
    wrong = sum(s.situations.get(x, 0) for x in _LEFT_WRONG)
    if wrong > shown:
        console.print(
            f"  ... and {wrong - shown:,} more: `roster logs --action reconcile` lists every finding"
        )
    for action, count in s.corrections.items():
        console.print(f"{count:,} {_DONE_WORDS.get(action, action)}")
    left = left_as_found(s)
    if left:
        each = ", ".join(f"{count:,} {situation}" for situation, count in left.items())
        console.print(f"[yellow]left as found[/] (reported only, by the job's `reconcile:` policy): {each}")
    if s.held:
        console.print(f"[yellow]held[/]: {escape(s.held)}")
    if s.cycle is not None:
        c = s.cycle
        console.print(
            f"cycle {c.cycle_id} applied the corrections: {c.status}, created {c.created:,}, "
            f"updated {c.updated:,}, failed {c.failed:,}"
        )
    if s.in_step:
        console.print(
            f"{s.job}: the target matches the source ({s.situations.get('in_step', 0):,} objects in step)."
        )


def left_as_found(s: ReconcileSummary) -> dict[str, int]:
    """The findings nothing was set in motion for (reported only), by situation."""
    return {
        situation: count
        for situation, count in s.situations.items()
        if count
        and situation in _LEFT_WRONG
        and not (_SET_RIGHT_BY.get(situation, set()) & s.corrections.keys())
    }


def reconcile_exit_code(s: ReconcileSummary) -> int:
    """1 when the reconciliation or the cycle applying its corrections failed; 3 when something is left
    for a person (findings only reported, orphans, held operations); 0 when all is in step or set
    right."""
    if s.status == "failed" or (s.cycle is not None and s.cycle.failed):
        return EXIT_FAILED
    return EXIT_ATTENTION if s.held or left_as_found(s) else EXIT_OK


def planned_action(job: JobConfig, finding: Finding) -> str:
    """What a reconciliation of `job` would do about `finding`, by its policy."""
    policy = job.reconcile
    return {
        "drifted": "update" if policy.drifted == "correct" else "report",
        "missing": "create" if policy.missing == "recreate" else "report",
        "unlinked": "link",
        "unprovisioned": "create",
        "orphan": policy.orphan,
    }.get(finding.situation, "none")


def print_reconcile_plan(console: Console, job: JobConfig, s: ReconcileSummary, limit: int) -> None:
    """The first `limit` findings, each attribute as found -> as expected, then the counts."""
    if s.error is not None:
        console.print(f"[red]{escape(s.job)}: the target could not be read back[/]: {escape(s.error)}")
        return
    console.print(f"[bold]{escape(s.job)}[/]: the target read back (old: as the target holds it)")
    for finding in s.findings[:limit]:
        who = finding.source_id or finding.target_id or "?"
        console.print(
            f"  {escape(who)}: {finding.situation} -> {planned_action(job, finding)}", highlight=False
        )
        for drift in finding.drift:
            if drift.attribute == MEMBERS:
                console.print(f"      {escape(str(drift))}", highlight=False)
            else:
                old, new = shown(drift.found), shown(drift.expected)
                console.print(
                    f"      {escape(drift.attribute)}: {escape(old)} -> {escape(new)}", highlight=False
                )
    if len(s.findings) > limit:
        console.print(f"  ... and {len(s.findings) - limit:,} more (--limit, or --output json for all)")
    counts = ", ".join(
        f"{s.situations.get(x, 0):,} {x.replace('_', ' ')}" for x in SITUATIONS if s.situations.get(x)
    )
    console.print(f"{escape(s.job)}: {counts or 'nothing listed'}; nothing was changed or written")


def reconcile_plan_lines(job: JobConfig, s: ReconcileSummary) -> bytes:
    """JSON Lines: one per finding (its action by the policy, each attribute's old and new), then the
    job's totals per situation."""
    lines: list[dict[str, Any]] = [
        {
            "job": s.job,
            "source_id": f.source_id,
            "target_id": f.target_id,
            "situation": f.situation,
            "action": planned_action(job, f),
            "changes": {d.attribute: {"old": d.found, "new": d.expected} for d in f.drift},
        }
        for f in s.findings
    ]
    lines.append({"job": s.job, "totals": s.situations, "error": s.error})
    return b"".join(orjson.dumps(line, default=str) + b"\n" for line in lines)
