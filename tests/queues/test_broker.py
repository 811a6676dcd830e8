"""The one broker test suite: what every `Broker` must do, written only against the protocol.

It runs on each kind in `conftest.FACTORIES`. Waits that prove something does *not* happen are short
(`QUIET_S`); waits for something that must happen are generous (`DUE_S`), so that a slower real broker
passes the same tests.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from common.errors import BrokerError
from queues.broker import REASON_HEADER, Broker, Consumer, Delivery, Message
from queues.topology import dead_letter_queue

MakeBroker = Callable[..., Awaitable[Broker]]

QUIET_S = 0.15
DUE_S = 2.0


def messages(n: int, *, prefix: str = "m") -> list[Message]:
    return [Message(f"{prefix}{i}".encode(), {"seq": i}) for i in range(n)]


async def take(it: AsyncIterator[Delivery], n: int = 1) -> list[Delivery]:
    """The next `n` deliveries, failing the test if they do not come in time."""
    return [await asyncio.wait_for(anext(it), DUE_S) for _ in range(n)]


async def nothing_arrives(it: AsyncIterator[Delivery]) -> asyncio.Task[Delivery]:
    """Assert no delivery comes for a while; return the still-pending request for the next one."""
    pending = asyncio.ensure_future(anext(it))
    done, _ = await asyncio.wait({pending}, timeout=QUIET_S)
    assert not done, f"unexpected delivery {pending.result().body!r}"
    return pending


async def finish(pending: asyncio.Task[Delivery], consumer: Consumer) -> None:
    """Close `consumer` and check the request `pending` on it ends without a delivery."""
    await consumer.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, DUE_S)


async def test_published_messages_are_consumed_in_order_with_headers_intact(broker: Broker, queue: str):
    await broker.declare(queue)
    sent = [Message(b"a", {"x-roster-attempt": 1, "k": "v"}), Message(b"b"), Message(b"c", {"n": [1, 2]})]
    await broker.publish(queue, sent)

    consumer = broker.consume(queue, prefetch=10)
    got = await take(aiter(consumer), 3)
    for delivery in got:
        await delivery.ack()
    await consumer.aclose()

    assert [(d.body, dict(d.headers)) for d in got] == [(m.body, dict(m.headers)) for m in sent]
    assert not any(d.redelivered for d in got)


async def test_declare_is_idempotent_and_keeps_queued_messages(broker: Broker, queue: str):
    await broker.declare(queue)
    await broker.publish(queue, messages(2))
    await broker.declare(queue)

    assert await broker.depth(queue) == 2


async def test_publish_to_an_undeclared_queue_raises_naming_the_queue(broker: Broker, queue: str):
    with pytest.raises(BrokerError, match=queue):
        await broker.publish(queue, messages(1))


async def test_prefetch_bounds_unsettled_deliveries(broker: Broker, queue: str):
    await broker.declare(queue)
    await broker.publish(queue, messages(3))
    consumer = broker.consume(queue, prefetch=2)
    it = aiter(consumer)

    first, second = await take(it, 2)
    pending = await nothing_arrives(it)
    await first.ack()
    third = await asyncio.wait_for(pending, DUE_S)

    assert [first.body, second.body, third.body] == [b"m0", b"m1", b"m2"]
    await consumer.aclose()


async def test_dead_lettering_a_delivery_frees_its_prefetch_slot(broker: Broker, queue: str):
    await broker.declare(queue)
    await broker.publish(queue, messages(2))
    consumer = broker.consume(queue, prefetch=1)
    it = aiter(consumer)

    (first,) = await take(it)
    pending = await nothing_arrives(it)
    await first.dead_letter("bad")

    assert (await asyncio.wait_for(pending, DUE_S)).body == b"m1"
    await consumer.aclose()


async def test_consumers_on_one_queue_share_its_messages(broker: Broker, queue: str):
    await broker.declare(queue)
    acked: Counter[bytes] = Counter()
    shares: Counter[int] = Counter()

    async def drain(number: int, consumer: Consumer) -> None:
        async for delivery in consumer:
            await delivery.ack()
            acked[delivery.body] += 1
            shares[number] += 1
            await asyncio.sleep(0)  # let the other consumers take their share

    consumers = [broker.consume(queue, prefetch=3) for _ in range(3)]
    tasks = [asyncio.create_task(drain(i, c)) for i, c in enumerate(consumers)]
    await broker.publish(queue, messages(300))
    async with asyncio.timeout(DUE_S):
        while acked.total() < 300:
            await asyncio.sleep(0.01)
    for consumer in consumers:
        await consumer.aclose()
    await asyncio.gather(*tasks)

    assert acked == Counter(m.body for m in messages(300))
    assert len(shares) == 3


async def test_unacked_delivery_is_redelivered_first_after_its_consumer_closes(broker: Broker, queue: str):
    await broker.declare(queue)
    await broker.publish(queue, messages(3))
    first = broker.consume(queue, prefetch=1)
    (unacked,) = await take(aiter(first))
    await first.aclose()

    second = broker.consume(queue, prefetch=10)
    again, *rest = await take(aiter(second), 3)

    assert not unacked.redelivered
    assert (again.body, dict(again.headers), again.redelivered) == (b"m0", {"seq": 0}, True)
    assert [(d.body, d.redelivered) for d in rest] == [(b"m1", False), (b"m2", False)]
    await second.aclose()


async def test_consumer_closed_midway_loses_and_duplicates_nothing(broker: Broker, queue: str):
    await broker.declare(queue)
    sent = messages(100)
    await broker.publish(queue, sent)
    acked: Counter[bytes] = Counter()

    first = broker.consume(queue, prefetch=10)
    it = aiter(first)
    for i in range(40):
        (delivery,) = await take(it)
        if i % 7 != 3:  # leave some unsettled when the consumer closes
            await delivery.ack()
            acked[delivery.body] += 1
    await first.aclose()

    second = broker.consume(queue, prefetch=10)
    it = aiter(second)
    while acked.total() < 100:
        (delivery,) = await take(it)
        await delivery.ack()
        acked[delivery.body] += 1
    await finish(await nothing_arrives(it), second)

    assert acked == Counter(m.body for m in sent)


async def test_closing_a_consumer_ends_an_iteration_waiting_for_a_message(broker: Broker, queue: str):
    await broker.declare(queue)
    consumer = broker.consume(queue, prefetch=1)
    seen: list[Delivery] = []

    async def iterate() -> None:
        async for delivery in consumer:
            seen.append(delivery)

    task = asyncio.create_task(iterate())
    await asyncio.sleep(QUIET_S)
    await consumer.aclose()
    await asyncio.wait_for(task, DUE_S)

    assert seen == []


async def test_settling_a_delivery_twice_raises(broker: Broker, queue: str):
    await broker.declare(queue)
    await broker.publish(queue, messages(2))
    consumer = broker.consume(queue, prefetch=2)
    acked, dead = await take(aiter(consumer), 2)
    await acked.ack()
    await dead.dead_letter("bad")

    with pytest.raises(BrokerError):
        await acked.ack()
    with pytest.raises(BrokerError):
        await acked.dead_letter("bad")
    with pytest.raises(BrokerError):
        await dead.ack()
    await consumer.aclose()


async def test_settling_after_the_consumer_closed_raises_and_the_message_comes_back(
    broker: Broker, queue: str
):
    await broker.declare(queue)
    await broker.publish(queue, messages(1))
    first = broker.consume(queue, prefetch=1)
    (late,) = await take(aiter(first))
    await first.aclose()

    with pytest.raises(BrokerError, match="closed"):
        await late.ack()
    second = broker.consume(queue, prefetch=1)
    (again,) = await take(aiter(second))
    assert (again.body, again.redelivered) == (b"m0", True)
    await second.aclose()


async def test_delayed_publish_arrives_after_the_delay_and_not_before(broker: Broker, queue: str):
    await broker.declare(queue)
    consumer = broker.consume(queue, prefetch=10)
    it = aiter(consumer)
    loop = asyncio.get_running_loop()

    started = loop.time()
    await broker.publish(queue, messages(2), delay_ms=400)
    pending = await nothing_arrives(it)
    assert await broker.depth(queue) == 0
    first = await asyncio.wait_for(pending, DUE_S)
    elapsed = loop.time() - started
    (second,) = await take(it)

    assert elapsed >= 0.35
    assert sorted([first.body, second.body]) == [b"m0", b"m1"]
    await consumer.aclose()


async def test_delayed_messages_arrive_exactly_once(broker: Broker, queue: str):
    await broker.declare(queue)
    for batch in range(5):
        await broker.publish(queue, messages(20, prefix=f"b{batch}-"), delay_ms=50 + 20 * batch)
    consumer = broker.consume(queue, prefetch=20)
    it = aiter(consumer)
    acked: Counter[bytes] = Counter()

    while acked.total() < 100:
        (delivery,) = await take(it)
        await delivery.ack()
        acked[delivery.body] += 1
    await finish(await nothing_arrives(it), consumer)

    assert acked == Counter(m.body for b in range(5) for m in messages(20, prefix=f"b{b}-"))


async def test_dead_letter_moves_the_message_with_its_reason_and_headers(broker: Broker, queue: str):
    await broker.declare(queue)
    await broker.publish(queue, [Message(b"poison", {"x-roster-attempt": 3})])
    consumer = broker.consume(queue, prefetch=1)
    (delivery,) = await take(aiter(consumer))
    await delivery.dead_letter("unknown envelope version 9")
    await consumer.aclose()

    dead = broker.consume(dead_letter_queue(queue), prefetch=1)
    (letter,) = await take(aiter(dead))
    await letter.ack()
    await dead.aclose()

    assert letter.body == b"poison"
    assert letter.headers[REASON_HEADER] == "unknown envelope version 9"
    assert letter.headers["x-roster-attempt"] == 3
    assert await broker.depth(queue) == 0


async def test_depth_counts_ready_messages(broker: Broker, queue: str):
    await broker.declare(queue)
    assert await broker.depth(queue) == 0
    await broker.publish(queue, messages(5))
    await broker.publish(queue, messages(3, prefix="later"), delay_ms=60_000)
    assert await broker.depth(queue) == 5

    consumer = broker.consume(queue, prefetch=2)
    await take(aiter(consumer), 2)
    assert await broker.depth(queue) == 3

    await consumer.aclose()  # the two unsettled ones are ready again
    assert await broker.depth(queue) == 5


async def test_wait_depth_below_blocks_until_a_consumer_drains_the_queue(broker: Broker, queue: str):
    await broker.declare(queue)
    await broker.publish(queue, messages(10))
    waiting = asyncio.create_task(broker.wait_depth_below(queue, 4))
    await asyncio.sleep(QUIET_S)
    assert not waiting.done()

    consumer = broker.consume(queue, prefetch=1)
    it = aiter(consumer)
    drained = 0
    while not waiting.done():
        (delivery,) = await take(it)
        await delivery.ack()
        drained += 1
        await asyncio.sleep(0)
    await asyncio.wait_for(waiting, DUE_S)
    await consumer.aclose()

    assert await broker.depth(queue) < 4
    assert drained >= 7


async def test_wait_depth_below_returns_at_once_when_already_below(broker: Broker, queue: str):
    await broker.declare(queue)
    await broker.publish(queue, messages(2))

    await asyncio.wait_for(broker.wait_depth_below(queue, 3), DUE_S)


async def test_publish_to_a_full_queue_waits_for_room_then_delivers_every_message_once(
    make_broker: MakeBroker, queue: str
):
    broker = await make_broker(max_length=3)
    await broker.declare(queue)
    sent = messages(10)
    publishing = asyncio.create_task(broker.publish(queue, sent))
    await asyncio.sleep(QUIET_S)
    assert not publishing.done()
    assert await broker.depth(queue) == 3

    consumer = broker.consume(queue, prefetch=2)
    it = aiter(consumer)
    got: Counter[bytes] = Counter()
    for _ in range(len(sent)):
        (delivery,) = await take(it)
        await delivery.ack()
        got[delivery.body] += 1
    await asyncio.wait_for(publishing, DUE_S)
    await finish(await nothing_arrives(it), consumer)

    assert got == Counter(m.body for m in sent)


async def test_a_message_that_keeps_coming_back_is_dead_lettered_at_the_delivery_limit(
    make_broker: MakeBroker, queue: str
):
    broker = await make_broker(delivery_limit=2)
    await broker.declare(queue)
    await broker.publish(queue, [Message(b"crasher", {"k": "v"})])

    for _ in range(3):  # the first delivery and two redeliveries, each left unsettled
        consumer = broker.consume(queue, prefetch=1)
        (delivery,) = await take(aiter(consumer))
        assert delivery.body == b"crasher"
        await consumer.aclose()

    consumer = broker.consume(queue, prefetch=1)
    await finish(await nothing_arrives(aiter(consumer)), consumer)
    dead = broker.consume(dead_letter_queue(queue), prefetch=1)
    (letter,) = await take(aiter(dead))
    await letter.ack()
    await dead.aclose()

    assert letter.body == b"crasher"
    assert (letter.headers[REASON_HEADER], letter.headers["k"]) == ("delivery_limit", "v")


async def test_closing_the_broker_twice_is_harmless(make_broker: MakeBroker, queue: str):
    broker = await make_broker()
    await broker.declare(queue)
    consumer = broker.consume(queue, prefetch=1)
    pending = asyncio.ensure_future(anext(aiter(consumer)))
    await asyncio.sleep(0)

    await broker.aclose()
    await broker.aclose()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, DUE_S)
