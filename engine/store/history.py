"""Reading the provisioning log and the cycle history back: queries, exports, and retention.

The result consumer writes the log (`StateStore.apply_results`); this module only reads and prunes it.
Queries page by record id, so an export of millions of records streams in constant memory, and the
pruner deletes old records in small batches, each its own short transaction, so cycles writing results
never wait long behind it.

It also keeps the cycles table honest about cycles whose process died: each running cycle has an owner
(host, pid and a token of the process) and a lease that the owner renews while it runs
(`renew_leases`); `interrupt_abandoned` records as `interrupted` the running cycles whose lease expired,
or whose owner on this host is no longer alive (a killed `roster run`), so "Last cycles" never shows a
cycle `running` that nothing runs.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from engine.store import logrows
from engine.store.schema import cycles, log
from engine.store.state import StateStore

logger = logging.getLogger("roster.engine.history")

LOG_FIELDS = logrows.FIELDS
CSV_FIELDS = (*LOG_FIELDS, "steps")
EXPORT_PAGE = 5_000
_IDS_PER_QUERY = 500
DEFAULT_RETENTION_DAYS = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LogFilter:
    """Which log records to return, and where a page starts; every field left None matches everything.

    Records come in the order of their time, then of their id (newest first with `newest_first`), and
    `cursor` is where the page before ended (`cursor_of` its last record): a page starts right after
    it, so paging neither skips nor repeats a record, whatever the records' times, and a late page
    reads as little as the first. `person` finds the records of every person (job and source id)
    with a key (source or target id, a name or mail their records sent) that it gives, or begins if
    it has `logrows.PREFIX_MIN_CHARS` characters or more, case aside.
    """

    job: str | None = None
    status: str | None = None
    action: str | None = None
    source_id: str | None = None
    cycle_id: str | None = None
    person: str | None = None
    since: float | None = None
    until: float | None = None
    after_id: int = 0
    before_id: int | None = None
    cursor: tuple[float, int] | None = None
    limit: int = 1_000
    newest_first: bool = False

    def where(self) -> list[Any]:
        if self.person is None:
            return self._clauses(log)
        return [log.c.id.in_(self._page_of_people())]

    def order(self, table: Any = log) -> tuple[Any, Any]:
        if self.newest_first:
            return table.c.at.desc(), table.c.id.desc()
        return table.c.at, table.c.id

    def _page_of_people(self) -> sa.Select[Any]:
        """The ids of the page among the records of the people `person` finds: chosen in `log_person`
        alone, which holds what the filters read, so that only the page's records are read whole. The
        filters are said as expressions (`+ 0`) that SQLite reads no index for: a person's records
        (a few) are where this search starts, not a whole job's in time order."""
        job = logrows.key_of(self.job) if self.job is not None else None
        people = logrows.people_matching(self.person or "", job).subquery("people")
        theirs = log.alias("theirs")
        joined = people.join(
            theirs, sa.and_(theirs.c.job == people.c.job, theirs.c.source_id == people.c.source_id)
        )
        return (
            sa.select(theirs.c.id)
            .select_from(joined)
            .where(*self._clauses(theirs, indexed=False))
            .order_by(*self.order(theirs))
            .limit(self.limit)
        )

    def _clauses(self, table: Any, *, indexed: bool = True) -> list[Any]:
        def filtered(column: Any) -> Any:
            return column if indexed else column + 0

        clauses: list[Any] = [table.c.id > self.after_id] if self.after_id else []
        if self.before_id is not None:
            clauses.append(table.c.id < self.before_id)
        for column, name in (
            (table.c.job, self.job),
            (table.c.status, self.status),
            (table.c.action, self.action),
            (table.c.cycle, self.cycle_id),
        ):
            if name is not None:
                clauses.append(filtered(column) == logrows.key_of(name))
        if self.source_id is not None:
            clauses.append(table.c.source_id == self.source_id)
        at = filtered(table.c.at)
        if self.since is not None:
            clauses.append(at >= self.since)
        if self.until is not None:
            clauses.append(at < self.until)
        if self.cursor is not None:
            moment, last = self.cursor
            # (at, id) beyond the cursor, said so that `at` bounds the index range on every database
            if self.newest_first:
                clauses += [at <= moment, sa.or_(at < moment, table.c.id < last)]
            else:
                clauses += [at >= moment, sa.or_(at > moment, table.c.id > last)]
        return clauses


def cursor_of(record: Mapping[str, Any]) -> str:
    """Where a page that ends with `record` ends, as `LogFilter.cursor` takes it (`parse_cursor`)."""
    return f"{record['at']!r}~{record['id']}"


def parse_cursor(text: str) -> tuple[float, int]:
    """A `cursor_of` back as (at, id); ValueError if it is not one."""
    wrong = ValueError(f"{text!r} is not a cursor (a page gives one as next_cursor)")
    at, sep, last = text.partition("~")
    try:
        moment, number = float(at), int(last, 10)
    except ValueError:
        raise wrong from None
    if not sep or not math.isfinite(moment) or not 0 <= number < 2**63:
        raise wrong
    return moment, number


async def query_log(state: StateStore, where: LogFilter) -> list[dict[str, Any]]:
    """Records matching `where`, oldest first (newest first with `where.newest_first`), at most
    `where.limit`."""
    query = logrows.readable().where(*where.where()).order_by(*where.order()).limit(where.limit)
    records = await state.read_log(query)
    for record in records:
        record["attributes"] = orjson.loads(record["attributes"]) if record["attributes"] else None
        record["steps"] = steps(record)
    return records


async def iter_log(state: StateStore, where: LogFilter) -> AsyncIterator[list[dict[str, Any]]]:
    """Every record matching `where` (its limit aside), a page at a time, in its order."""
    while True:
        page = await query_log(state, replace(where, limit=EXPORT_PAGE))
        if not page:
            return
        yield page
        last = page[-1]
        where = replace(where, cursor=(last["at"], last["id"]))


def steps(record: Mapping[str, Any]) -> dict[str, str]:
    """The steps of one operation (import, scope, match, action, export) and their outcome, told from
    what its record holds."""
    action, status, target_id = record["action"], record["status"], record["target_id"]
    if action in ("create", "update", "staged_update"):
        found = "read from the source"
        scope = "in scope"
    elif action == "staged_delete":
        found, scope = "not in this full import", "left the source or its scope"
    else:
        found, scope = "not in the full import", "left the source or its scope"
    if action == "create":
        match = f"no link yet; matched or created as {target_id}" if target_id else "no link yet"
    else:
        match = f"linked to {target_id}" if target_id else "no link"
    if status == "succeeded":
        export = "done"
    elif status == "warning":
        export = record["error_message"] or "held"
    else:
        code = f" {record['error_code']}" if record["error_code"] else ""
        export = f"{status}{code}: {record['error_message'] or ''}".rstrip(": ")
    return {"import": found, "scope": scope, "match": match, "action": action, "export": export}


def iso_utc(at: float | str) -> str:
    """A log record's time as ISO 8601 in UTC (`2024-06-01T08:00:00.123Z`), as exports carry it; a
    time that is one already passes as it is."""
    if isinstance(at, str):
        return at
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    """Records as JSON Lines, their times in ISO 8601."""
    return b"".join(orjson.dumps({**record, "at": iso_utc(record["at"])}) + b"\n" for record in records)


def csv_rows(records: Iterable[dict[str, Any]], *, header: bool) -> str:
    """Records as CSV rows (with the header first if `header`), times in ISO 8601, nested values as JSON."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for record in records:  # nested values as JSON in their cell
        writer.writerow(
            {
                **record,
                "at": iso_utc(record["at"]),
                "attributes": _json(record.get("attributes")),
                "steps": _json(record["steps"]),
            }
        )
    return out.getvalue()


_HISTORY = [c for c in cycles.columns if c.name not in ("owner", "lease_until")]


async def cycle_history(
    state: StateStore, job: str, limit: int = 20, *, cycle_id: str | None = None
) -> list[dict[str, Any]]:
    """The job's last cycles (or only `cycle_id`), newest first, with their counts."""
    query = sa.select(*_HISTORY).where(cycles.c.job == job).order_by(cycles.c.started_at.desc()).limit(limit)
    if cycle_id is not None:
        query = query.where(cycles.c.cycle_id == cycle_id)
    async with state.engine.connect() as conn:
        rows = [dict(row._mapping) for row in await conn.execute(query)]
    for row in rows:
        row["counts"] = orjson.loads(row["counts"]) if row["counts"] else {}
        finished = row["finished_at"]
        row["duration_s"] = round(finished - row["started_at"], 3) if finished is not None else None
    return rows


async def prune_log(state: StateStore, older_than_s: float, *, batch: int = 5_000) -> int:
    """Delete records older than `older_than_s`, `batch` at a time; returns how many went."""
    cutoff = time.time() - older_than_s
    removed = 0
    while True:
        oldest = sa.select(log.c.id, log.c.job, log.c.source_id).where(log.c.at < cutoff).order_by(log.c.id)
        async with state.writing() as conn:
            found = (await conn.execute(oldest.limit(batch))).all()
            ids = [row[0] for row in found]
            gone = 0
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start : start + _IDS_PER_QUERY]
                gone += (await conn.execute(log.delete().where(log.c.id.in_(chunk)))).rowcount
            # Who no record names any more is no longer found, by name or mail or anything else.
            people = {(job, source_id) for _id, job, source_id in found if source_id}
            if people:
                await conn.execute(logrows.forget_people(), [{"j": j, "s": s} for j, s in people])
        removed += gone
        if gone < batch:
            return removed
        await asyncio.sleep(0)  # let result writes in between


async def prune_forever(state: StateStore, retention_days: float, *, every_s: float = 3600.0) -> None:
    """Keep the log within its retention until cancelled."""
    while True:
        try:
            removed = await prune_log(state, retention_days * 86_400.0)
            if removed:
                logger.info("event=log_pruned records=%d retention_days=%g", removed, retention_days)
        except sa.exc.SQLAlchemyError:
            logger.exception("event=log_prune_failed")
        await asyncio.sleep(every_s)


LEASE_S = 30.0
"""How long a running cycle's lease lasts; its owner renews it three times as often."""


def process_owner() -> str:
    """This process as the owner of its cycles: host, pid, and a token that tells it from an earlier
    process that had the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_gone(owner: str | None, *, me: str) -> bool:
    """Whether `owner` is surely gone without waiting for its lease: a process of this host that is no
    longer alive. Another host's process is judged by its lease alone."""
    if owner is None or owner == me:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # this pid, another token: an earlier process of this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed child that its parent has not reaped yet is dead too (Linux; elsewhere: alive)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


async def renew_leases(state: StateStore, owner: str, *, lease_s: float = LEASE_S) -> None:
    """Extend the lease of every cycle `owner` is running."""
    async with state.writing() as conn:
        await conn.execute(
            cycles.update()
            .where(cycles.c.owner == owner, cycles.c.status == "running")
            .values(lease_until=time.time() + lease_s)
        )


async def interrupt_abandoned(state: StateStore, *, me: str) -> list[str]:
    """Record as `interrupted` the running cycles of others whose lease expired (or that never had
    one: a Roster before leases ran them) or whose owner died on this host; returns their ids."""
    now = time.time()
    query = sa.select(cycles.c.cycle_id, cycles.c.owner, cycles.c.lease_until).where(
        cycles.c.status == "running", sa.or_(cycles.c.owner.is_(None), cycles.c.owner != me)
    )
    async with state.writing() as conn:
        rows = (await conn.execute(query)).all()
        gone = [
            cycle_id
            for cycle_id, owner, lease_until in rows
            if lease_until is None or lease_until < now or owner_gone(owner, me=me)
        ]
        if gone:
            await conn.execute(
                cycles.update()
                .where(cycles.c.cycle_id.in_(gone), cycles.c.status == "running")
                .values(status="interrupted", finished_at=now)
            )
    for cycle_id in gone:
        logger.warning("event=cycle_interrupted cycle=%s reason=its process is gone", cycle_id)
    return gone


def _json(value: Any) -> str:
    return orjson.dumps(value).decode() if value is not None else ""
