"""Brokers for the one broker test suite, parametrised by kind.

A kind is one entry in `FACTORIES`: an async factory taking its server's URL (from the fixture that
`SERVERS` names, if any) and the queue options a test may need (`max_length`, `delivery_limit`).
RabbitMQ honours them as queue arguments (`x-max-length` with `x-overflow: reject-publish`,
`x-delivery-limit`), so adding it is one more factory, marked `pytest.mark.rabbitmq`. Queue names are
unique per test, so the tests share the test run's vhost (`rabbitmq_url`, never `/`); every queue a
RabbitMQ broker declared is deleted after the test, and its exchanges once nothing uses them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import AMQPError

from queues.broker import Broker
from queues.memory import MemoryBroker
from queues.rabbitmq import RabbitBroker


async def _memory_broker(url: str | None, **options: Any) -> Broker:
    return MemoryBroker(**options)


async def connect_rabbit_broker(url: str, **options: Any) -> RabbitBroker:
    """A connected broker on the local RabbitMQ, in the vhost of `url`."""
    options.setdefault("name", "roster-tests")
    broker = RabbitBroker(url=url, **options)
    await broker.connect()
    return broker


async def _rabbitmq_broker(url: str | None, **options: Any) -> Broker:
    assert url is not None
    return await connect_rabbit_broker(url, **options)


async def delete_rabbit_topology(url: str, brokers: list[RabbitBroker]) -> None:
    """Delete the queues the brokers declared, and their exchanges if nothing else is bound to them."""
    queues = set().union(*(b.declared_queues for b in brokers))
    exchanges = set().union(*(b.declared_exchanges for b in brokers))
    if not queues and not exchanges:
        return
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        for queue in sorted(queues):
            await channel.queue_delete(queue)
        for exchange in sorted(exchanges):
            try:
                await channel.exchange_delete(exchange, if_unused=True)
            except AMQPError:  # still bound to a queue someone else uses: leave it
                channel = await connection.channel()


MakeBroker = Callable[..., Awaitable[Broker]]
"""`make_broker(max_length=..., delivery_limit=...)`: a broker of the test's kind with those options."""

FACTORIES: dict[str, MakeBroker] = {
    "memory": _memory_broker,
    "rabbitmq": _rabbitmq_broker,
}
SERVERS: dict[str, str] = {"rabbitmq": "rabbitmq_url"}  # kind -> the fixture giving its server's URL
MARKS: dict[str, list[pytest.MarkDecorator]] = {"rabbitmq": [pytest.mark.rabbitmq]}


@pytest.fixture(params=[pytest.param(kind, id=kind, marks=MARKS.get(kind, [])) for kind in FACTORIES])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    """Make brokers of this test's kind; every one is closed, and what it declared deleted, after
    the test."""
    factory = FACTORIES[request.param]
    server = SERVERS.get(request.param)
    url: str | None = request.getfixturevalue(server) if server else None
    made: list[Broker] = []

    async def make(**options: Any) -> Broker:
        broker = await factory(url, **options)
        made.append(broker)
        return broker

    yield make
    for broker in reversed(made):
        await broker.aclose()
    rabbits = [b for b in made if isinstance(b, RabbitBroker)]
    if url is not None and rabbits:
        await delete_rabbit_topology(url, rabbits)


@pytest.fixture
async def broker(make_broker: MakeBroker) -> Broker:
    return await make_broker()


@pytest.fixture
def queue() -> str:
    """A queue name no other test (or test run on a shared server) uses."""
    return f"roster.test.{uuid.uuid4().hex[:12]}"
