"""Channel helpers of the RabbitMQ broker: a slot that reopens a closed channel, a guard that cuts
loose the writes pending on a channel that closed, and a quiet close."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Generic, Protocol, TypeVar

from aiormq import Channel

from common.errors import BrokerError

log = logging.getLogger("roster.queues.rabbitmq")

CLOSE_TIMEOUT_S: Final = 5.0
LOST_ATTEMPTS: Final = 10
"""How many lost channels a publish or a passive declare outlasts before it gives up."""

_T = TypeVar("_T")


class _Closable(Protocol):
    @property
    def is_closed(self) -> bool: ...


_C = TypeVar("_C", bound=_Closable)


class ChannelSlot(Generic[_C]):
    """One channel of a kind, opened again once it has closed, by one caller at a time. A failure to
    open it fails the callers that were waiting too, rather than each waiting out its own timeout."""

    __slots__ = ("_failed", "_lock", "_open", "current")

    def __init__(self, open_channel: Callable[[], Awaitable[_C]]) -> None:
        self._open = open_channel
        self._lock = asyncio.Lock()
        self._failed: tuple[float, str] | None = None
        self.current: _C | None = None

    async def get(self) -> _C:
        asked = time.monotonic()
        async with self._lock:
            current = self.current
            if current is not None and not current.is_closed:
                return current
            if self._failed is not None and self._failed[0] >= asked:
                raise BrokerError(self._failed[1])
            try:
                current = self.current = await self._open()
            except BrokerError as exc:
                self._failed = (time.monotonic(), str(exc))
                raise
            return current


class ChannelLost(Exception):
    """A write was cut short because its channel closed."""


class GuardedChannel:
    """A channel, and the tasks writing to it (a publish, an ack), cut loose when it closes.

    aiormq writes from the caller's task into the connection's bounded write queue; once the
    connection is gone nothing drains that queue, and a write waiting for room would wait forever.
    """

    __slots__ = ("_cut", "_tasks", "channel")

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()
        channel.closing.add_done_callback(self._on_close)

    @property
    def is_closed(self) -> bool:
        return self.channel.is_closed

    async def run(self, write: Awaitable[_T]) -> _T:
        """Await `write`; raise `ChannelLost` if the channel closes first."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await write
        except asyncio.CancelledError:
            if task in self._cut and task.cancelling() == 1:
                task.uncancel()
                raise ChannelLost("the channel closed during the write") from None
            raise
        finally:
            self._tasks.discard(task)
            self._cut.discard(task)

    def _on_close(self, _: asyncio.Future[Any]) -> None:
        for task in self._tasks - self._cut:
            self._cut.add(task)
            task.cancel()


async def close_quietly(channel: Channel) -> None:
    """Close a channel; one on a dead connection is already gone, so errors are only logged."""
    if channel.is_closed:
        return
    try:
        await asyncio.wait_for(channel.close(), CLOSE_TIMEOUT_S)
    except Exception as exc:
        log.debug("event=channel_close_failed error=%r", exc)
