"""Consuming from RabbitMQ: a consumer subscribed on a channel of its own, and its deliveries.

A consumer subscribes with `basic.qos(prefetch)`, and again on a new channel after a lost connection.
Closing the consumer closes its channel, which returns the unsettled deliveries (a return counts
towards the delivery limit); deliveries from a lost channel cannot be settled any more (`BrokerError`):
RabbitMQ redelivers them. `Delivery.headers` are the published headers: RabbitMQ's additions are
dropped, and a message the server dead-lettered carries the server's reason (`delivery_limit`) in
`REASON_HEADER`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final

from aiormq.abc import DeliveredMessage
from aiormq.exceptions import AMQPError, ChannelNotFoundEntity
from pamqp.commands import Basic

from common.errors import BrokerError
from queues.broker import REASON_HEADER, Message
from queues.rabbitmq.channels import CLOSE_TIMEOUT_S, ChannelLost, GuardedChannel, close_quietly
from queues.rabbitmq.connection import RabbitConnection
from queues.rabbitmq.probe import QueueProbe
from queues.rabbitmq.topology import own_headers
from queues.topology import dead_letter_queue

log = logging.getLogger("roster.queues.rabbitmq")

_GIVE_BACK_WAIT_S: Final = 0.5

Publish = Callable[[str, Sequence[Message]], Awaitable[None]]
"""How a consumer's deliveries publish their dead letters: the broker's `publish`."""


class RabbitConsumer:
    """Deliveries from one queue on a channel of its own, at most `prefetch` unsettled at a time."""

    def __init__(
        self,
        queue: str,
        *,
        prefetch: int,
        connection: RabbitConnection,
        probe: QueueProbe,
        publish: Publish,
        on_close: Callable[[RabbitConsumer], None],
    ) -> None:
        self.queue = queue
        self._prefetch = prefetch
        self._connection = connection
        self._probe = probe
        self._publish = publish
        self._on_close = on_close
        self._tag = f"roster.{uuid.uuid4().hex}"
        self._ready: deque[RabbitDelivery] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._subscription: _Subscription | None = None
        self._error: BrokerError | None = None
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"roster-consume-{queue}")

    def __aiter__(self) -> RabbitConsumer:
        return self

    async def __anext__(self) -> RabbitDelivery:
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._closed:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        """Stop the iteration; closing the channel returns every unsettled delivery to the queue."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        self._ready.clear()
        self._wake()
        subscription = self._subscription
        if subscription is not None:
            subscription.ended = True
            await self._give_back(subscription)
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)

    async def _give_back(self, subscription: _Subscription) -> None:
        """Close the channel, and wait (at most `_GIVE_BACK_WAIT_S`) until the queue shows the
        deliveries that returns: RabbitMQ applies a closed channel's returns a moment later, and a
        caller reading the depth, or a consumer opened right after, must find them back."""
        channel = subscription.channel.channel
        if channel.is_closed or subscription.unsettled == 0:
            await close_quietly(channel)
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await channel.basic_cancel(self._tag)  # no delivery after this
                await asyncio.sleep(0)  # let the callbacks of deliveries received before run
                ready = (await channel.queue_declare(self.queue, passive=True)).message_count or 0
        except Exception:
            await close_quietly(channel)
            return
        expected = ready + subscription.unsettled
        await close_quietly(channel)
        with contextlib.suppress(TimeoutError, BrokerError):
            async with asyncio.timeout(_GIVE_BACK_WAIT_S):
                while await self._probe.depth(self.queue) < expected:
                    await asyncio.sleep(0.005)

    async def _run(self) -> None:
        """Subscribe, and subscribe again on a new channel whenever the connection comes back."""
        try:
            await self._probe.ensure_known(self.queue)
            while not self._closed:
                channel = await self._connection.open_channel(publisher_confirms=False, wait_forever=True)
                if self._closed:  # closed while opening (the cancel may have missed the task)
                    await close_quietly(channel)
                    break
                subscription = self._subscription = _Subscription(
                    GuardedChannel(channel), self.queue, self._publish
                )
                try:
                    await channel.basic_qos(prefetch_count=self._prefetch)
                    channel.on_consumer_cancel_callbacks.add(self._on_cancel)
                    await channel.basic_consume(
                        self.queue, partial(self._on_message, subscription), consumer_tag=self._tag
                    )
                    await asyncio.wait({channel.closing})  # `aclose` closes it too
                except ChannelNotFoundEntity as exc:
                    raise BrokerError(f"queue {self.queue!r} is gone: {exc}") from exc
                except (AMQPError, ConnectionError, RuntimeError) as exc:
                    if not self._closed:
                        log.warning("event=consumer_channel_lost queue=%s error=%r", self.queue, exc)
                finally:
                    # Deliveries of a lost channel come back from the server; they cannot be settled.
                    self._ready.clear()
                    if self._closed:
                        await close_quietly(channel)
                if not self._closed:
                    log.info("event=consumer_resubscribing queue=%s", self.queue)
        except BrokerError as exc:
            self._error = exc
        except Exception as exc:
            log.exception("event=consumer_failed queue=%s", self.queue)
            self._error = BrokerError(f"the consumer of {self.queue!r} failed: {exc!r}")
        finally:
            self._wake()

    async def _on_message(self, subscription: _Subscription, message: DeliveredMessage) -> None:
        subscription.unsettled += 1
        if self._closed:
            return  # the channel's close returns it
        self._ready.append(RabbitDelivery(subscription, message))
        self._wake()
        self._probe.message_taken(self.queue)

    def _on_cancel(self, frame: Basic.Cancel) -> None:
        self._error = BrokerError(f"RabbitMQ cancelled the consumer of {self.queue!r} (queue deleted?)")
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Subscription:
    """One channel a consumer subscribed on: how its deliveries are settled, and how many are not yet."""

    __slots__ = ("channel", "dead_letter_queue", "ended", "publish", "queue", "unsettled")

    def __init__(self, channel: GuardedChannel, queue: str, publish: Publish) -> None:
        self.channel = channel
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue(queue)
        self.publish = publish
        self.unsettled = 0
        self.ended = False
        """Set when the consumer closes: its deliveries went back to the queue with the channel."""

    def check_settleable(self) -> None:
        if self.ended or self.channel.is_closed:
            raise BrokerError("channel closed: the delivery went back to the queue")

    async def ack(self, delivery_tag: int) -> None:
        channel = self.channel
        try:
            await channel.run(channel.channel.basic_ack(delivery_tag, wait=False))
        except (ChannelLost, AMQPError, RuntimeError) as exc:  # ChannelInvalidStateError: RuntimeError
            raise BrokerError(f"channel closed before the ack: the delivery comes back ({exc!r})") from exc
        self.unsettled -= 1


class RabbitDelivery:
    """One message handed to a `RabbitConsumer`; settle it once with `ack` or `dead_letter`."""

    __slots__ = ("_settled", "_subscription", "_tag", "body", "headers", "redelivered")

    def __init__(self, subscription: _Subscription, message: DeliveredMessage) -> None:
        delivery = message.delivery
        # basic.consume hands every message in a Basic.Deliver, which always carries its tag.
        assert isinstance(delivery, Basic.Deliver) and delivery.delivery_tag is not None
        self._subscription = subscription
        self._tag: int = delivery.delivery_tag
        self._settled = False
        self.body: bytes = message.body
        self.redelivered = bool(delivery.redelivered)
        headers = message.header.properties.headers
        self.headers: Mapping[str, Any] = own_headers(headers, subscription.queue) if headers else {}

    async def ack(self) -> None:
        self._check_settleable()
        self._settled = True
        await self._subscription.ack(self._tag)

    async def dead_letter(self, reason: str) -> None:
        """Publish to the dead-letter queue with `reason`, wait for the confirm, then ack."""
        self._check_settleable()
        subscription = self._subscription
        self._settled = True
        try:
            letter = Message(self.body, {**self.headers, REASON_HEADER: reason})
            await subscription.publish(subscription.dead_letter_queue, [letter])
        except BaseException:
            self._settled = False
            raise
        await subscription.ack(self._tag)

    def _check_settleable(self) -> None:
        if self._settled:
            raise BrokerError("delivery already settled")
        self._subscription.check_settleable()
