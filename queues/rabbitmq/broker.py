"""The RabbitMQ broker: the `Broker` protocol on quorum queues, with the in-memory broker's semantics.

Names, arguments and routes are in `topology.py`; the connection, publishing, consuming and reading
depths in `connection.py`, `publisher.py`, `consumer.py` and `probe.py`. How the protocol maps:

* `publish` sends each message confirmed and `mandatory`; a full queue slows the publisher down and
  loses nothing (see `publisher.py`).
* `publish(..., delay_ms=N)` goes through a retry tier: a TTL queue dead-lettering back to the queue.
* `consume` subscribes on a channel of its own with `basic.qos(prefetch)`; unsettled deliveries go
  back when the consumer closes (see `consumer.py`).
* `depth` is a passive declare's count of ready messages; `wait_depth_below` polls it.
* `broadcast` and `subscribe` use a fanout exchange and a private queue per subscriber (`fanout.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType

from aiormq.exceptions import AMQPError, ChannelPreconditionFailed

from common.errors import BrokerError
from queues.broker import Message
from queues.rabbitmq.connection import RabbitConnection
from queues.rabbitmq.consumer import RabbitConsumer
from queues.rabbitmq.fanout import Fanout, RabbitSubscription
from queues.rabbitmq.probe import QueueProbe
from queues.rabbitmq.publisher import Publisher
from queues.rabbitmq.topology import (
    declare_retry_queue,
    declare_work_queue,
    delay_bucket_ms,
    retry_expires_ms,
    retry_queue,
    route,
)

log = logging.getLogger("roster.queues.rabbitmq")


class RabbitBroker:
    """A `Broker` on RabbitMQ quorum queues. See the module docstring for how it behaves.

    `max_length` and `delivery_limit` become queue arguments, so every process declaring a queue must
    use the same values (RabbitMQ refuses a declaration that differs: `BrokerError`). It connects on
    first use, or with `connect()` / `async with`.
    """

    durable = True

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        ssl_ca_file: str | None = None,
        max_length: int = 10_000,
        delivery_limit: int | None = 20,
        confirm_window: int = 256,
        name: str = "roster",
        reconnect_timeout_s: float = 60.0,
    ) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if delivery_limit is not None and delivery_limit < 0:
            raise ValueError(f"delivery_limit must be >= 0 or None, got {delivery_limit}")
        if confirm_window < 1 or reconnect_timeout_s <= 0:
            raise ValueError("confirm_window must be >= 1 and reconnect_timeout_s > 0")
        self._connection = RabbitConnection(
            url, ssl_ca_file=ssl_ca_file, name=name, reconnect_timeout_s=reconnect_timeout_s
        )
        self.max_length = max_length
        self.delivery_limit = delivery_limit
        self.name = name
        self._probe = QueueProbe(self._connection)
        self._publisher = Publisher(self._connection, self._probe, confirm_window=confirm_window)
        self._work_queues: set[str] = set()  # declared here: with max_length, re-declared on reconnection
        self._retry_declared: dict[str, float] = {}  # retry tier -> loop time of its last declare
        self._queues: set[str] = set()
        self._exchanges: set[str] = set()
        self._consumers: set[RabbitConsumer] = set()
        self._fanout = Fanout(self._connection)

    @property
    def declared_queues(self) -> frozenset[str]:
        """Every queue this broker declared (work, dead-letter and retry queues), e.g. to clean up."""
        return frozenset(self._queues)

    @property
    def declared_exchanges(self) -> frozenset[str]:
        return frozenset(self._exchanges) | self._fanout.declared

    async def __aenter__(self) -> RabbitBroker:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def connect(self) -> None:
        """Open the connection and the control channel; a second call does nothing."""
        await self._connection.connect()

    async def declare(self, queue: str) -> None:
        """Declare `queue`, its dead-letter queue, and for `roster.ops.*` / `roster.results` their
        exchange and binding. Re-declaring is harmless and keeps the messages."""
        control = await self._connection.control_channel()
        try:
            async with asyncio.timeout(self._connection.reconnect_timeout_s):
                queues, exchanges = await declare_work_queue(
                    control,
                    queue,
                    max_length=self.max_length,
                    delivery_limit=self.delivery_limit,
                    robust=queue not in self._work_queues,
                )
        except TimeoutError as exc:
            raise BrokerError(
                f"cannot declare queue {queue!r}: no answer from {self._connection.safe_url}"
            ) from exc
        except ChannelPreconditionFailed as exc:
            raise BrokerError(
                f"queue {queue!r} exists with other arguments than max_length={self.max_length}, "
                f"delivery_limit={self.delivery_limit} ({exc}); use the same settings everywhere"
            ) from exc
        except AMQPError as exc:
            doing = f"declare queue {queue!r}"
            raise BrokerError(self._connection.refusal(exc, doing=doing)) from exc
        self._work_queues.add(queue)
        self._probe.mark_known(queues)
        self._queues.update(queues)
        self._exchanges.update(exchanges)

    async def publish(self, queue: str, messages: Sequence[Message], *, delay_ms: int = 0) -> None:
        """Return once RabbitMQ has confirmed every message (with a delay: taken into its retry tier)."""
        if delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {delay_ms}")
        self._connection.check_open()
        await self._probe.ensure_known(queue)
        if not messages:
            return
        if delay_ms == 0:
            exchange, key = route(queue)
            if len(messages) > 1 and queue in self._work_queues:
                await self._publisher.send_within_room(
                    queue, exchange, key, messages, max_length=self.max_length
                )
            else:
                await self._publisher.send(queue, exchange, key, messages)
            return
        tier = await self._retry_tier(queue, delay_ms)
        try:
            await self._publisher.send(queue, "", tier, messages)
        except BrokerError:
            self._retry_declared.pop(tier, None)  # gone? declare it again next time
            raise

    def consume(self, queue: str, *, prefetch: int) -> RabbitConsumer:
        self._connection.check_open()
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        consumer = RabbitConsumer(
            queue,
            prefetch=prefetch,
            connection=self._connection,
            probe=self._probe,
            publish=self.publish,
            on_close=self._consumers.discard,
        )
        self._consumers.add(consumer)
        return consumer

    async def depth(self, queue: str) -> int:
        """Messages ready in `queue` (not those delivered and unsettled, nor those in a retry tier)."""
        return await self._probe.depth(queue)

    async def consumers(self, queue: str) -> int:
        self._connection.check_open()
        return await self._probe.consumers(queue)

    async def wait_depth_below(self, queue: str, limit: int) -> None:
        """Poll the depth, every 20 ms growing to 250 ms while the queue stays full, and at once
        whenever a consumer of this broker takes a message from `queue`."""
        await self._probe.wait_depth_below(queue, limit)

    async def broadcast(self, exchange: str, body: bytes) -> None:
        """Publish `body` on the fanout `exchange` (see `fanout.py`)."""
        await self._fanout.broadcast(exchange, body)

    def subscribe(self, exchange: str) -> RabbitSubscription:
        return self._fanout.subscribe(exchange)

    async def aclose(self) -> None:
        """Stop the consumers (their unsettled deliveries go back), then close channels and connection."""
        if not self._connection.stop():
            return
        await self._fanout.aclose()
        for consumer in list(self._consumers):
            await consumer.aclose()
        await self._publisher.aclose()
        await self._probe.aclose()
        await self._connection.aclose()
        log.info("event=broker_closed url=%s name=%s", self._connection.safe_url, self.name)

    async def _retry_tier(self, queue: str, delay_ms: int) -> str:
        """The retry tier for this delay, declared again when a quarter of its expiry has passed."""
        bucket = delay_bucket_ms(delay_ms)
        tier = retry_queue(queue, bucket)
        now = asyncio.get_running_loop().time()
        if now - self._retry_declared.get(tier, -1e18) > retry_expires_ms(bucket) / 4000:
            control = await self._connection.control_channel()
            try:
                async with asyncio.timeout(self._connection.reconnect_timeout_s):
                    await declare_retry_queue(control, queue, bucket)
            except (TimeoutError, AMQPError) as exc:
                doing = f"declare retry queue {tier!r}"
                raise BrokerError(self._connection.refusal(exc, doing=doing)) from exc
            self._retry_declared[tier] = now
            self._queues.add(tier)
        return tier
