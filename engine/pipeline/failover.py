"""Engine failover: two engines may run on one PostgreSQL state store; the one that holds an
advisory lock works, the other waits and takes over within seconds when the first dies.

The lock is a session lock on a connection of its own, so it goes the moment the active engine's
process dies (its connection closes). The engine that gets it next takes over before its first cycle:

* cycles the dead engine left `running` are recorded as `interrupted`;
* it consumes the results of the dead engine's operations, which the workers kept producing, and
  waits until they stop arriving and the queues are empty, so that its first cycle plans against a
  state that has them: what the dead engine got done is not done again, and nothing is lost (what it
  never published, or published without a result, is planned by the new cycle).

An engine that loses its lock connection stops (exit code 1), since it can no longer know that it is
alone; its orchestrator starts it again as a standby. A SQLite store has one engine: no lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from common.errors import BrokerError, StateError
from engine.metrics import EngineMetrics
from engine.store.schema import cycles
from engine.store.state import StateStore
from queues.broker import Broker
from queues.topology import RESULTS_QUEUE, ops_queue

log = logging.getLogger("roster.engine.failover")

ENGINE_LOCK = 0x526F737465720002  # the advisory lock key of the active engine ("Roster", 2)
_LOCK_PARTS = {"hi": ENGINE_LOCK >> 32, "lo": ENGINE_LOCK & 0xFFFFFFFF}  # how pg_locks shows a bigint key
_HOLDER = sa.text(
    "SELECT coalesce(nullif(a.application_name, ''), 'pid ' || a.pid) FROM pg_locks l"
    " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid) AND l.objsubid = 1"
)


class EngineLock:
    """The active engine's lock; `acquire` waits for it, `watch` raises when it is lost."""

    def __init__(
        self, state: StateStore, *, poll_s: float = 0.5, check_s: float = 2.0, name: str | None = None
    ) -> None:
        self._state = state
        self._poll_s = poll_s
        self._check_s = check_s
        self._conn: AsyncConnection | None = None
        self.held = False
        self.name = (name or f"roster-engine {socket.gethostname()} pid {os.getpid()}")[:63]
        """This engine, as a standby names it: the lock connection's PostgreSQL application_name."""
        self.holder: str | None = None
        """The engine that holds the lock, while this one waits (None: not known yet)."""

    @property
    def shared(self) -> bool:
        """True when other engines can share the store (PostgreSQL), so the lock means something."""
        return self._state.engine.dialect.name == "postgresql"

    async def acquire(self) -> None:
        if not self.shared:
            self.held = True
            return
        self._conn = await self._state.engine.connect()
        await self._conn.execute(sa.select(sa.func.set_config("application_name", self.name, False)))
        waited = False
        while True:
            got = (await self._conn.execute(sa.select(sa.func.pg_try_advisory_lock(ENGINE_LOCK)))).scalar()
            if not got:
                self.holder = (await self._conn.execute(_HOLDER, _LOCK_PARTS)).scalar() or "unknown"
            await self._conn.commit()  # a session lock: it outlives the transaction, which must not idle
            if got:
                break
            if not waited:
                log.info("event=engine_standby reason=another engine holds the lock")
                waited = True
            await asyncio.sleep(self._poll_s)
        self.held, self.holder = True, None
        log.info("event=engine_active")

    async def watch(self) -> None:
        """Return never; raise `StateError` once the lock's connection fails."""
        if self._conn is None:
            await asyncio.Event().wait()
            return
        while True:
            await asyncio.sleep(self._check_s)
            try:
                await self._conn.execute(sa.select(1))
                await self._conn.commit()
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                self.held = False
                raise StateError(f"lost the engine lock with its connection: {exc}") from exc

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        self.held = False
        if conn is None:
            return
        try:
            await conn.execute(sa.select(sa.func.pg_advisory_unlock(ENGINE_LOCK)))
            await conn.commit()
        except (sa.exc.SQLAlchemyError, OSError):
            pass  # the connection is gone, and the lock with it
        finally:
            await conn.close()

    async def __aenter__(self) -> EngineLock:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def take_over(
    state: StateStore,
    broker: Broker,
    metrics: EngineMetrics,
    targets: Iterable[str],
    *,
    settle_s: float = 2.0,
    max_wait_s: float = 60.0,
) -> None:
    """Close the previous engine's cycles and let its results come in (see the module docstring).

    Call it with the result consumer running. The results are settled once none arrived for
    `settle_s` and the targets' queues and the results queue are empty; after `max_wait_s` the first
    cycle starts anyway (a worker stuck on a slow target must not keep the engine idle)."""
    async with state.writing() as conn:
        left = await conn.execute(
            cycles.update()
            .where(cycles.c.status == "running")
            .values(status="interrupted", finished_at=time.time())
            .returning(cycles.c.cycle_id)
        )
        for cycle_id in left.scalars():
            log.warning("event=cycle_interrupted cycle=%s reason=its engine died", cycle_id)
    queues = [RESULTS_QUEUE, *(ops_queue(t) for t in sorted(set(targets)))]
    for queue in queues:
        await broker.declare(queue)  # idempotent; a queue no one declared yet is empty
    started = last_change = time.monotonic()
    seen = _results_seen(metrics)
    while time.monotonic() - started < max_wait_s:
        await asyncio.sleep(0.25)
        now_seen = _results_seen(metrics)
        if now_seen != seen or not await _empty(broker, queues):
            seen, last_change = now_seen, time.monotonic()
        elif time.monotonic() - last_change >= settle_s:
            log.info("event=takeover_settled results=%d waited_s=%.1f", seen, time.monotonic() - started)
            return
    log.warning("event=takeover_unsettled results=%d waited_s=%.1f", seen, max_wait_s)


def _results_seen(metrics: EngineMetrics) -> float:
    """Results consumed so far, final or not (read from the metrics, off the hot path)."""
    return sum(
        sample.value
        for counter in (metrics.completed, metrics.retrying)
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def _empty(broker: Broker, queues: list[str]) -> bool:
    try:
        for queue in queues:
            if await broker.depth(queue):
                return False
    except BrokerError:
        return False
    return True
