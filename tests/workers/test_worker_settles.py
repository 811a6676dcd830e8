"""The worker settles every delivery on every path, on both brokers: a batch it fails on is reported
failed operation by operation and acked, never left holding a prefetch slot until its channel closes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from queues.broker import Broker, Message
from queues.contracts import Operation, decode_results, encode_operations
from queues.memory import MemoryBroker
from queues.topology import RESULTS_QUEUE, dead_letter_queue, ops_queue
from tests.queues.conftest import connect_rabbit_broker
from tests.rabbit import vhost
from workers.connectors.null import NullConnector
from workers.worker import TargetRuntime, Worker


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """A broker of each kind; RabbitMQ's in a virtual host of its own, since the worker publishes to
    the shared `roster.results`."""
    if request.param == "memory":
        async with MemoryBroker() as memory:
            yield memory
        return
    with vhost() as url:
        rabbit = await connect_rabbit_broker(url=url)
        try:
            yield rabbit
        finally:
            await rabbit.aclose()


class Nonsense(NullConnector):
    """Answers its first batch with something that is not an outcome (a broken connector plugin)."""

    calls = 0

    async def apply(self, ops: Sequence[Operation]) -> list[Any]:
        self.calls += 1
        return [None] * len(ops) if self.calls == 1 else await super().apply(ops)


def _ops(target: str, n: int, tag: str) -> list[Operation]:
    return [
        Operation(
            op_id=f"{tag}-{i}",
            job="people",
            target=target,
            cycle_id="c1",
            action="create",
            object_type="user",
            source_id=f"E{i}",
            attributes={"id": f"E{i}"},
            desired_hash="h",
            matching=[["id", f"E{i}"]],
        )
        for i in range(n)
    ]


async def _results(broker: Broker, n: int) -> list[Any]:
    results: list[Any] = []
    consumer = broker.consume(RESULTS_QUEUE, prefetch=10)
    try:
        async for delivery in consumer:
            results.extend(decode_results(delivery.body))
            await delivery.ack()
            if len(results) >= n:
                return results
    finally:
        await consumer.aclose()
    return results


async def test_a_batch_the_worker_fails_on_is_reported_failed_and_acked(broker: Broker) -> None:
    target = f"t{uuid.uuid4().hex[:10]}"
    queue = ops_queue(target)
    await broker.declare(queue)
    await broker.declare(RESULTS_QUEUE)
    first, second = _ops(target, 3, "a"), _ops(target, 2, "b")
    await broker.publish(queue, [Message(encode_operations(target, first))])
    await broker.publish(queue, [Message(encode_operations(target, second))])

    # One batch at a time: a batch left unsettled would hold the only slot and stop the second.
    runtime = TargetRuntime(name=target, connector=Nonsense(target), max_inflight=1, prefetch=1)
    async with Worker(broker, [runtime]):
        results = await asyncio.wait_for(_results(broker, 5), 30)

    by_op = {r.op_id: r for r in results}
    assert sorted(by_op) == ["a-0", "a-1", "a-2", "b-0", "b-1"]
    for op in first:
        failed = by_op[op.op_id]
        assert (failed.status, failed.error_class) == ("failed", "WorkerError")
        assert failed.error_message.startswith("the worker failed on this batch: AttributeError")
    assert {by_op[op.op_id].status for op in second} == {"succeeded"}
    # Settled, not waiting to come back: nothing in the queue nor its dead letters once the worker is gone.
    assert await broker.depth(queue) == 0
    assert await broker.depth(dead_letter_queue(queue)) == 0
