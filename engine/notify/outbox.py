"""The notifications' outbox in the state store: each event's delivery to each route is a row, written
before it is tried, so that an engine that stops with deliveries pending tries them again at its next
start; the row then records what became of it (sent, or given up after its attempts, with the last
error), which is the log of what was sent (`read`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from engine.notify.events import Event
from engine.store.schema import notifications
from engine.store.state import StateStore

FIELDS = (
    "id",
    "at",
    "event",
    "job",
    "route",
    "channel",
    "recipient",
    "subject",
    "status",
    "attempts",
    "next_at",
    "sent_at",
    "last_error",
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending delivery: its row's id, route, channel, subject, the JSON body and tries so far."""

    id: int
    route: str
    channel: str
    subject: str
    body: dict[str, Any]
    attempts: int
    recipient: str | None = None
    """A mail's address found for this event (a manager's), instead of the route's list."""


async def add(
    state: StateStore, event: Event, routes: list[tuple[str, str, str | None]], *, now: float
) -> list[int]:
    """Record the event's deliveries to `routes` ((name, channel, recipient) triples; recipient None: the
    route's own) as pending, due `now`."""
    ids: list[int] = []
    async with state.writing() as conn:
        for route, channel, recipient in routes:
            row = {
                "at": event.at,
                "event": event.type,
                "job": event.job,
                "route": route,
                "channel": channel,
                "recipient": recipient,
                "subject": event.subject,
                "body": orjson.dumps(event.body(0)).decode(),
                "status": "pending",
                "attempts": 0,
                "next_at": now,
            }
            inserted = await conn.execute(notifications.insert().values(row).returning(notifications.c.id))
            ids.append(int(inserted.scalar_one()))
    return ids


async def due(state: StateStore, now: float, limit: int = 100) -> list[Delivery]:
    """The pending deliveries due by `now`, oldest first."""
    n = notifications.c
    query = (
        sa.select(n.id, n.route, n.channel, n.subject, n.body, n.attempts, n.recipient)
        .where(n.status == "pending", n.next_at <= now)
        .order_by(n.next_at, n.id)
        .limit(limit)
    )
    async with state.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        Delivery(i, route, channel, subject, {**orjson.loads(body), "id": i}, attempts, recipient)
        for i, route, channel, subject, body, attempts, recipient in rows
    ]


async def next_due(state: StateStore) -> float | None:
    """When the earliest pending delivery is due, if any is pending."""
    n = notifications.c
    async with state.engine.connect() as conn:
        found = await conn.execute(sa.select(sa.func.min(n.next_at)).where(n.status == "pending"))
        value = found.scalar_one()
    return None if value is None else float(value)


async def settle(
    state: StateStore, delivery: Delivery, error: str | None, retry_in_s: float | None, *, now: float
) -> None:
    """Record a try at `now`: sent (no `error`), pending again in `retry_in_s`, or given up (no
    `retry_in_s`)."""
    values: dict[str, Any] = {"attempts": delivery.attempts + 1, "last_error": error}
    if error is None:
        values.update(status="sent", sent_at=now, next_at=None)
    elif retry_in_s is not None:
        values.update(status="pending", next_at=now + retry_in_s)
    else:
        values.update(status="failed", next_at=None)
    async with state.writing() as conn:
        await conn.execute(notifications.update().where(notifications.c.id == delivery.id).values(values))


async def read(state: StateStore, *, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
    """The latest deliveries, newest first: what was sent, pending or given up, and why."""
    query = (
        sa.select(*(notifications.c[name] for name in FIELDS))
        .order_by(notifications.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(notifications.c.status == status)
    async with state.engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


async def untried(state: StateStore) -> int:
    """How many pending deliveries were never tried."""
    n = notifications.c
    async with state.engine.connect() as conn:
        found = await conn.execute(sa.select(sa.func.count()).where(n.status == "pending", n.attempts == 0))
        return int(found.scalar_one())
