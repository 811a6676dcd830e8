"""The publisher holds a slow producer back when the target's queue is full, linger or not."""

from __future__ import annotations

import asyncio

from engine.pipeline.publisher import Publisher, PublishSettings
from queues.broker import Message
from queues.contracts import Operation, decode_operations, encode_operations
from queues.memory import MemoryBroker
from queues.topology import ops_queue


def _op(n: int) -> Operation:
    return Operation(
        op_id=f"op-{n}",
        cycle_id="cycle-1",
        job="people",
        target="app",
        object_type="user",
        action="create",
        source_id=f"p{n}",
        attributes={"userName": f"user{n}"},
        desired_hash=f"h{n}",
    )


async def test_a_producer_slower_than_the_linger_waits_for_room_and_every_op_arrives_once() -> None:
    settings = PublishSettings(batch_size=10, linger_ms=1, high_water=1)
    async with MemoryBroker() as broker:
        queue = ops_queue("app")
        await broker.declare(queue)
        await broker.publish(queue, [Message(encode_operations("app", [_op(-1)]))])  # the queue is full
        publisher = Publisher(broker, settings)
        added = 0

        async def produce() -> None:
            nonlocal added
            for n in range(200):
                await publisher.add(_op(n))
                added += 1
                await asyncio.sleep(0.005)  # slower than the linger: each op alone would linger out

        producer = asyncio.create_task(produce())
        await asyncio.sleep(0.5)
        # Held back once a batch waits for room: on main every linger took its ops off to a flush of
        # its own, and all 200 were added (and held in memory) with nothing published.
        assert added <= settings.batch_size
        assert not producer.done()

        seen: list[str] = []

        async def consume() -> None:
            async for delivery in broker.consume(queue, prefetch=1):
                seen.extend(op.op_id for op in decode_operations(delivery.body))
                await delivery.ack()

        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(producer, 30)
        await publisher.flush()
        async with asyncio.timeout(30):
            while len(seen) < 201:
                await asyncio.sleep(0.01)
        consumer.cancel()
        await publisher.aclose()
    assert seen == ["op--1", *(f"op-{n}" for n in range(200))]
