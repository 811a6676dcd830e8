"""The engine's presence: it announces itself on the presence exchange (so that workers learn its wire
versions), hears every engine and worker there, and keeps the `Fleet` current, off the hot path.

Each peer that joins, leaves or goes silent is logged once. Stopping says `leaving`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence

from common.process.build import roster_version
from engine.metrics import EngineMetrics
from engine.pipeline.fleet import Fleet, FleetSettings
from queues.broker import Broker
from queues.heartbeat import Heartbeat
from queues.presence import Announcement
from queues.versions import SPOKEN

log = logging.getLogger("roster.engine.presence")


def export_fleet(metrics: EngineMetrics, fleet: Fleet, targets: Iterable[str]) -> None:
    """`roster_agents` and `roster_target_jobs` on the engine's metrics (`targets`: of each job)."""
    metrics.watch_fleet(fleet.agent_counts, Counter(targets))


class EnginePresence:
    """`async with EnginePresence(broker, fleet)`: announce and listen until the block ends."""

    def __init__(self, broker: Broker, fleet: Fleet | None = None, *, spoken: Sequence[int] = SPOKEN) -> None:
        self.fleet = fleet or Fleet()
        settings: FleetSettings = self.fleet.settings
        self.heartbeat = Heartbeat(
            broker,
            kind="engine",
            interval_s=settings.interval_s,
            heard=self._heard,
            version=roster_version(),
            spoken=spoken,
        )
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.heartbeat.id

    def _heard(self, announcement: Announcement) -> None:
        before = self.fleet.state_of(announcement.id)
        member = self.fleet.heard(announcement)
        if before != member.state and announcement.id != self.id:
            a = announcement
            targets = ",".join(t.name for t in a.targets)
            log.info(
                "event=peer_%s kind=%s peer=%s host=%s version=%s spoken=%s targets=%s",
                "left" if member.state == "gone" else member.state,
                a.kind,
                a.id,
                a.host,
                a.version,
                ",".join(map(str, a.spoken)),
                targets,
            )

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.fleet.settings.interval_s / 2))
            for member in self.fleet.sweep():
                log.warning(
                    "event=peer_gone kind=%s peer=%s host=%s reason=%r",
                    member.last.kind,
                    member.last.id,
                    member.last.host,
                    member.gone_reason,
                )

    async def __aenter__(self) -> EnginePresence:
        await self.heartbeat.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="roster-presence-sweep")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.heartbeat.aclose()
