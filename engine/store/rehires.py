"""The state of rehires (`engine.core.rehire`): each live account's key and kept values, written with
the results that applied them, and each deleted account as a departure, until a person returns with
its key. Written inside `StateStore.apply_results`'s transaction, so the state of the objects and
this never disagree."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

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
    *,
    insert: Callable[[sa.Table], Any],
) -> None:
    """What the successes of jobs with `rehire:` change, in a few statements: a delete makes the
    account a departure; a create takes the departure with its key if there is one, and keeps its key
    and kept values; an update keeps its key (the kept values stay as the create sent them). An
    operation whose attributes the engine no longer knows (sent before it restarted) leaves the key as
    it was. `results` hold each object once (`StateStore.apply_results` writes them part by part);
    `insert` is the dialect's INSERT, which has ON CONFLICT."""
    gone: list[tuple[str, str]] = []
    taken: list[dict[str, Any]] = []
    created: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for r in results:
        rehire = settings.get(r.job)
        if rehire is None or r.status != "succeeded":
            continue
        if r.action == "delete":
            gone.append((r.job, r.source_id))
            continue
        if r.action not in ("create", "update") or not (text := sent.get(r.op_id)):
            continue
        values = orjson.loads(text)
        key = rehire.key_of(values)
        if key is None:
            continue
        row = {"job": r.job, "source_id": r.source_id, "key": key, "target_id": r.target_id}
        if r.action == "create":
            taken.append({"j": r.job, "k": key, "s": r.source_id, "at": now})
            created.append({**row, "kept": orjson.dumps(rehire.kept_of(values)).decode()})
        else:
            updated.append({**row, "kept": "{}"})  # the kept values only of a row not there before
    if gone:
        _depart(conn, gone, now)
    if taken:
        conn.execute(_TAKE, taken)
    if created:
        conn.execute(_keep(insert, with_kept=True), created)
    if updated:
        conn.execute(_keep(insert, with_kept=False), updated)


_TAKE: Final = (
    departures.update()
    .where(
        departures.c.job == sa.bindparam("j"),
        departures.c.key == sa.bindparam("k"),
        departures.c.returned_as.is_(None),
    )
    .values(returned_as=sa.bindparam("s"), returned_at=sa.bindparam("at"))
)


def _keep(insert: Callable[[sa.Table], Any], *, with_kept: bool) -> Any:
    """Upsert an account's key (and, `with_kept`, the values a rehire gets back)."""
    statement = insert(rehire_keys)
    excluded = statement.excluded
    values = {"key": excluded.key, "target_id": sa.func.coalesce(excluded.target_id, rehire_keys.c.target_id)}
    if with_kept:
        values["kept"] = excluded.kept
    return statement.on_conflict_do_update(
        index_elements=[rehire_keys.c.job, rehire_keys.c.source_id], set_=values
    )


def _depart(conn: sa.Connection, gone: Sequence[tuple[str, str]], now: float) -> None:
    """The deleted accounts whose keys the state holds become departures."""
    c = rehire_keys.c
    for start in range(0, len(gone), 500):
        chunk = list(gone[start : start + 500])
        rows = conn.execute(
            sa.select(c.job, c.source_id, c.key, c.kept, c.target_id).where(
                sa.tuple_(c.job, c.source_id).in_(chunk)
            )
        ).all()
        if not rows:
            continue
        conn.execute(
            departures.insert(),
            [
                {
                    "job": job,
                    "source_id": source_id,
                    "key": key,
                    "kept": kept,
                    "target_id": target_id,
                    "deleted_at": now,
                }
                for job, source_id, key, kept, target_id in rows
            ],
        )
        conn.execute(
            rehire_keys.delete().where(c.job == sa.bindparam("j"), c.source_id == sa.bindparam("s")),
            [{"j": job, "s": source_id} for job, source_id, *_ in rows],
        )


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
