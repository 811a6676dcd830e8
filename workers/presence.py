"""A worker's presence: it announces itself on `AGENTS_EXCHANGE` at start, every `interval_s`, and once
more when it stops, and it listens to the engines' announcements to know their wire versions.

An announcement says who the worker is (`process_id`), which Roster and wire versions it runs, and per
target its concurrency, the operations it applies now and its last error (redacted). A new engine
gets an announcement at once, so it knows its fleet within a moment of its start. Nothing here is on
a batch's path: a broker that cannot take a heartbeat is logged and tried again at the next beat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from common.config.validation import as_mapping, check_keys, positive
from common.errors import ConfigError
from common.process.build import roster_version
from queues.broker import Broker
from queues.heartbeat import Heartbeat
from queues.presence import Announcement, TargetReport, redact
from queues.versions import PeerVersions
from workers.worker import Worker

log = logging.getLogger("roster.worker.presence")

MISSED_BEATS: Final = 3
"""An engine not heard for this many of its intervals is forgotten from `engines`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PresenceSettings:
    interval_s: float = 5.0
    """How often a worker announces itself."""

    def __post_init__(self) -> None:
        if not 0 < self.interval_s <= 3600:
            raise ValueError(f"interval_s must be above 0 and at most 3600, got {self.interval_s}")


def parse_presence(raw: Any) -> PresenceSettings:
    """The workers' section, `workers: {presence: {interval_s: 5}}` (all optional)."""
    section = as_mapping("workers", raw or {})
    check_keys("workers", section, ("presence",))
    presence = as_mapping("workers.presence", section.get("presence") or {})
    check_keys("workers.presence", presence, ("interval_s",))
    if "interval_s" not in presence:
        return PresenceSettings()
    interval = positive("workers.presence.interval_s", presence["interval_s"])
    if interval > 3600:
        raise ConfigError(
            "workers.presence.interval_s", f"{interval:g} is too long", "give seconds, such as 5"
        )
    return PresenceSettings(interval_s=interval)


class Engines:
    """The engines a worker has heard, feeding a `PeerVersions`; one silent for `MISSED_BEATS` of its
    intervals is forgotten. `heard` says whether an engine is new (the worker then answers at once)."""

    def __init__(self, versions: PeerVersions, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.versions = versions
        self._clock = clock
        self._due: dict[str, float] = {}

    def heard(self, announcement: Announcement) -> bool:
        if announcement.kind != "engine":
            return False
        self.sweep()
        if announcement.state == "leaving":
            self._forget(announcement.id)
            return False
        new = announcement.id not in self._due
        self._due[announcement.id] = self._clock() + MISSED_BEATS * announcement.interval_s
        self.versions.seen(announcement.id, "engine", announcement.spoken)
        return new

    def sweep(self) -> None:
        now = self._clock()
        for engine in [e for e, due in self._due.items() if due < now]:
            self._forget(engine)

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self._due)

    def _forget(self, engine: str) -> None:
        self._due.pop(engine, None)
        self.versions.gone(engine)


def target_reports(worker: Worker) -> tuple[TargetReport, ...]:
    """What a worker says of each of its targets."""
    errors: Mapping[str, tuple[float, str]] = worker.last_errors
    reports = []
    for target in worker.targets:
        at, error = errors.get(target.name, (None, None))
        reports.append(
            TargetReport(
                name=target.name,
                concurrency=target.max_inflight,
                in_flight=max(0, worker.ops_in_flight_by_target.get(target.name, 0)),
                last_error=redact(error) if error is not None else None,
                last_error_at=at,
            )
        )
    return tuple(reports)


class WorkerPresence:
    """A worker's heartbeat and the engines it has heard (`engines.versions`)."""

    def __init__(
        self,
        broker: Broker,
        worker: Worker,
        settings: PresenceSettings | None = None,
        *,
        versions: PeerVersions | None = None,
    ) -> None:
        settings = settings or PresenceSettings()
        self.engines = Engines(versions or PeerVersions())
        self.heartbeat = Heartbeat(
            broker,
            kind="worker",
            interval_s=settings.interval_s,
            report=lambda: target_reports(worker),
            heard=self._heard,
            version=roster_version(),
            id=worker.peer_id,
            spoken=worker.spoken,
        )

    @property
    def id(self) -> str:
        return self.heartbeat.id

    def _heard(self, announcement: Announcement) -> None:
        if self.engines.heard(announcement):
            log.info("event=engine_heard engine=%s version=%s", announcement.id, announcement.version)
            self.heartbeat.announce_soon()

    async def start(self) -> None:
        await self.heartbeat.start()

    async def draining(self) -> None:
        await self.heartbeat.draining()

    async def aclose(self) -> None:
        await self.heartbeat.aclose()

    async def __aenter__(self) -> WorkerPresence:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
