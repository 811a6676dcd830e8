"""What only the RabbitMQ broker must do: its topology on the server, and surviving dropped connections.

The behaviour both brokers share is in `test_broker.py`. These tests read the server's view with
`rabbitmqctl`, and drop this test's own connections (found by their connection name) rather than every
connection of a server other tests may share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest

from common.errors import BrokerError
from queues.broker import REASON_HEADER, Message
from queues.rabbitmq import RabbitBroker
from queues.rabbitmq.topology import delay_bucket_ms, retry_queue
from queues.topology import dead_letter_queue, ops_queue
from tests.queues.conftest import connect_rabbit_broker, delete_rabbit_topology
from tests.rabbit import vhost_of

pytestmark = pytest.mark.rabbitmq

DUE_S = 5.0

MakeRabbit = Callable[..., Awaitable[RabbitBroker]]


@pytest.fixture
async def make_rabbit(rabbitmq_url: str) -> AsyncIterator[MakeRabbit]:
    """Make RabbitMQ brokers (in the test run's vhost unless `url=` says otherwise); each is closed, and
    what it declared deleted, after the test."""
    made: list[RabbitBroker] = []

    async def make(**options: Any) -> RabbitBroker:
        broker = await connect_rabbit_broker(options.pop("url", rabbitmq_url), **options)
        made.append(broker)
        return broker

    yield make
    for broker in reversed(made):
        await broker.aclose()
    await delete_rabbit_topology(rabbitmq_url, made)


@pytest.fixture
def target() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} failed: {err.decode() or out.decode()}", pytrace=False)
    return out.decode()


async def queue_names(vhost: str) -> set[str]:
    listed = json.loads(await rabbitmqctl("list_queues", "-p", vhost, "name", "--formatter", "json"))
    return {q["name"] for q in listed}


async def queue_info(url: str, name: str) -> dict[str, Any]:
    """The server's view of one queue in the vhost of `url`: type, durability, and arguments as a dict."""
    listed = json.loads(
        await rabbitmqctl(
            "list_queues", "-p", vhost_of(url), "name", "type", "durable", "arguments", "--formatter", "json"
        )
    )
    (info,) = [q for q in listed if q["name"] == name]
    info["arguments"] = {key: value for key, _type, value in info["arguments"]}
    return info


async def connections_named(name: str) -> list[str]:
    """The server's ids of the connections named `name` (the broker's `name`)."""
    listing = await rabbitmqctl("list_connections", "pid", "client_properties")
    return [
        line.split("\t", 1)[0] for line in listing.splitlines() if f'{{"connection_name","{name}"}}' in line
    ]


async def drop_connections(pids: list[str]) -> None:
    """Close connections on the server's side, as a broker restart or a network cut would."""
    await asyncio.gather(
        *(rabbitmqctl("close_connection", pid, "roster test: connection dropped") for pid in pids)
    )


class CutProxy:
    """A TCP proxy in front of RabbitMQ whose `cut` drops every connection and refuses new ones
    until `restore`, as an unreachable broker would."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 5672)
        self._writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.fixture
async def proxy() -> AsyncIterator[CutProxy]:
    proxy = CutProxy()
    await proxy.restore()
    yield proxy
    await proxy.cut()


async def test_an_ops_queue_is_a_quorum_queue_with_its_limits_bound_to_the_ops_exchange(
    make_rabbit: MakeRabbit, target: str, rabbitmq_url: str
):
    broker = await make_rabbit(max_length=500, delivery_limit=7)
    queue = ops_queue(target)
    await broker.declare(queue)
    await broker.declare(queue)

    info = await queue_info(rabbitmq_url, queue)
    dead = await queue_info(rabbitmq_url, dead_letter_queue(queue))
    assert (info["type"], info["durable"], dead["type"], dead["durable"]) == ("quorum", True, "quorum", True)
    assert info["arguments"] == {
        "x-queue-type": "quorum",
        "x-max-length": 499,  # a quorum queue takes one past x-max-length: it holds 500
        "x-overflow": "reject-publish",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": f"roster.dead.{target}",
        "x-dead-letter-strategy": "at-least-once",
    }
    async with await aio_pika.connect(rabbitmq_url) as connection:  # another client, by the exchange
        channel = await connection.channel()
        exchange = await channel.get_exchange("roster.ops")
        await exchange.publish(aio_pika.Message(b"routed", headers={"k": "v"}), routing_key=target)
    consumer = broker.consume(queue, prefetch=1)
    delivery = await asyncio.wait_for(anext(aiter(consumer)), DUE_S)
    await delivery.ack()
    await consumer.aclose()
    assert (delivery.body, dict(delivery.headers)) == (b"routed", {"k": "v"})


async def test_a_delayed_message_waits_in_a_retry_tier_then_comes_back_with_its_headers(
    make_rabbit: MakeRabbit, target: str, rabbitmq_url: str
):
    broker = await make_rabbit()
    queue = ops_queue(target)
    await broker.declare(queue)
    consumer = broker.consume(queue, prefetch=1)
    loop = asyncio.get_running_loop()

    started = loop.time()
    await broker.publish(queue, [Message(b"retry", {"x-roster-attempt": 2})], delay_ms=300)
    tier = await queue_info(rabbitmq_url, retry_queue(queue, delay_bucket_ms(300)))
    delivery = await asyncio.wait_for(anext(aiter(consumer)), DUE_S)
    elapsed = loop.time() - started
    await delivery.ack()
    await consumer.aclose()

    assert elapsed >= 0.3
    assert (delivery.body, dict(delivery.headers)) == (b"retry", {"x-roster-attempt": 2})
    assert tier["arguments"]["x-message-ttl"] == delay_bucket_ms(300) >= 300
    assert tier["arguments"]["x-dead-letter-routing-key"] == queue
    assert tier["arguments"]["x-expires"] > 2 * 300


async def test_a_body_published_to_a_full_queue_waits_for_room_then_arrives(
    make_rabbit: MakeRabbit, queue: str
):
    broker = await make_rabbit(max_length=2)
    await broker.declare(queue)
    await broker.publish(queue, [Message(b"first"), Message(b"second")])

    late = asyncio.create_task(broker.publish(queue, [Message(b"late")]))
    await asyncio.sleep(0.3)
    assert not late.done()
    assert await broker.depth(queue) == 2

    consumer = broker.consume(queue, prefetch=1)
    it = aiter(consumer)
    bodies = []
    for _ in range(3):
        delivery = await asyncio.wait_for(anext(it), DUE_S)
        bodies.append(delivery.body)
        await delivery.ack()
    await asyncio.wait_for(late, DUE_S)
    await consumer.aclose()
    assert bodies == [b"first", b"second", b"late"]


async def test_a_message_crashing_every_consumer_is_dead_lettered_with_reason_delivery_limit(
    make_rabbit: MakeRabbit, target: str
):
    broker = await make_rabbit(delivery_limit=3)
    queue = ops_queue(target)
    await broker.declare(queue)
    await broker.publish(queue, [Message(b"crasher", {"x-roster-attempt": 1})])

    deliveries = 0
    while True:  # each consumer "crashes": it closes without settling
        consumer = broker.consume(queue, prefetch=1)
        try:
            delivery = await asyncio.wait_for(anext(aiter(consumer)), 1.0)
        except TimeoutError:
            await consumer.aclose()
            break
        assert (delivery.body, delivery.redelivered) == (b"crasher", deliveries > 0)
        assert "x-delivery-count" not in delivery.headers
        deliveries += 1
        await consumer.aclose()

    dead = broker.consume(dead_letter_queue(queue), prefetch=1)
    letter = await asyncio.wait_for(anext(aiter(dead)), DUE_S)
    await letter.ack()
    await dead.aclose()
    assert deliveries == 4  # the first delivery and three returns
    assert letter.body == b"crasher"
    assert dict(letter.headers) == {"x-roster-attempt": 1, REASON_HEADER: "delivery_limit"}


async def test_dropped_connections_lose_no_message_and_publishing_and_consuming_resume(
    make_rabbit: MakeRabbit, queue: str
):
    # A short queue and a slow consumer keep the publisher inside `publish` (in flight, or waiting
    # for room) from start to end, so the drop always cuts one.
    name = f"roster-test-{uuid.uuid4().hex[:12]}"
    engine = await make_rabbit(name=name, max_length=50)
    worker = await make_rabbit(name=name, max_length=50)
    await engine.declare(queue)
    await worker.declare(queue)
    sent = [f"m{i}".encode() for i in range(2000)]
    received: Counter[bytes] = Counter()
    lost_acks = 0
    consumer = worker.consume(queue, prefetch=50)

    async def drain() -> None:
        nonlocal lost_acks
        async for delivery in consumer:
            received[delivery.body] += 1
            await asyncio.sleep(0.001)
            try:
                await delivery.ack()
            except BrokerError:  # its channel went down with the connection: it comes back
                lost_acks += 1

    draining = asyncio.create_task(drain())
    pids = await connections_named(name)
    dropping = asyncio.create_task(drop_connections(pids))
    published_at_drop = None
    for start in range(0, len(sent), 20):
        if start == len(sent) - 200:
            await dropping  # keep the last batches for after the drop
        await engine.publish(queue, [Message(body) for body in sent[start : start + 20]])
        if dropping.done() and published_at_drop is None:
            published_at_drop = start + 20
    async with asyncio.timeout(30):
        while received.keys() != set(sent):
            await asyncio.sleep(0.05)
        await engine.declare(queue)  # the control channel is back too
        # A message whose ack was lost with its channel comes back: let the consumer take those too.
        while await engine.depth(queue) != 0:
            await asyncio.sleep(0.05)
    await consumer.aclose()
    await draining

    assert len(pids) == 2
    assert published_at_drop is not None and published_at_drop < len(sent)
    assert received.keys() == set(sent)


async def test_a_publish_raises_when_rabbitmq_stays_unreachable_and_completes_after_a_short_outage(
    make_rabbit: MakeRabbit, proxy: CutProxy, queue: str, rabbitmq_url: str
):
    broker = await make_rabbit(url=rabbitmq_url.replace(":5672/", f":{proxy.port}/"), reconnect_timeout_s=1.5)
    await broker.declare(queue)
    loop = asyncio.get_running_loop()

    await proxy.cut()
    started = loop.time()
    with pytest.raises(BrokerError, match="no connection to RabbitMQ"):
        await broker.publish(queue, [Message(b"lost")])
    waited = loop.time() - started

    publishing = asyncio.create_task(broker.publish(queue, [Message(b"kept-1"), Message(b"kept-2")]))
    await asyncio.sleep(0.3)
    await proxy.restore()
    await asyncio.wait_for(publishing, DUE_S)
    consumer = broker.consume(queue, prefetch=10)
    got = [await asyncio.wait_for(anext(aiter(consumer)), DUE_S) for _ in range(2)]
    await consumer.aclose()

    assert 1.5 <= waited < 5
    assert sorted(d.body for d in got) == [b"kept-1", b"kept-2"]


async def test_the_tests_declare_in_the_runs_own_vhost_and_leave_nothing_in_the_default_one(
    make_rabbit: MakeRabbit, target: str, rabbitmq_url: str
):
    broker = await make_rabbit(delivery_limit=3)
    queue = ops_queue(target)
    await broker.declare(queue)
    await broker.publish(queue, [Message(b"due later")], delay_ms=300)

    ours = await queue_names(vhost_of(rabbitmq_url))
    made = {queue, dead_letter_queue(queue), retry_queue(queue, delay_bucket_ms(300))}
    assert made <= ours and rabbitmq_url.rsplit("/", 1)[1] not in ("", "%2F")
    assert not made & await queue_names("/")
