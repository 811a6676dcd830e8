"""What `roster run` shows a person: a live progress bar per cycle and a summary table at the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from common.process.cli import EXIT_ATTENTION, EXIT_FAILED, EXIT_OK
from engine.cli.planview import diff_rows
from engine.model import MEMBER_FAILURES_SHOWN, CycleSummary
from engine.pipeline.ondemand import Preview, Provisioned
from engine.pipeline.tracker import CycleProgress

MAX_PROBLEMS_SHOWN = 10


class ProgressView:
    """A rich progress view of one cycle, two bars: operations sent (published, and confirmed by the
    broker, a batch at a time) and operations done (their results back from the target) of those
    planned. A worker reports a batch's results once the whole batch is applied, so on a slow target
    `done` moves a batch at a time; `sent` shows meanwhile that the cycle is moving."""

    def __init__(
        self, console: Console, job: str, *, enabled: bool = True, sent: Callable[[], int] | None = None
    ) -> None:
        self._enabled = enabled and console.is_terminal
        self._job = job
        self._sent = sent
        self._sent_before = 0
        self._tasks: tuple[TaskID, TaskID] | None = None
        self._cycle: CycleProgress | None = None
        self._progress = _FollowingProgress(
            self._update,
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            refresh_per_second=10,
        )

    def __enter__(self) -> ProgressView:
        if self._enabled:
            self._progress.start()
            width = len(self._job) + 5
            self._tasks = (
                self._progress.add_task(f"{self._job} sent".ljust(width), total=None, note=""),
                self._progress.add_task(f"{self._job} done".ljust(width), total=None, note=""),
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._enabled:
            self._update()
            self._progress.stop()

    def follow(self, cycle: CycleProgress) -> None:
        self._cycle = cycle
        self._sent_before = self._sent() if self._sent is not None else 0

    def _update(self) -> None:
        cycle = self._cycle
        if cycle is None or self._tasks is None:
            return
        total = cycle.planned if cycle.planning_done else max(cycle.planned, 1)
        sent = self._sent() - self._sent_before if self._sent is not None else cycle.planned
        sending, doing = self._tasks
        self._progress.update(sending, total=total, completed=min(sent, total), note=f"read {cycle.read:,}")
        self._progress.update(doing, total=total, completed=cycle.settled, note=f"retries {cycle.retries}")


class _FollowingProgress(Progress):
    """Pulls the cycle's counters on every frame (rich refreshes from its own thread), so the
    event loop never spends a turn on the display."""

    def __init__(self, pull: Callable[[], None], *columns: Any, **kwargs: Any) -> None:
        self._pull = pull
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        self._pull()
        yield from super().get_renderables()


ATTENTION = frozenset({"held", "incomplete"})
"""Cycle statuses in which nothing failed but a person must look."""


def exit_code(summaries: Sequence[CycleSummary]) -> int:
    """0 when every cycle succeeded; 1 when one failed, had failures or was quarantined; otherwise 3
    when a read was incomplete or deprovisions wait for approval."""
    statuses = {s.status for s in summaries}
    if statuses - ATTENTION - {"succeeded"}:
        return EXIT_FAILED
    if statuses & ATTENTION:
        return EXIT_ATTENTION
    return EXIT_OK


def line_printer(console: Console) -> Callable[[str], None]:
    """Prints a plain line whole (no markup, never wrapped), for logs and `grep`."""
    return lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True)


def cycle_line(summary: CycleSummary) -> str:
    """One line per cycle that a serving command prints as each ends (for a terminal, a journal, or
    `grep`): when it ended, the job, the cycle id, its status, its duration and what it did."""
    s = summary
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{when} {s.job} cycle {s.cycle_id} {s.status} in {s.elapsed_s:.1f} s: {s.created:,} created, "
        f"{s.updated:,} updated, {s.disabled:,} disabled, {s.deleted:,} deleted, {s.staged:,} held, "
        f"{s.failed:,} failed"
    )


def print_summary(console: Console, summaries: Sequence[CycleSummary]) -> None:
    # One column per job and one row per count: it reads well in any terminal width.
    table = Table(title="Provisioning summary", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("", no_wrap=True)
    for s in summaries:
        table.add_column(s.job, justify="right", no_wrap=True)
    rows: list[tuple[str, Callable[[CycleSummary], str]]] = [
        ("created", lambda s: f"{s.created:,}"),
        ("updated", lambda s: f"{s.updated:,}"),
        ("disabled", lambda s: f"{s.disabled:,}"),
        ("deleted", lambda s: f"{s.deleted:,}"),
        ("unchanged", lambda s: f"{s.unchanged:,}"),
        ("failed", lambda s: f"[red]{s.failed:,}[/]" if s.failed else "0"),
        ("elapsed", lambda s: f"{s.elapsed_s:.2f} s"),
        ("operations/s", lambda s: f"{s.ops_per_s:,.0f}"),
    ]
    if any(s.out_of_scope for s in summaries):
        rows.insert(5, ("out of scope", lambda s: f"{s.out_of_scope:,}"))
    if any(s.not_started or s.ended for s in summaries):  # `dates:`
        rows.insert(5, ("past end date", lambda s: f"{s.ended:,}"))
        rows.insert(5, ("before start", lambda s: f"{s.not_started:,}"))
    if any(s.skipped_rows for s in summaries):
        rows.insert(
            -2, ("rows skipped", lambda s: f"[yellow]{s.skipped_rows:,}[/]" if s.skipped_rows else "0")
        )
    if any(s.staged for s in summaries):
        rows.insert(-2, ("held", lambda s: f"[yellow]{s.staged:,}[/]" if s.staged else "0"))
    for label, cell in rows:
        table.add_row(label, *(cell(s) for s in summaries))
    console.print(table)
    for s in summaries:
        if s.error:
            console.print(f"[bold red]{s.job}: the cycle failed:[/] {s.error}", highlight=False)
        elif s.changed == 0 and not s.staged and not s.skipped_rows:
            console.print(f"{s.job}: {unchanged_words(s)}", highlight=False, soft_wrap=True)
        if s.skipped_rows and not s.error:
            console.print(
                f"[bold yellow]{s.job}: the source was read incompletely:[/] {s.skipped_rows:,} row(s) could "
                "not be read, so nothing that looks gone was disabled or deleted.",
                highlight=False,
            )
        if s.staged:
            _print_held(console, s)
        if s.failed:
            console.print(
                f"{s.job}: {s.failed:,} operation(s) failed; the provisioning log in the state store has "
                "each one with the target's message.",
                highlight=False,
            )
        if s.pending_references:
            console.print(
                f"{s.job}: {s.pending_references:,} reference(s) (a manager, say) name an object that has "
                "no target id (not provisioned yet, failed, or gone), and were sent empty; a later cycle "
                "sets each once that object is provisioned (`roster plan` names them).",
                highlight=False,
            )
        if s.pending_members:
            console.print(f"{s.job}: {pending_words(s)}", highlight=False)
            for member, error in s.failed_members:
                console.print(f"  {member}: {error}", highlight=False, markup=False)
        if s.problems:
            what = f"{s.skipped_rows:,} source row(s) skipped" if s.skipped_rows else "source problems"
            console.print(f"[yellow]{s.job}: {what}:[/]", highlight=False)
            for problem in s.problems[:MAX_PROBLEMS_SHOWN]:
                console.print(f"  {problem}", highlight=False, markup=False)
            if len(s.problems) > MAX_PROBLEMS_SHOWN or s.skipped_rows > len(s.problems):
                more = max(s.skipped_rows, len(s.problems)) - MAX_PROBLEMS_SHOWN
                console.print(f"  ... and {more:,} more", highlight=False)


def pending_words(s: CycleSummary) -> str:
    """Group members not provisioned, said as Roster knows them: those whose own operation failed last
    come only once fixed; the others may still arrive."""
    if not s.failed_members:
        return (
            f"{s.pending_members:,} group member(s) not provisioned yet; their groups get them in a later "
            "cycle, once they are."
        )
    failed = len(s.failed_members)
    some = "at least " if failed >= MEMBER_FAILURES_SHOWN else ""
    return (
        f"{s.pending_members:,} group member(s) not provisioned; {some}{failed:,} of the members failed "
        "in their own job and join their groups only once that is fixed (below); any other may still "
        "arrive in a later cycle."
    )


def unchanged_words(s: CycleSummary, now: float | None = None) -> str:
    """What a cycle that changed nothing knows: the source matches what the state says was applied.
    Of the target itself only a reconciliation knows, so its age and findings are said, or its absence."""
    known = f"no change since the last applied state ({s.unchanged:,} objects)"
    if s.last_reconciled is None:
        return f"{known}; the target itself was not read back (`roster reconcile` does)."
    at, counts = s.last_reconciled
    age = _age((time.time() if now is None else now) - at)
    found = ", ".join(f"{counts.get(k, 0):,} {k}" for k in ("drifted", "missing", "unlinked", "orphan"))
    return f"{known}; the target was last reconciled {age} ago, which found {found}."


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


def _print_held(console: Console, s: CycleSummary) -> None:
    """The deprovisions and updates held for approval, each reason, and the commands that release or
    drop them."""
    deprovisions, updates = s.staged - s.staged_updates, s.staged_updates
    what = " and ".join(
        part
        for part in (
            f"{deprovisions:,} deprovision(s)" if deprovisions else "",
            f"{updates:,} update(s)" if updates else "",
        )
        if part
    )
    console.print(f"[bold yellow]{escape(s.job)}: {what} held for approval, not sent:[/]", highlight=False)
    for hold in s.holds:
        console.print(f"  {hold}", highlight=False, markup=False)
    console.print(
        f"  `roster approve {s.job}` sends them, `roster reject {s.job}` drops them (both talk to a serving "
        "engine: `roster run FILE --serve` or `roster engine`); `roster status` shows them.",
        highlight=False,
        markup=False,
    )


def print_preview(console: Console, shown: Preview) -> None:
    """What `roster preview` prints: every step, without writing anything."""
    say = console.print
    # Names and values are data: `emails[type eq "work"].value` must not be read as rich markup.
    if not shown.found:
        say(
            f"[bold]{escape(shown.job)}[/] {escape(shown.source_id)}: {escape(shown.explanation)}",
            highlight=False,
        )
        return
    say(
        f"[bold]{escape(shown.job)}[/] {escape(shown.source_id)} (line {shown.line} of the source)",
        highlight=False,
    )
    table = Table(title="source attributes", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("attribute")
    table.add_column("value")
    for key, value in shown.source.items():
        table.add_row(Text(key), _show(value))
    say(table)
    if shown.scoping:
        say("[bold]scoping[/] (clauses in a group are ANDed, groups are ORed)")
        for i, group in enumerate(shown.scoping):
            for clause, holds in group:
                mark = "[green]yes[/]" if holds else "[red]no[/]"
                say(
                    f"  group {i + 1}: {escape(clause.attribute)} {clause.operator}"
                    f" {escape(str(_show(clause.value)))} -> {mark}",
                    highlight=False,
                )
        say(f"  in scope: {'yes' if shown.in_scope else 'no'}")
    if shown.mapping_error:
        say(f"[red]mapping failed:[/] {escape(shown.mapping_error)}", highlight=False)
    elif shown.in_scope:
        table = Table(title="mapped attributes", title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("target attribute")
        table.add_column("value")
        table.add_column("applies")
        for key, value in shown.mapped.items():
            table.add_row(Text(key), _show(value), "always")
        for key, value in shown.create_only.items():
            table.add_row(Text(key), _show(value), "on create")
        say(table)
        if shown.references:
            say("[bold]references[/] (source id -> the target id it is sent as)")
        for reference in shown.references:
            sent = reference.target_id or "no target id yet: sent empty, set by a later cycle"
            say(Text(f"  {reference.attribute}: {reference.source_id} of job {reference.job} -> {sent}"))
    entry = shown.entry
    known = f"target id {entry.target_id}, {entry.state}" if entry else "not provisioned yet"
    say(f"[bold]state[/]: {escape(known)}", highlight=False)
    if shown.members is not None:
        members = shown.members
        say(
            f"[bold]members[/]: {len(members.members):,} in the target after this, add {len(members.add):,}, "
            f"remove {len(members.remove):,}, {members.pending:,} not provisioned yet",
            highlight=False,
        )
    say(f"[bold]operation[/]: {shown.action} ({escape(shown.explanation)})", highlight=False)
    if shown.changes is not None:
        if not shown.old_known:
            say("  the attributes last applied are not known (log pruned): every value as it would be sent")
        for attribute, change in diff_rows(shown.changes, old_known=shown.old_known):
            say(Text(f"  {attribute}: {change}"))


def print_provisioned(console: Console, done: Provisioned) -> None:
    """What `roster provision` prints: the steps, then the provisioning log records of the object."""
    print_preview(console, done.preview)
    if not done.records:
        console.print("[bold]result[/]: nothing was sent (nothing to do)")
        return
    for record in done.records:
        error = f", {record['error_class']}: {record['error_message']}" if record["error_message"] else ""
        console.print(
            f"[bold]result[/]: {record['action']} {record['status']} after {record['attempts']} attempt(s), "
            f"target id {escape(str(record['target_id']))}{escape(error)}",
            highlight=False,
        )


def _show(value: object) -> Text:
    return Text("(null)" if value is None else str(value))
