"""The `Broker` protocol: the one interface the engine and the workers speak to a message broker.

The in-memory broker (`queues/memory.py`) and the RabbitMQ broker implement it with the same
semantics, and one test suite (`tests/queues/test_broker.py`) holds both to it:

* `publish` returns once the broker has taken every message (publisher confirms); a queue at its max
  length slows the publisher down instead of losing the message.
* `consume` yields deliveries with at most `prefetch` unacked at a time; a delivery that is neither
  acked nor rejected when its consumer closes is redelivered, with `redelivered` set.
* `publish(..., delay_ms=N)` makes the messages appear in the queue N ms later (the retry tiers).
* `dead_letter` moves a delivery to the queue's dead-letter queue with a reason header.
* `depth` counts messages ready in a queue; `wait_depth_below` is how the engine honours a high-water mark.
* `consumers` counts those consuming a queue (the engine compares it with the workers it knows of).
* `broadcast` sends a body to every current `subscribe`r of an exchange (presence heartbeats): no
  confirm, no queue that outlives its subscriber, nothing to settle; a slow subscriber loses the oldest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

REASON_HEADER = "x-roster-dead-reason"
ATTEMPT_HEADER = "x-roster-attempt"


@dataclass(frozen=True, slots=True)
class Message:
    """A body and its headers, as published."""

    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Delivery(Protocol):
    """One message handed to a consumer; settle it exactly once with `ack` or `dead_letter`."""

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, Any]: ...

    @property
    def redelivered(self) -> bool: ...

    async def ack(self) -> None: ...

    async def dead_letter(self, reason: str) -> None:
        """Settle the delivery by moving it to the dead-letter queue with `reason`."""
        ...


class Consumer(Protocol):
    """An async iterator of deliveries from one queue. `aclose` stops it; unsettled ones come back."""

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def aclose(self) -> None: ...


class Subscription(Protocol):
    """The bodies broadcast on one exchange since it started. `aclose` stops it."""

    async def start(self) -> None:
        """Listen from now on (the first iteration starts it too); a second call does nothing."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Broker(Protocol):
    """A message broker with confirms, prefetch, delayed redelivery, dead letters and depth.

    `async with broker` connects (where there is anything to connect to) and closes it on the way out.
    """

    durable: bool
    """True when queued messages outlive the process (RabbitMQ); False for the in-memory broker."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def declare(self, queue: str) -> None:
        """Create `queue` and its dead-letter queue if they do not exist (idempotent)."""
        ...

    async def publish(self, queue: str, messages: Sequence[Message], *, delay_ms: int = 0) -> None:
        """Publish and wait until the broker has confirmed every message."""
        ...

    def consume(self, queue: str, *, prefetch: int) -> Consumer: ...

    async def depth(self, queue: str) -> int: ...

    async def wait_depth_below(self, queue: str, limit: int) -> None:
        """Return once `queue` holds fewer than `limit` ready messages."""
        ...

    async def consumers(self, queue: str) -> int:
        """How many consumers `queue` has now."""

    async def broadcast(self, exchange: str, body: bytes) -> None:
        """Send `body` to every subscriber of `exchange` now (fire and forget: nobody may listen)."""
        ...

    def subscribe(self, exchange: str) -> Subscription:
        """Every body broadcast on `exchange` from now on, until `aclose`."""
        ...

    async def aclose(self) -> None: ...
