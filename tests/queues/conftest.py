"""Brokers for the one broker test suite, parametrised by kind.

A kind is one entry in `FACTORIES`: an async factory taking the queue options a test may need
(`max_length`, `delivery_limit`). RabbitMQ honours them as queue arguments (`x-max-length` with
`x-overflow: reject-publish`, `x-delivery-limit`), so adding it is one more factory, marked
`pytest.mark.rabbitmq`. Queue names are unique per test, so the suite can share a real server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from queues.broker import Broker
from queues.memory import MemoryBroker


async def _memory_broker(**options: Any) -> Broker:
    return MemoryBroker(**options)


MakeBroker = Callable[..., Awaitable[Broker]]
"""`make_broker(max_length=..., delivery_limit=...)`: a broker of the test's kind with those options."""

FACTORIES: dict[str, MakeBroker] = {
    "memory": _memory_broker,
}


@pytest.fixture(params=[pytest.param(kind, id=kind) for kind in FACTORIES])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    """Make brokers of this test's kind; every one is closed after the test."""
    factory = FACTORIES[request.param]
    made: list[Broker] = []

    async def make(**options: Any) -> Broker:
        broker = await factory(**options)
        made.append(broker)
        return broker

    yield make
    for broker in reversed(made):
        await broker.aclose()


@pytest.fixture
async def broker(make_broker: MakeBroker) -> Broker:
    return await make_broker()


@pytest.fixture
def queue() -> str:
    """A queue name no other test (or test run on a shared server) uses."""
    return f"roster.test.{uuid.uuid4().hex[:12]}"
