"""What the RabbitMQ broker reads of its queues: whether one exists, and how many messages it holds
ready, by passive declares on a channel of their own; and waiting for a queue to drain below a mark."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

from aiormq import Channel
from aiormq.exceptions import ChannelNotFoundEntity
from pamqp.commands import Queue

from common.errors import BrokerError
from queues.rabbitmq.channels import LOST_ATTEMPTS, ChannelSlot, close_quietly
from queues.rabbitmq.connection import RabbitConnection

_DEPTH_POLL_S: Final = 0.02
_DEPTH_POLL_MAX_S: Final = 0.25


class QueueProbe:
    """Passive declares on one channel, reopened when it closes; the queues known to exist."""

    def __init__(self, connection: RabbitConnection) -> None:
        self._connection = connection
        self._channel = ChannelSlot(self._open)
        self._known: set[str] = set()  # queues that exist: declared here or found by a passive declare
        self._depth_waiters: dict[str, set[asyncio.Event]] = {}

    def mark_known(self, queues: Iterable[str]) -> None:
        """Record queues just declared, so that using them needs no passive declare."""
        self._known.update(queues)

    async def ensure_known(self, queue: str) -> None:
        """Return if `queue` exists; `BrokerError` if it is not declared."""
        if queue not in self._known:
            await self._passive_declare(queue)
            self._known.add(queue)

    async def depth(self, queue: str) -> int:
        """Messages ready in `queue` (not those delivered and unsettled, nor those in a retry tier)."""
        ok = await self._passive_declare(queue)
        return ok.message_count or 0

    async def consumers(self, queue: str) -> int:
        """Consumers of `queue`, on any connection."""
        ok = await self._passive_declare(queue)
        return ok.consumer_count or 0

    async def wait_depth_below(self, queue: str, limit: int) -> None:
        """Poll the depth, every 20 ms growing to 250 ms while the queue stays full, and at once
        whenever `message_taken(queue)` says a consumer took a message from it."""
        self._connection.check_open()
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")  # a depth is never below 0
        moved = asyncio.Event()
        waiters = self._depth_waiters.setdefault(queue, set())
        waiters.add(moved)
        pause = _DEPTH_POLL_S
        try:
            while True:
                moved.clear()
                if await self.depth(queue) < limit:
                    return
                try:
                    await asyncio.wait_for(moved.wait(), pause)
                    pause = _DEPTH_POLL_S
                except TimeoutError:
                    pause = min(pause * 1.5, _DEPTH_POLL_MAX_S)
        finally:
            waiters.discard(moved)
            if not waiters:
                del self._depth_waiters[queue]

    def message_taken(self, queue: str) -> None:
        """A message left `queue`: those waiting for its depth check it now, not at their next poll."""
        for moved in self._depth_waiters.get(queue, ()):
            moved.set()

    async def aclose(self) -> None:
        if self._channel.current is not None:
            await close_quietly(self._channel.current)

    async def _open(self) -> Channel:
        return await self._connection.open_channel(publisher_confirms=False)

    async def _passive_declare(self, queue: str) -> Queue.DeclareOk:
        self._connection.check_open()
        lost = 0
        while True:
            channel = await self._channel.get()
            try:
                return await channel.queue_declare(queue, passive=True)
            except ChannelNotFoundEntity as exc:
                raise BrokerError(f"queue {queue!r} is not declared; declare it before using it") from exc
            except Exception as exc:
                self._connection.check_open()
                lost += 1
                if not channel.is_closed or lost >= LOST_ATTEMPTS:
                    raise BrokerError(f"cannot read queue {queue!r}: {exc!r}") from exc
