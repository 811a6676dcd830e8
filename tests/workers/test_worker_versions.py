"""A worker and the wire versions, on both brokers: it answers a message in the version it came in,
names itself and its versions in the headers of what it answers, and one limited to the previous
version (`ROSTER_WIRE_VERSIONS=4`) dead-letters the current one as the previous build would."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from queues.broker import REASON_HEADER, Broker, Message
from queues.contracts import ListRequest
from queues.topology import RESULTS_QUEUE, dead_letter_queue, ops_queue
from queues.versions import speaker_of
from queues.wire import decode_reports, encode_list_request, encode_operations
from tests.queues import previous_contracts as previous
from tests.workers.test_worker_settles import _ops, broker  # noqa: F401
from workers.connectors.null import NullConnector
from workers.worker import TargetRuntime, Worker


async def _next(on: Broker, queue: str) -> tuple[bytes, dict[str, Any]]:
    consumer = on.consume(queue, prefetch=1)
    try:
        async for delivery in consumer:
            await delivery.ack()
            return delivery.body, dict(delivery.headers)
    finally:
        await consumer.aclose()
    raise AssertionError(f"{queue} ended")


async def _setup(on: Broker) -> tuple[str, str]:
    target = f"t{uuid.uuid4().hex[:10]}"
    await on.declare(ops_queue(target))
    await on.declare(RESULTS_QUEUE)
    return target, ops_queue(target)


async def test_a_worker_answers_a_v4_batch_in_v4_and_says_it_speaks_both(broker: Broker) -> None:  # noqa: F811
    target, queue = await _setup(broker)
    await broker.publish(queue, [Message(encode_operations(target, _ops(target, 3, "a"), 4))])
    async with Worker(broker, [TargetRuntime(name=target, connector=NullConnector(target))]) as worker:
        body, headers = await asyncio.wait_for(_next(broker, RESULTS_QUEUE), 30)
    results = previous.decode_results(body)  # what a previous engine reads
    assert sorted(r.op_id for r in results) == ["a-0", "a-1", "a-2"]
    assert {r.status for r in results} == {"succeeded"}
    assert speaker_of(headers) == (worker.peer_id, (4, 5))


async def test_a_worker_answers_a_v4_list_request_with_v4_pages(broker: Broker) -> None:  # noqa: F811
    target, queue = await _setup(broker)
    request = ListRequest(
        request_id="list-1", job="people", target=target, object_type="user", attributes=["id"]
    )
    await broker.publish(queue, [Message(encode_list_request(request, 4))])
    async with Worker(broker, [TargetRuntime(name=target, connector=NullConnector(target))]):
        body, headers = await asyncio.wait_for(_next(broker, RESULTS_QUEUE), 30)
    page = previous.decode_reports(body)
    assert isinstance(page, previous.ListPage) and page.request_id == "list-1" and page.last
    assert speaker_of(headers) is not None


async def test_a_worker_answers_a_v5_batch_in_v5(broker: Broker) -> None:  # noqa: F811
    target, queue = await _setup(broker)
    await broker.publish(queue, [Message(encode_operations(target, _ops(target, 2, "b")))])
    async with Worker(broker, [TargetRuntime(name=target, connector=NullConnector(target))]):
        body, _ = await asyncio.wait_for(_next(broker, RESULTS_QUEUE), 30)
    version, results = decode_reports(body)
    assert version == 5 and isinstance(results, list) and len(results) == 2


async def test_a_worker_limited_to_v4_dead_letters_v5_and_serves_v4(broker: Broker) -> None:  # noqa: F811
    target, queue = await _setup(broker)
    await broker.publish(queue, [Message(encode_operations(target, _ops(target, 2, "new")))])
    await broker.publish(queue, [Message(encode_operations(target, _ops(target, 2, "old"), 4))])
    runtime = TargetRuntime(name=target, connector=NullConnector(target), max_inflight=1, prefetch=1)
    async with Worker(broker, [runtime], spoken=(4,)) as worker:
        body, headers = await asyncio.wait_for(_next(broker, RESULTS_QUEUE), 30)
    assert sorted(r.op_id for r in previous.decode_results(body)) == ["old-0", "old-1"]
    assert speaker_of(headers) == (worker.peer_id, (4,))
    dead, dead_headers = await asyncio.wait_for(_next(broker, dead_letter_queue(queue)), 30)
    assert b'"v":5' in dead
    assert "version 5" in str(dead_headers[REASON_HEADER])
