"""The RabbitMQ broker: the `Broker` protocol on quorum queues, with the in-memory broker's semantics.

Names, arguments and routes are in `queues/rabbitmq/topology.py`. How the protocol maps:

* `publish` sends each message `mandatory` (unroutable: `BrokerError`, never a silent drop), many in
  flight at once (up to `confirm_window` for the whole broker), and returns once each is confirmed.
  A nacked message (overflow `reject-publish` of a full queue) goes again after 50 ms growing to 1 s,
  so a full queue slows the publisher and loses nothing; a batch to a work queue is also sent no
  faster than the queue has room (see `_send_within_room`). A publish cut by a lost connection goes
  again once the robust connection is back (a duplicate is possible, a loss is not), or raises
  `BrokerError` after `reconnect_timeout_s`.
* `publish(..., delay_ms=N)` goes through a retry tier: a TTL queue dead-lettering back to the queue.
* `consume` subscribes on a channel of its own with `basic.qos(prefetch)`, and again on a new channel
  after a lost connection. Closing the consumer closes its channel, which returns the unsettled
  deliveries (a return counts towards the delivery limit); deliveries from a lost channel cannot be
  settled any more (`BrokerError`): RabbitMQ redelivers them.
* `Delivery.headers` are the published headers: RabbitMQ's additions are dropped, and a message the
  server dead-lettered carries the server's reason (`delivery_limit`) in `REASON_HEADER`.
* `depth` is a passive declare's count of ready messages; `wait_depth_below` polls it.

The connection is `aio_pika.connect_robust`: it reconnects by itself and its control channel declares
the topology again. The publish, probe and consumer channels are plain aiormq channels, opened again
on the current connection when theirs closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Generic, Protocol, TypeVar

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import AbstractChannel, DeliveredMessage
from aiormq.exceptions import (
    AMQPError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
    PublishError,
)
from pamqp.commands import Basic, Queue
from yarl import URL

from common.errors import BrokerError
from queues.broker import REASON_HEADER, Message
from queues.rabbitmq.topology import (
    declare_retry_queue,
    declare_work_queue,
    delay_bucket_ms,
    own_headers,
    retry_expires_ms,
    retry_queue,
    route,
)
from queues.topology import dead_letter_queue

log = logging.getLogger("roster.queues.rabbitmq")

_T = TypeVar("_T")


class _Closable(Protocol):
    @property
    def is_closed(self) -> bool: ...


_C = TypeVar("_C", bound=_Closable)

_PERSISTENT: Final = 2
_NACK_PAUSE_S: Final = 0.05
_NACK_PAUSE_MAX_S: Final = 1.0
_LOST_ATTEMPTS: Final = 10
_RECONNECT_INTERVAL_S: Final = 1
_CLOSE_TIMEOUT_S: Final = 5.0
_CHANNEL_OPEN_TIMEOUT_S: Final = 5.0
_GIVE_BACK_WAIT_S: Final = 0.5
_DEPTH_POLL_S: Final = 0.02
_DEPTH_POLL_MAX_S: Final = 0.25


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
        parsed = URL(url)
        self._safe_url = str(parsed.with_password("******") if parsed.password else parsed)
        if parsed.scheme not in ("amqp", "amqps"):
            raise ValueError(f"broker URL must be amqp:// or amqps://, got {self._safe_url}")
        if ssl_ca_file is not None and parsed.scheme != "amqps":
            raise ValueError(f"ssl_ca_file needs an amqps:// URL, got {self._safe_url}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if delivery_limit is not None and delivery_limit < 0:
            raise ValueError(f"delivery_limit must be >= 0 or None, got {delivery_limit}")
        if confirm_window < 1 or reconnect_timeout_s <= 0:
            raise ValueError("confirm_window must be >= 1 and reconnect_timeout_s > 0")
        self._url = url
        self._password = parsed.password or ""
        self._ssl_context = ssl.create_default_context(cafile=ssl_ca_file) if ssl_ca_file else None
        self.max_length = max_length
        self.delivery_limit = delivery_limit
        self.name = name
        self._reconnect_timeout_s = reconnect_timeout_s
        self._window = asyncio.Semaphore(confirm_window)
        self._window_size = confirm_window
        self._connection: AbstractRobustConnection | None = None
        self._control: AbstractRobustChannel | None = None
        self._publisher = _Slot(self._open_publisher)
        self._probe = _Slot(lambda: self._open_channel(publisher_confirms=False))
        self._connect_lock = asyncio.Lock()
        self._known: set[str] = set()  # queues that exist: declared here or found by a passive declare
        self._robust: set[str] = set()  # work queues the control channel re-declares on reconnection
        self._limited: set[str] = set()  # work queues declared here, so with max_length
        self._depth_waiters: dict[str, set[asyncio.Event]] = {}
        self._retry_declared: dict[str, float] = {}  # retry tier -> loop time of its last declare
        self._queues: set[str] = set()
        self._exchanges: set[str] = set()
        self._consumers: set[RabbitConsumer] = set()
        self._closed = False

    @property
    def declared_queues(self) -> frozenset[str]:
        """Every queue this broker declared (work, dead-letter and retry queues), e.g. to clean up."""
        return frozenset(self._queues)

    @property
    def declared_exchanges(self) -> frozenset[str]:
        return frozenset(self._exchanges)

    async def __aenter__(self) -> RabbitBroker:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def connect(self) -> None:
        """Open the connection and the control channel; a second call does nothing."""
        self._check_open()
        if self._connection is not None:
            return
        async with self._connect_lock:
            if self._connection is not None:
                return
            try:
                connection = await aio_pika.connect_robust(
                    self._url,
                    ssl_context=self._ssl_context,
                    client_properties={"connection_name": self.name},
                    reconnect_interval=_RECONNECT_INTERVAL_S,
                    timeout=self._reconnect_timeout_s,
                )
            except (TimeoutError, OSError, AMQPError) as exc:
                reason = repr(exc).replace(self._password, "******") if self._password else repr(exc)
                raise BrokerError(f"cannot connect to RabbitMQ at {self._safe_url}: {reason}") from None
            try:
                control = connection.channel(publisher_confirms=False)
                await control.initialize()
            except BaseException:
                await connection.close()
                raise
            if self._closed:  # closed while connecting
                await connection.close()
                self._check_open()
            self._connection, self._control = connection, control
            log.info("event=broker_connected url=%s name=%s", self._safe_url, self.name)

    async def declare(self, queue: str) -> None:
        """Declare `queue`, its dead-letter queue, and for `roster.ops.*` / `roster.results` their
        exchange and binding. Re-declaring is harmless and keeps the messages."""
        control = await self._control_channel()
        try:
            async with asyncio.timeout(self._reconnect_timeout_s):
                queues, exchanges = await declare_work_queue(
                    control,
                    queue,
                    max_length=self.max_length,
                    delivery_limit=self.delivery_limit,
                    robust=queue not in self._robust,
                )
        except TimeoutError as exc:
            raise BrokerError(f"cannot declare queue {queue!r}: no answer from {self._safe_url}") from exc
        except ChannelPreconditionFailed as exc:
            raise BrokerError(
                f"queue {queue!r} exists with other arguments than max_length={self.max_length}, "
                f"delivery_limit={self.delivery_limit} ({exc}); use the same settings everywhere"
            ) from exc
        except AMQPError as exc:
            raise BrokerError(f"cannot declare queue {queue!r}: {exc!r}") from exc
        self._robust.add(queue)
        self._limited.add(queue)
        self._known.update(queues)
        self._queues.update(queues)
        self._exchanges.update(exchanges)

    async def publish(self, queue: str, messages: Sequence[Message], *, delay_ms: int = 0) -> None:
        """Return once RabbitMQ has confirmed every message (with a delay: taken into its retry tier)."""
        if delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {delay_ms}")
        self._check_open()
        await self._ensure_known(queue)
        if not messages:
            return
        if delay_ms == 0:
            exchange, key = route(queue)
            if len(messages) > 1 and queue in self._limited:
                await self._send_within_room(queue, exchange, key, messages)
            else:
                await self._send(queue, exchange, key, messages)
            return
        tier = await self._retry_tier(queue, delay_ms)
        try:
            await self._send(queue, "", tier, messages)
        except BrokerError:
            self._retry_declared.pop(tier, None)  # gone? declare it again next time
            raise

    def consume(self, queue: str, *, prefetch: int) -> RabbitConsumer:
        self._check_open()
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        consumer = RabbitConsumer(self, queue, prefetch)
        self._consumers.add(consumer)
        return consumer

    async def depth(self, queue: str) -> int:
        """Messages ready in `queue` (not those delivered and unsettled, nor those in a retry tier)."""
        ok = await self._passive_declare(queue)
        return ok.message_count or 0

    async def wait_depth_below(self, queue: str, limit: int) -> None:
        """Poll the depth, every 20 ms growing to 250 ms while the queue stays full, and at once
        whenever a consumer of this broker takes a message from `queue`."""
        self._check_open()
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

    async def aclose(self) -> None:
        """Stop the consumers (their unsettled deliveries go back), then close channels and connection."""
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.aclose()
        for channel in (self._publisher.current and self._publisher.current.channel, self._probe.current):
            if channel is not None:
                await _close_quietly(channel)
        if self._control is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._control.close(), _CLOSE_TIMEOUT_S)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), _CLOSE_TIMEOUT_S)
        log.info("event=broker_closed url=%s name=%s", self._safe_url, self.name)

    # Publishing

    async def _send_within_room(
        self, queue: str, exchange: str, key: str, messages: Sequence[Message]
    ) -> None:
        """Publish no more at once than the room left in `queue`, waiting for room when it is full.

        A quorum queue tells its publishers it is full only once a message has taken it past its
        max length, so every publish of a burst in flight at that moment is taken. This keeps a
        publisher within max_length; the nacks of `reject-publish` still hold back the others.
        """
        sent = 0
        while sent < len(messages):
            room = self.max_length - await self.depth(queue)
            if room <= 0:
                await self.wait_depth_below(queue, self.max_length)
                continue
            chunk = messages[sent : sent + room]
            await self._send(queue, exchange, key, chunk)
            sent += len(chunk)

    async def _send(self, queue: str, exchange: str, key: str, messages: Sequence[Message]) -> None:
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

    async def _send_one(self, queue: str, exchange: str, key: str, message: Message) -> None:
        headers = dict(message.headers) if message.headers else None
        properties = Basic.Properties(headers=headers, delivery_mode=_PERSISTENT)
        pause, lost = _NACK_PAUSE_S, 0
        async with self._window:
            while True:
                channel = self._publisher.current
                if channel is None or channel.is_closed:
                    channel = await self._publisher.get()
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
                    reply = getattr(exc.frame, "reply_text", "")
                    raise BrokerError(
                        f"message for queue {queue!r} was returned unroutable ({reply})"
                    ) from exc
                except DeliveryError:  # nacked: the queue is full
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _NACK_PAUSE_MAX_S)
                except Exception as exc:
                    self._check_open()
                    if not channel.is_closed:
                        raise
                    lost += 1
                    if lost >= _LOST_ATTEMPTS:
                        raise BrokerError(f"publish to queue {queue!r} failed {lost} times: {exc!r}") from exc
                    log.warning("event=publish_lost queue=%s attempt=%d error=%r", queue, lost, exc)

    async def _retry_tier(self, queue: str, delay_ms: int) -> str:
        """The retry tier for this delay, declared again when a quarter of its expiry has passed."""
        bucket = delay_bucket_ms(delay_ms)
        tier = retry_queue(queue, bucket)
        now = asyncio.get_running_loop().time()
        if now - self._retry_declared.get(tier, -1e18) > retry_expires_ms(bucket) / 4000:
            control = await self._control_channel()
            try:
                async with asyncio.timeout(self._reconnect_timeout_s):
                    await declare_retry_queue(control, queue, bucket)
            except (TimeoutError, AMQPError) as exc:
                raise BrokerError(f"cannot declare retry queue {tier!r}: {exc!r}") from exc
            self._retry_declared[tier] = now
            self._queues.add(tier)
        return tier

    # Channels

    async def _control_channel(self) -> AbstractRobustChannel:
        await self.connect()
        assert self._control is not None
        return self._control

    async def _open_publisher(self) -> _Writes:
        return _Writes(await self._open_channel(publisher_confirms=True, on_return_raises=True))

    async def _open_channel(self, *, wait_forever: bool = False, **options: Any) -> AbstractChannel:
        """A new channel on the current connection, waiting for the robust connection to come back
        (for `reconnect_timeout_s`, or forever for a consumer)."""
        await self.connect()
        assert self._connection is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._reconnect_timeout_s
        pause, error = 0.05, None
        while True:
            self._check_open()
            transport = self._connection.transport
            if transport is not None and not transport.connection.is_closed:
                try:
                    # Bounded: opening waits for a connection that may be closing meanwhile.
                    return await asyncio.wait_for(
                        transport.connection.channel(**options), _CHANNEL_OPEN_TIMEOUT_S
                    )
                except (TimeoutError, AMQPError, ConnectionError, RuntimeError) as exc:
                    error = exc
            if not wait_forever and loop.time() >= deadline:
                raise BrokerError(
                    f"no connection to RabbitMQ at {self._safe_url} for {self._reconnect_timeout_s:g} s"
                    + (f" ({error!r})" if error else "")
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def _passive_declare(self, queue: str) -> Queue.DeclareOk:
        self._check_open()
        lost = 0
        while True:
            channel = await self._probe.get()
            try:
                return await channel.queue_declare(queue, passive=True)
            except ChannelNotFoundEntity as exc:
                raise BrokerError(f"queue {queue!r} is not declared; declare it before using it") from exc
            except Exception as exc:
                self._check_open()
                lost += 1
                if not channel.is_closed or lost >= _LOST_ATTEMPTS:
                    raise BrokerError(f"cannot read queue {queue!r}: {exc!r}") from exc

    async def _ensure_known(self, queue: str) -> None:
        if queue not in self._known:
            await self._passive_declare(queue)
            self._known.add(queue)

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError("broker closed")


class RabbitConsumer:
    """Deliveries from one queue on a channel of its own, at most `prefetch` unsettled at a time."""

    def __init__(self, broker: RabbitBroker, queue: str, prefetch: int) -> None:
        self._broker = broker
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue(queue)
        self._prefetch = prefetch
        self._tag = f"roster.{uuid.uuid4().hex}"
        self._ready: deque[RabbitDelivery] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._channel: _Writes | None = None
        self._error: BrokerError | None = None
        self._unsettled = 0  # deliveries on the current channel not yet acked
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
        self._broker._consumers.discard(self)
        self._ready.clear()
        self._wake()
        if self._channel is not None:
            await self._give_back(self._channel.channel)
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=_CLOSE_TIMEOUT_S)

    async def _give_back(self, channel: AbstractChannel) -> None:
        """Close the channel, and wait (at most `_GIVE_BACK_WAIT_S`) until the queue shows the
        deliveries that returns: RabbitMQ applies a closed channel's returns a moment later, and a
        caller reading the depth, or a consumer opened right after, must find them back."""
        if channel.is_closed or self._unsettled == 0:
            await _close_quietly(channel)
            return
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await channel.basic_cancel(self._tag)  # no delivery after this
                await asyncio.sleep(0)  # let the callbacks of deliveries received before run
                ready = (await channel.queue_declare(self.queue, passive=True)).message_count or 0
        except Exception:
            await _close_quietly(channel)
            return
        expected = ready + self._unsettled
        await _close_quietly(channel)
        with contextlib.suppress(TimeoutError, BrokerError):
            async with asyncio.timeout(_GIVE_BACK_WAIT_S):
                while await self._broker.depth(self.queue) < expected:
                    await asyncio.sleep(0.005)

    async def _run(self) -> None:
        """Subscribe, and subscribe again on a new channel whenever the connection comes back."""
        broker = self._broker
        try:
            await broker._ensure_known(self.queue)
            while not self._closed:
                channel = await broker._open_channel(publisher_confirms=False, wait_forever=True)
                if self._closed:  # closed while opening (the cancel may have missed the task)
                    await _close_quietly(channel)
                    break
                self._channel, self._unsettled = _Writes(channel), 0
                try:
                    await channel.basic_qos(prefetch_count=self._prefetch)
                    channel.on_consumer_cancel_callbacks.add(self._on_cancel)
                    await channel.basic_consume(self.queue, self._on_message, consumer_tag=self._tag)
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
                        await _close_quietly(channel)
                if not self._closed:
                    log.info("event=consumer_resubscribing queue=%s", self.queue)
        except BrokerError as exc:
            self._error = exc
        except Exception as exc:
            log.exception("event=consumer_failed queue=%s", self.queue)
            self._error = BrokerError(f"the consumer of {self.queue!r} failed: {exc!r}")
        finally:
            self._wake()

    def _on_message(self, message: DeliveredMessage) -> None:
        self._unsettled += 1
        channel = self._channel
        if self._closed or channel is None:
            return  # the channel's close returns it
        self._ready.append(RabbitDelivery(self, channel, message))
        self._wake()
        depth_waiters = self._broker._depth_waiters.get(self.queue)
        if depth_waiters:  # a message left the queue: check its depth now, not at the next poll
            for moved in depth_waiters:
                moved.set()

    def _on_cancel(self, frame: Any) -> None:
        self._error = BrokerError(f"RabbitMQ cancelled the consumer of {self.queue!r} (queue deleted?)")
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class RabbitDelivery:
    """One message handed to a `RabbitConsumer`; settle it once with `ack` or `dead_letter`."""

    __slots__ = ("_channel", "_consumer", "_settled", "_tag", "body", "headers", "redelivered")

    def __init__(self, consumer: RabbitConsumer, channel: _Writes, message: DeliveredMessage) -> None:
        self._consumer = consumer
        self._channel = channel
        self._tag = message.delivery.delivery_tag
        self._settled = False
        self.body: bytes = message.body
        self.redelivered = bool(message.delivery.redelivered)
        headers = message.header.properties.headers
        self.headers: Mapping[str, Any] = own_headers(headers, consumer.queue) if headers else {}

    async def ack(self) -> None:
        self._check_settleable()
        self._settled = True
        await self._ack()

    async def dead_letter(self, reason: str) -> None:
        """Publish to the dead-letter queue with `reason`, wait for the confirm, then ack."""
        self._check_settleable()
        consumer = self._consumer
        self._settled = True
        try:
            letter = Message(self.body, {**self.headers, REASON_HEADER: reason})
            await consumer._broker.publish(consumer.dead_letter_queue, [letter])
        except BaseException:
            self._settled = False
            raise
        await self._ack()

    async def _ack(self) -> None:
        channel = self._channel
        try:
            await channel.run(channel.channel.basic_ack(self._tag, wait=False))
        except (_ChannelLost, AMQPError, RuntimeError) as exc:  # ChannelInvalidStateError: RuntimeError
            raise BrokerError(f"channel closed before the ack: the delivery comes back ({exc!r})") from exc
        if channel is self._consumer._channel:
            self._consumer._unsettled -= 1

    def _check_settleable(self) -> None:
        if self._settled:
            raise BrokerError("delivery already settled")
        if self._consumer._closed or self._channel.is_closed:
            raise BrokerError("channel closed: the delivery went back to the queue")


class _Slot(Generic[_C]):
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


class _ChannelLost(Exception):
    """A write was cut short because its channel closed."""


class _Writes:
    """A channel, and the tasks writing to it (a publish, an ack), cut loose when it closes.

    aiormq writes from the caller's task into the connection's bounded write queue; once the
    connection is gone nothing drains that queue, and a write waiting for room would wait forever.
    """

    __slots__ = ("_cut", "_tasks", "channel")

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()
        channel.closing.add_done_callback(self._on_close)

    @property
    def is_closed(self) -> bool:
        return self.channel.is_closed

    async def run(self, write: Coroutine[Any, Any, _T]) -> _T:
        """Await `write`; raise `_ChannelLost` if the channel closes first."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await write
        except asyncio.CancelledError:
            if task in self._cut and task.cancelling() == 1:
                task.uncancel()
                raise _ChannelLost("the channel closed during the write") from None
            raise
        finally:
            self._tasks.discard(task)
            self._cut.discard(task)

    def _on_close(self, _: asyncio.Future[Any]) -> None:
        for task in self._tasks - self._cut:
            self._cut.add(task)
            task.cancel()


async def _close_quietly(channel: AbstractChannel) -> None:
    """Close a channel; one on a dead connection is already gone, so errors are only logged."""
    if channel.is_closed:
        return
    try:
        await asyncio.wait_for(channel.close(), _CLOSE_TIMEOUT_S)
    except Exception as exc:
        log.debug("event=channel_close_failed error=%r", exc)


__all__ = ["RabbitBroker", "RabbitConsumer", "RabbitDelivery"]
