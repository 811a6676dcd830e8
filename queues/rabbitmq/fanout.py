"""Broadcasts on RabbitMQ: a durable fanout exchange, and a private queue per subscriber.

Both go through the connection's robust control channel, so they come back by themselves after a
reconnection. A subscriber's queue is exclusive and auto-deleted (it dies with its connection), holds
at most `BACKLOG` bodies (the oldest dropped first), and is consumed without acks: a heartbeat lost is
replaced by the next one. A broadcast is published neither confirmed nor mandatory, and expires
unread after `TTL_MS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import Final

import aio_pika
from aio_pika import ExchangeType
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustExchange, AbstractRobustQueue
from aiormq.exceptions import AMQPError

from common.errors import BrokerError
from queues.rabbitmq.connection import RabbitConnection

log = logging.getLogger("roster.queues.rabbitmq")

BACKLOG: Final = 256
TTL_MS: Final = 60_000


class Fanout:
    """The fanout exchanges of one broker, declared once each (idempotently) on first use."""

    def __init__(self, connection: RabbitConnection) -> None:
        self.connection = connection
        self._exchanges: dict[str, AbstractRobustExchange] = {}
        self._subscriptions: set[RabbitSubscription] = set()

    async def exchange(self, name: str) -> AbstractRobustExchange:
        found = self._exchanges.get(name)
        if found is None:
            channel = await self.connection.control_channel()
            try:
                found = await channel.declare_exchange(name, ExchangeType.FANOUT, durable=True, robust=True)
            except AMQPError as exc:
                raise BrokerError(f"cannot declare exchange {name!r}: {exc!r}") from exc
            self._exchanges[name] = found
        return found

    @property
    def declared(self) -> frozenset[str]:
        return frozenset(self._exchanges)

    async def broadcast(self, name: str, body: bytes) -> None:
        self.connection.check_open()
        exchange = await self.exchange(name)
        message = aio_pika.Message(body, content_type="application/json", expiration=TTL_MS / 1000)
        try:
            await exchange.publish(message, routing_key="", mandatory=False)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            raise BrokerError(f"cannot broadcast on {name!r}: {exc!r}") from exc

    def subscribe(self, name: str) -> RabbitSubscription:
        self.connection.check_open()
        subscription = RabbitSubscription(self, name)
        self._subscriptions.add(subscription)
        return subscription

    async def aclose(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.aclose()

    def forget(self, subscription: RabbitSubscription) -> None:
        self._subscriptions.discard(subscription)


class RabbitSubscription:
    """The bodies broadcast on one exchange, from a private queue bound on the first `__anext__`."""

    def __init__(self, fanout: Fanout, exchange: str) -> None:
        self._fanout = fanout
        self._exchange = exchange
        self._bodies: deque[bytes] = deque(maxlen=BACKLOG)
        self._waiter: asyncio.Future[None] | None = None
        self._queue: AbstractRobustQueue | None = None
        self._tag: str | None = None
        self._closed = False

    async def start(self) -> None:
        """Bind the queue now (a broadcast after this is received); later calls do nothing."""
        if self._queue is not None:
            return
        exchange = await self._fanout.exchange(self._exchange)
        channel = await self._fanout.connection.control_channel()
        name = f"{self._exchange}.{uuid.uuid4().hex[:12]}"
        try:
            queue = await channel.declare_queue(
                name, exclusive=True, auto_delete=True, arguments={"x-max-length": BACKLOG}, robust=True
            )
            await queue.bind(exchange, robust=True)
            self._tag = await queue.consume(self._received, no_ack=True, robust=True)
        except AMQPError as exc:
            raise BrokerError(f"cannot subscribe to {self._exchange!r}: {exc!r}") from exc
        self._queue = queue

    async def _received(self, message: AbstractIncomingMessage) -> None:
        self._bodies.append(message.body)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> RabbitSubscription:
        return self

    async def __anext__(self) -> bytes:
        if not self._closed:
            await self.start()
        while not self._bodies:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._bodies.popleft()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fanout.forget(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        queue, self._queue = self._queue, None
        if queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(queue.cancel(self._tag), 5.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(queue.delete(if_unused=False, if_empty=False), 5.0)
