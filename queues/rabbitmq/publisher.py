"""Confirmed publishing to RabbitMQ, and the backpressure of full queues.

Each message goes `mandatory` (unroutable: `BrokerError`, never a silent drop), many in flight at once
(up to `confirm_window` for the whole broker), and a send returns once each is confirmed. A nacked
message (overflow `reject-publish` of a full queue) goes again after 50 ms growing to 1 s, so a full
queue slows the publisher and loses nothing; `send_within_room` also sends a batch no faster than
its queue has room. A publish cut by a lost connection goes again once the robust connection is back
(a duplicate is possible, a loss is not), or raises `BrokerError` after `reconnect_timeout_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from aiormq.exceptions import DeliveryError, PublishError
from pamqp.commands import Basic

from common.errors import BrokerError
from queues.broker import Message
from queues.rabbitmq.channels import LOST_ATTEMPTS, ChannelSlot, GuardedChannel, close_quietly
from queues.rabbitmq.connection import RabbitConnection
from queues.rabbitmq.errors import refused_by_server
from queues.rabbitmq.probe import QueueProbe

log = logging.getLogger("roster.queues.rabbitmq")

_PERSISTENT: Final = 2
_NACK_PAUSE_S: Final = 0.05
_NACK_PAUSE_MAX_S: Final = 1.0


class Publisher:
    """Publishes on one channel with publisher confirms, reopened when it closes."""

    def __init__(self, connection: RabbitConnection, probe: QueueProbe, *, confirm_window: int) -> None:
        self._connection = connection
        self._probe = probe
        self._window = asyncio.Semaphore(confirm_window)
        self._window_size = confirm_window
        self._channel = ChannelSlot(self._open)

    async def send_within_room(
        self, queue: str, exchange: str, key: str, messages: Sequence[Message], *, max_length: int
    ) -> None:
        """Publish no more at once than the room left in `queue`, waiting for room when it is full.

        A quorum queue tells its publishers it is full only once a message has taken it past its
        max length, so every publish of a burst in flight at that moment is taken. This keeps a
        publisher within max_length; the nacks of `reject-publish` still hold back the others.
        """
        sent = 0
        while sent < len(messages):
            room = max_length - await self._probe.depth(queue)
            if room <= 0:
                await self._probe.wait_depth_below(queue, max_length)
                continue
            chunk = messages[sent : sent + room]
            await self.send(queue, exchange, key, chunk)
            sent += len(chunk)

    async def send(self, queue: str, exchange: str, key: str, messages: Sequence[Message]) -> None:
        """Publish all of `messages` concurrently within the confirm window."""
        if len(messages) == 1:
            await self._send_one(queue, exchange, key, messages[0])
            return
        pending = iter(messages)

        async def pump() -> None:
            for message in pending:
                await self._send_one(queue, exchange, key, message)

        pumps = [asyncio.create_task(pump()) for _ in range(min(len(messages), self._window_size))]
        try:
            await asyncio.gather(*pumps)
        except BaseException:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            raise

    async def aclose(self) -> None:
        if self._channel.current is not None:
            await close_quietly(self._channel.current.channel)

    async def _open(self) -> GuardedChannel:
        return GuardedChannel(await self._connection.open_channel(publisher_confirms=True))

    async def _send_one(self, queue: str, exchange: str, key: str, message: Message) -> None:
        headers = dict(message.headers) if message.headers else None
        properties = Basic.Properties(headers=headers, delivery_mode=_PERSISTENT)
        pause, lost = _NACK_PAUSE_S, 0
        async with self._window:
            while True:
                channel = self._channel.current
                if channel is None or channel.is_closed:
                    channel = await self._channel.get()
                try:
                    await channel.run(
                        channel.channel.basic_publish(
                            message.body,
                            exchange=exchange,
                            routing_key=key,
                            properties=properties,
                            mandatory=True,
                            wait=False,
                        )
                    )
                    return
                except PublishError as exc:
                    reply = exc.frame.reply_text if isinstance(exc.frame, Basic.Return) else ""
                    raise BrokerError(
                        f"message for queue {queue!r} was returned unroutable ({reply})"
                    ) from exc
                except DeliveryError:  # nacked: the queue is full
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _NACK_PAUSE_MAX_S)
                except Exception as exc:
                    self._connection.check_open()
                    if not channel.is_closed:
                        raise
                    refused = refused_by_server(channel.channel)
                    if refused is not None:
                        doing = f"publish to queue {queue!r} (exchange {exchange or '(default)'!r})"
                        raise BrokerError(self._connection.refusal(refused, doing=doing)) from exc
                    lost += 1
                    if lost >= LOST_ATTEMPTS:
                        raise BrokerError(f"publish to queue {queue!r} failed {lost} times: {exc!r}") from exc
                    log.warning("event=publish_lost queue=%s attempt=%d error=%r", queue, lost, exc)
