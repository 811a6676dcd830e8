"""The state of rehires (`engine.core.rehire`): each live account's key and kept values, written with
the results that applied them, and each deleted account as a departure, until a person returns with
its key. Written inside `StateStore.apply_results`'s transaction, so the state of the objects and
this never disagree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from engine.core.rehire import Departure, RehireSettings
from engine.store.schema import departures, rehire_keys
from queues.contracts import Result


def record(
    conn: sa.Connection,
    results: Sequence[Result],
    sent: Mapping[str, str],
    settings: Mapping[str, RehireSettings],
    now: float,
) -> None:
    """What the successes of jobs with `rehire:` change: a create or update keeps the account's key
    (a create its kept values too, and takes the departure with its key if there is one); a delete
    makes the account a departure. An operation whose attributes the engine no longer knows (sent
    before it restarted) leaves the key as it was."""
    for r in results:
        rehire = settings.get(r.job)
        if rehire is None or r.status != "succeeded":
            continue
        if r.action == "delete":
            _depart(conn, r, now)
        elif r.action in ("create", "update") and (text := sent.get(r.op_id)):
            values = orjson.loads(text)
            key = rehire.key_of(values)
            if key is None:
                continue
            if r.action == "create":
                conn.execute(
                    departures.update()
                    .where(
                        departures.c.job == r.job,
                        departures.c.key == key,
                        departures.c.returned_as.is_(None),
                    )
                    .values(returned_as=r.source_id, returned_at=now)
                )
            _keep(conn, r, key, rehire.kept_of(values) if r.action == "create" else None)


def _keep(conn: sa.Connection, r: Result, key: str, kept: dict[str, Any] | None) -> None:
    """Upsert the account's key; `kept` (None: as they were) the values a rehire gets back."""
    row = conn.execute(
        sa.select(rehire_keys.c.kept).where(
            rehire_keys.c.job == r.job, rehire_keys.c.source_id == r.source_id
        )
    ).first()
    kept_text = orjson.dumps(kept).decode() if kept is not None else (row[0] if row else "{}")
    values = {"key": key, "kept": kept_text}
    if r.target_id is not None:
        values["target_id"] = r.target_id
    if row is None:
        conn.execute(rehire_keys.insert().values(job=r.job, source_id=r.source_id, **values))
    else:
        conn.execute(
            rehire_keys.update()
            .where(rehire_keys.c.job == r.job, rehire_keys.c.source_id == r.source_id)
            .values(**values)
        )


def _depart(conn: sa.Connection, r: Result, now: float) -> None:
    where = (rehire_keys.c.job == r.job, rehire_keys.c.source_id == r.source_id)
    row = conn.execute(
        sa.select(rehire_keys.c.key, rehire_keys.c.kept, rehire_keys.c.target_id).where(*where)
    ).first()
    if row is None:
        return
    conn.execute(
        departures.insert().values(
            job=r.job,
            key=row[0],
            source_id=r.source_id,
            target_id=row[2] or r.target_id,
            kept=row[1],
            deleted_at=now,
        )
    )
    conn.execute(rehire_keys.delete().where(*where))


def departed(conn: sa.Connection, job: str, keys: Iterable[str]) -> dict[str, Departure]:
    """The latest departure not taken yet of each of `keys` that has one."""
    wanted = sorted(set(keys))
    found: dict[str, Departure] = {}
    for start in range(0, len(wanted), 500):
        query = (
            sa.select(departures)
            .where(
                departures.c.job == job,
                departures.c.key.in_(wanted[start : start + 500]),
                departures.c.returned_as.is_(None),
            )
            .order_by(departures.c.deleted_at)
        )
        for row in conn.execute(query).mappings():
            found[row["key"]] = _departure(row)  # the latest last
    return found


def returns_of(conn: sa.Connection, job: str, source_id: str) -> list[Departure]:
    """The earlier accounts of the person who came back as `source_id`, and of `source_id` itself
    when it left (oldest first): what the person's history shows of the gaps."""
    query = (
        sa.select(departures)
        .where(
            departures.c.job == job,
            sa.or_(departures.c.returned_as == source_id, departures.c.source_id == source_id),
        )
        .order_by(departures.c.deleted_at)
    )
    return [_departure(row) for row in conn.execute(query).mappings()]


def _departure(row: sa.RowMapping) -> Departure:
    return Departure(
        job=row["job"],
        key=row["key"],
        source_id=row["source_id"],
        target_id=row["target_id"],
        kept=orjson.loads(row["kept"]),
        deleted_at=row["deleted_at"],
        returned_as=row["returned_as"],
        returned_at=row["returned_at"],
    )
