"""`Heartbeat`: how a process (an engine or a worker) announces itself on `AGENTS_EXCHANGE` every few
seconds and hears the others' announcements.

A heartbeat is fire and forget: one the broker cannot take is logged and sent again at the next beat,
and a malformed announcement heard is logged and dropped. `announce_soon` answers a newcomer at once
(at most once a second), so an engine that starts knows its fleet within a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Final

from common.errors import BrokerError, DecodeError
from queues.broker import Broker, Subscription
from queues.presence import Announcement, Kind, State, TargetReport, decode_announcement, encode_announcement
from queues.topology import AGENTS_EXCHANGE
from queues.versions import SPOKEN

log = logging.getLogger("roster.queues.presence")

_REPLY_GAP_S: Final = 1.0


def process_id(host: str | None = None) -> str:
    """Stable for the life of this process and unique across hosts and pid reuse."""
    return f"{host or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Heartbeat:
    """Announces one process (engine or worker) on a schedule, and hears the others.

    `report` builds the targets part of each announcement; `heard` gets every valid announcement
    (its own too); a malformed one is logged and dropped.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        kind: Kind,
        interval_s: float,
        report: Callable[[], tuple[TargetReport, ...]] = tuple,
        heard: Callable[[Announcement], None] | None = None,
        version: str,
        id: str | None = None,
        spoken: Sequence[int] = SPOKEN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`id`: the process's peer id, the one its other messages name (a worker's results say it in
        `x-roster-peer`), so that both ways of hearing it count one peer; `spoken`: the wire
        versions it decodes (fewer than `SPOKEN` only by `ROSTER_WIRE_VERSIONS`)."""
        self.id = id or process_id()
        self._spoken = tuple(spoken)
        self.kind: Kind = kind
        self.state: State = "running"
        self.interval_s = interval_s
        self._broker = broker
        self._report = report
        self._heard = heard
        self._clock = clock
        self._version = version
        self._host = socket.gethostname()
        self._started_at = clock()
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._last_sent = 0.0
        self._closed = False

    def announcement(self) -> Announcement:
        return Announcement(
            kind=self.kind,
            id=self.id,
            host=self._host,
            pid=os.getpid(),
            version=self._version,
            spoken=self._spoken,
            state=self.state,
            started_at=self._started_at,
            sent_at=self._clock(),
            interval_s=self.interval_s,
            targets=self._report(),
        )

    async def start(self) -> None:
        """Subscribe (so that the answers to the first announcement are heard), announce, then beat."""
        self._subscription = self._broker.subscribe(AGENTS_EXCHANGE)
        await self._subscription.start()
        self._tasks = [
            asyncio.create_task(self._listen(self._subscription), name=f"roster-presence-listen-{self.kind}"),
            asyncio.create_task(self._beat(), name=f"roster-presence-beat-{self.kind}"),
        ]

    def announce_soon(self) -> None:
        """Announce now rather than at the next beat (at most once a second)."""
        self._wake.set()

    async def draining(self) -> None:
        """Say that this process is stopping and finishing what it holds."""
        self.state = "draining"
        await self._send()

    async def aclose(self) -> None:
        """Stop beating, say `leaving` (unless the broker is gone), and stop listening."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.state = "leaving"
        await self._send()
        if self._subscription is not None:
            await self._subscription.aclose()

    async def __aenter__(self) -> Heartbeat:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _beat(self) -> None:
        while True:
            await self._send()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
                await asyncio.sleep(max(0.0, self._last_sent + _REPLY_GAP_S - time.monotonic()))
            self._wake.clear()

    async def _send(self) -> None:
        self._last_sent = time.monotonic()
        try:
            await self._broker.broadcast(AGENTS_EXCHANGE, encode_announcement(self.announcement()))
        except BrokerError as exc:
            log.warning("event=presence_not_sent kind=%s state=%s error=%r", self.kind, self.state, str(exc))
        except Exception:
            log.exception("event=presence_not_sent kind=%s state=%s", self.kind, self.state)

    async def _listen(self, subscription: Subscription) -> None:
        try:
            async for body in subscription:
                try:
                    announcement = decode_announcement(body)
                except DecodeError as exc:
                    log.warning("event=presence_dropped bytes=%d reason=%r", len(body), str(exc))
                    continue
                if self._heard is not None:
                    try:
                        self._heard(announcement)
                    except Exception:
                        log.exception("event=presence_listener_failed peer=%s", announcement.id)
        except BrokerError as exc:
            log.warning("event=presence_deaf kind=%s error=%r", self.kind, str(exc))
