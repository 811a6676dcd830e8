"""The in-memory broker: RabbitMQ's semantics in one process, for embedded mode and for tests.

It behaves as the quorum queues of `DESIGN.md` do, so that code tested against it runs unchanged on
RabbitMQ: a full queue slows the publisher down (overflow `reject-publish` plus a retrying publisher),
a consumer holds at most `prefetch` unsettled deliveries, a closed consumer's unsettled deliveries go
back to the front of the queue, and a message returned more than `delivery_limit` times is
dead-lettered with the reason `delivery_limit`. Nothing survives the process (`durable = False`).

Consumers pull: a consumer with room under its prefetch takes the next ready message when it asks for
one, and waits on a future otherwise. Publishing, delivering and settling are O(1) per message and
start no task; a delayed publish costs one timer per batch.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

from common.errors import BrokerError
from queues.broker import REASON_HEADER, Message
from queues.topology import dead_letter_queue

DELIVERY_LIMIT_REASON: Final = "delivery_limit"
SUBSCRIPTION_BACKLOG: Final = 256
"""Broadcast bodies a subscriber may have unread; past it the oldest go, as heartbeats date quickly."""

_Entry = tuple[Message, int]
"""A queued message and how many times it has come back unsettled."""


class _Queue:
    """Ready messages of one queue, and who waits on them."""

    __slots__ = ("_depth_seq", "consumer_waiters", "dead", "depth_waiters", "name", "ready")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready: deque[_Entry] = deque()
        self.dead: _Queue | None = None
        self.consumer_waiters: deque[asyncio.Future[None]] = deque()
        # A max-heap on the limit, so one comparison per taken message tells whether anyone is due.
        self.depth_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._depth_seq = itertools.count()

    def put(self, entries: Iterable[_Entry], *, front: bool = False) -> None:
        before = len(self.ready)
        if front:
            self.ready.extendleft(entries)
        else:
            self.ready.extend(entries)
        self.wake_consumers(len(self.ready) - before)

    def take(self) -> _Entry:
        entry = self.ready.popleft()
        waiters = self.depth_waiters
        if waiters and -waiters[0][0] > len(self.ready):
            self._wake_depth()
        return entry

    def wake_consumers(self, n: int) -> None:
        """Wake up to `n` consumers waiting for a message; one that finds none waits again."""
        waiters = self.consumer_waiters
        while n > 0 and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                n -= 1

    def wait_depth_below(self, limit: int) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self.depth_waiters, (-limit, next(self._depth_seq), waiter))
        return waiter

    def _wake_depth(self) -> None:
        waiters, depth = self.depth_waiters, len(self.ready)
        while waiters and -waiters[0][0] > depth:
            waiter = heapq.heappop(waiters)[2]
            if not waiter.done():
                waiter.set_result(None)

    def fail_depth_waiters(self, exc: BaseException) -> None:
        for _, _, waiter in self.depth_waiters:
            if not waiter.done():
                waiter.set_exception(exc)
        self.depth_waiters.clear()


class MemoryBroker:
    """A `Broker` held in the process's memory. See the module docstring for its semantics."""

    durable = False

    def __init__(self, *, max_length: int = 10_000, delivery_limit: int | None = 20) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if delivery_limit is not None and delivery_limit < 0:
            raise ValueError(f"delivery_limit must be >= 0 or None, got {delivery_limit}")
        self.max_length = max_length
        self.delivery_limit = delivery_limit
        # A blocked publisher resumes once this many messages fit, not after each one: a full queue
        # then costs a wake-up per chunk instead of per message.
        self._publish_chunk = max(1, max_length // 16)
        self._queues: dict[str, _Queue] = {}
        self._consumers: set[MemoryConsumer] = set()
        self._subscriptions: dict[str, set[MemorySubscription]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_ids = itertools.count()
        self._closed = False

    async def __aenter__(self) -> MemoryBroker:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def declare(self, queue: str) -> None:
        self._check_open()
        q = self._queues.get(queue)
        if q is None:
            q = self._queues[queue] = _Queue(queue)
        if q.dead is None:
            dead_name = dead_letter_queue(queue)
            q.dead = self._queues.setdefault(dead_name, _Queue(dead_name))

    async def publish(self, queue: str, messages: Sequence[Message], *, delay_ms: int = 0) -> None:
        """Return once every message is in the queue (or, with a delay, scheduled to be)."""
        self._check_open()
        q = self._queue(queue)
        if delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {delay_ms}")
        if delay_ms > 0:
            timer_id = next(self._timer_ids)
            entries = [(message, 0) for message in messages]
            loop = asyncio.get_running_loop()
            self._timers[timer_id] = loop.call_later(delay_ms / 1000, self._release, timer_id, q, entries)
            return
        sent, total = 0, len(messages)
        while sent < total:
            room = self.max_length - len(q.ready)
            if room <= 0:
                need = min(total - sent, self._publish_chunk)
                await self._wait_below(q, self.max_length - need + 1)
                continue
            chunk = messages[sent : sent + room]
            q.put(zip(chunk, itertools.repeat(0)))
            sent += len(chunk)

    def consume(self, queue: str, *, prefetch: int) -> MemoryConsumer:
        self._check_open()
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        consumer = MemoryConsumer(
            self._queue(queue), prefetch, give_back=self._return, on_close=self._consumers.discard
        )
        self._consumers.add(consumer)
        return consumer

    async def depth(self, queue: str) -> int:
        return len(self._queue(queue).ready)

    async def consumers(self, queue: str) -> int:
        self._check_open()
        return sum(1 for c in self._consumers if c.queue_name == queue)

    async def wait_depth_below(self, queue: str, limit: int) -> None:
        self._check_open()
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")  # a depth is never below 0
        await self._wait_below(self._queue(queue), limit)

    async def broadcast(self, exchange: str, body: bytes) -> None:
        self._check_open()
        for subscription in self._subscriptions.get(exchange, ()):
            subscription.put(body)

    def subscribe(self, exchange: str) -> MemorySubscription:
        self._check_open()
        subscribers = self._subscriptions.setdefault(exchange, set())
        subscription = MemorySubscription(subscribers.discard)
        subscribers.add(subscription)
        return subscription

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subscribers in self._subscriptions.values():
            for subscription in list(subscribers):
                subscription.close()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for consumer in list(self._consumers):
            consumer.close()
        closed = BrokerError("broker closed")
        for q in self._queues.values():
            q.fail_depth_waiters(closed)

    async def _wait_below(self, q: _Queue, limit: int) -> None:
        if len(q.ready) < limit:
            return
        await q.wait_depth_below(limit)

    def _release(self, timer_id: int, q: _Queue, entries: list[_Entry]) -> None:
        # Delayed messages were confirmed when published, so they go in even past max_length, as
        # RabbitMQ's at-least-once dead-lettering from a retry queue never drops one either.
        del self._timers[timer_id]
        q.put(entries)

    def _return(self, q: _Queue, entries: list[_Entry]) -> None:
        """Put unsettled deliveries back at the front, or dead-letter those past the delivery limit.

        A queue without a dead-letter queue (itself one, not declared in its own right) keeps them:
        RabbitMQ would drop them, but nothing crash-loops on a dead-letter queue, and dropping loses.
        """
        limit = self.delivery_limit
        back: list[_Entry] = []
        for message, returns in entries:
            if limit is not None and returns >= limit and q.dead is not None:
                _put_dead_letter(q.dead, message, DELIVERY_LIMIT_REASON)
            else:
                back.append((message, returns + 1))
        q.put(reversed(back), front=True)

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            raise BrokerError(f"queue {name!r} is not declared; declare it before using it")
        return q

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError("broker closed")


class MemoryConsumer:
    """Deliveries from one queue, at most `prefetch` of them unsettled at a time."""

    def __init__(
        self,
        queue: _Queue,
        prefetch: int,
        *,
        give_back: Callable[[_Queue, list[_Entry]], None],
        on_close: Callable[[MemoryConsumer], None],
    ) -> None:
        self._queue = queue
        self._give_back = give_back
        self._on_close = on_close
        self._prefetch = prefetch
        # Insertion-ordered, so a close returns them in the order they were delivered.
        self._unsettled: dict[MemoryDelivery, None] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __aiter__(self) -> MemoryConsumer:
        return self

    async def __anext__(self) -> MemoryDelivery:
        q = self._queue
        while not self._closed:
            if len(self._unsettled) < self._prefetch:
                if q.ready:
                    message, returns = q.take()
                    delivery = MemoryDelivery(self, message, returns)
                    self._unsettled[delivery] = None
                    return delivery
                waiter = asyncio.get_running_loop().create_future()
                q.consumer_waiters.append(waiter)
            else:
                waiter = asyncio.get_running_loop().create_future()  # woken by a settle
            self._waiter = waiter
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    q.wake_consumers(1)  # hand on a wake-up this consumer will not use
                raise
            finally:
                self._waiter = None
        raise StopAsyncIteration

    @property
    def queue_name(self) -> str:
        return self._queue.name

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop the iteration and give back every unsettled delivery."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        unsettled = [(d.message, d.returns) for d in self._unsettled]
        self._unsettled.clear()
        if unsettled:
            self._give_back(self._queue, unsettled)
        # A wake-up this consumer took but did not use must reach another consumer.
        self._queue.wake_consumers(len(self._queue.ready))

    def dead_letter(self, delivery: MemoryDelivery, reason: str) -> None:
        """Settle `delivery` by moving it to the dead-letter queue (for `MemoryDelivery.dead_letter`)."""
        dead = self._queue.dead
        if dead is None:  # checked before settling, so the delivery is not lost
            raise BrokerError(f"queue {self._queue.name!r} has no dead-letter queue; declare it")
        self.settle(delivery)
        _put_dead_letter(dead, delivery.message, reason)

    def settle(self, delivery: MemoryDelivery) -> None:
        """Count `delivery` settled (for `MemoryDelivery.ack`)."""
        if self._closed:
            raise BrokerError("channel closed: the delivery went back to the queue")
        was_full = len(self._unsettled) >= self._prefetch
        try:
            del self._unsettled[delivery]
        except KeyError:
            raise BrokerError("delivery already settled") from None
        # Only a consumer at its prefetch waits for a settle; one waiting for a message is left be.
        waiter = self._waiter
        if was_full and waiter is not None and not waiter.done():
            waiter.set_result(None)


class MemorySubscription:
    """The bodies broadcast on one exchange, at most `SUBSCRIPTION_BACKLOG` of them unread."""

    def __init__(self, on_close: Callable[[MemorySubscription], None]) -> None:
        self._bodies: deque[bytes] = deque(maxlen=SUBSCRIPTION_BACKLOG)
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close
        self._closed = False

    async def start(self) -> None:
        """Nothing to do: a memory subscription listens from when it is made."""

    def put(self, body: bytes) -> None:
        self._bodies.append(body)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> MemorySubscription:
        return self

    async def __anext__(self) -> bytes:
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
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bodies.clear()
        self._on_close(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class MemoryDelivery:
    """One message handed to a `MemoryConsumer`."""

    __slots__ = ("_consumer", "message", "returns")

    def __init__(self, consumer: MemoryConsumer, message: Message, returns: int) -> None:
        self._consumer = consumer
        self.message = message
        self.returns = returns

    @property
    def body(self) -> bytes:
        return self.message.body

    @property
    def headers(self) -> Mapping[str, Any]:
        return self.message.headers

    @property
    def redelivered(self) -> bool:
        return self.returns > 0

    async def ack(self) -> None:
        self._consumer.settle(self)

    async def dead_letter(self, reason: str) -> None:
        self._consumer.dead_letter(self, reason)


def _put_dead_letter(dead: _Queue, message: Message, reason: str) -> None:
    # Straight in, past any max length: a dead letter cannot be refused, as in RabbitMQ.
    dead.put([(Message(message.body, {**message.headers, REASON_HEADER: reason}), 0)])
