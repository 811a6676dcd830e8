"""Batches operations per target and publishes them with confirms, under a high-water mark.

One message carries up to `batch_size` operations; a partial batch leaves after `linger_ms`, so a light
load pays no latency for batching. Before each publish the publisher waits until the target's queue is
below `high_water` messages: when workers fall behind, the wait reaches back to the source reader and
memory stays flat. Each message is in the wire version `WireVersions` picks for its target; what that
version cannot carry is not sent but handed to `refused` as failed results (see `engine.pipeline.wire`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.metrics import EngineMetrics
from engine.pipeline.wire import WireVersions, expressible
from queues.broker import Broker, Message
from queues.contracts import VERSION, Operation, Result
from queues.topology import ops_queue
from queues.wire import encode_operations


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishSettings:
    batch_size: int = 500
    linger_ms: int = 5
    high_water: int = 64

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.linger_ms < 0 or self.high_water < 1:
            raise ValueError(f"invalid publish settings {self!r}")


class Publisher:
    """Per-target buffers of operations, flushed when full, after the linger, or on `flush()`."""

    def __init__(
        self,
        broker: Broker,
        settings: PublishSettings | None = None,
        metrics: EngineMetrics | None = None,
        *,
        versions: WireVersions | None = None,
        refused: Callable[[list[Result]], Awaitable[None]] | None = None,
    ) -> None:
        """`refused` takes the failed results of the operations that the version `versions` picks
        cannot carry; without it, such an operation fails its flush (`Inexpressible`) instead."""
        self._broker = broker
        self._versions = versions
        self._refused = refused
        self._metrics = metrics
        self._settings = settings or PublishSettings()
        self._buffers: dict[str, list[Operation]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._lingering: set[asyncio.Task[None]] = set()
        self._declared: set[str] = set()
        self.published_ops = 0
        self.published_messages = 0

    async def add(self, op: Operation) -> None:
        buffer = self._buffers.setdefault(op.target, [])
        buffer.append(op)
        if len(buffer) >= self._settings.batch_size:
            await self._flush(op.target)
        elif len(buffer) == 1 and op.target not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[op.target] = loop.call_later(
                self._settings.linger_ms / 1000.0, self._linger_expired, op.target
            )

    async def flush(self) -> None:
        """Publish every buffered operation and wait for the confirms of lingering flushes."""
        for target in list(self._buffers):
            await self._flush(target)
        while self._lingering:
            await asyncio.gather(*self._lingering)

    def _linger_expired(self, target: str) -> None:
        self._timers.pop(target, None)
        task = asyncio.get_running_loop().create_task(self._flush(target))
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)

    async def _flush(self, target: str) -> None:
        timer = self._timers.pop(target, None)
        if timer is not None:
            timer.cancel()
        if not self._buffers.get(target):
            return
        queue = ops_queue(target)
        if queue not in self._declared:
            await self._broker.declare(queue)
            self._declared.add(queue)
        # Room first, then the buffer: a buffer taken before the wait would leave `add` a fresh one
        # to fill, and every linger a flush of its own holding its ops, so a producer slower than the
        # linger was never held back and the waiting flushes grew without bound (the 1M bench's peak).
        # Left in place, the buffer fills to `batch_size` and `add` waits here too.
        await self._broker.wait_depth_below(queue, self._settings.high_water)
        ops = self._buffers.pop(target, None)
        if not ops:
            return  # a flush that waited beside this one took them
        version = VERSION if self._versions is None else await self._versions.for_target(target)
        if version != VERSION and self._refused is not None:
            ops, refused = expressible(ops, version)
            if refused:
                await self._refused(refused)
            if not ops:
                return
        await self._broker.publish(queue, [Message(encode_operations(target, ops, version))])
        if self._metrics is not None:
            self._metrics.record_published(ops)
        self.published_ops += len(ops)
        self.published_messages += 1

    async def aclose(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._lingering):
            task.cancel()
