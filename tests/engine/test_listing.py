"""Linking creates by a listing: the index's answers, and the gathering of pages from the results queue
(through the real result consumer and the in-memory broker; tests/integration covers RabbitMQ)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.core.links import Absent, Found, TargetIndex
from engine.pipeline.listing import Listing, ListingFailed, Listings
from engine.pipeline.results import ResultConsumer
from engine.pipeline.tracker import Tracker
from engine.store.state import StateStore, state_url
from queues.broker import REASON_HEADER, Message
from queues.contracts import ListPage, ListRequest, decode_work, encode_page
from queues.memory import MemoryBroker
from queues.topology import RESULTS_QUEUE, dead_letter_queue, ops_queue

FIELDS = ["externalId", "userName"]
ROWS = [
    ["t-1", "E1", "ada@example.org"],
    ["t-2", "E2", "Bob@Example.org"],
    ["t-3", "E3", "twin@example.org"],
    ["t-4", "E3b", "twin@example.org"],
]


def test_the_index_links_an_exact_single_hit_in_precedence_order() -> None:
    index = TargetIndex(FIELDS, ROWS)
    match = [["externalId", "E1"], ["userName", "other@example.org"]]
    assert index.link(match, {}) == Found("t-1")
    # not held by externalId, then by userName: the second attribute decides, as a search would, on an
    # object with no externalId of its own (made elsewhere)
    adopted = TargetIndex(FIELDS, [["t-9", None, "ada@example.org"]])
    assert adopted.link([["externalId", "E9"], ["userName", "ada@example.org"]], {}) == Found("t-9")
    # ...but an object whose externalId is another's is that other object: never linked (two people, or
    # two groups named alike, never share one)
    assert index.link([["externalId", "E9"], ["userName", "ada@example.org"]], {}) == Absent(FIELDS)
    # a name before the identifier is only a name: found by externalId under another userName, renamed
    assert index.link([["userName", "new@example.org"], ["externalId", "E1"]], {}) == Found("t-1")


def test_the_index_says_absent_only_when_no_value_is_held_in_any_case() -> None:
    index = TargetIndex(FIELDS, ROWS)
    assert index.link([["externalId", "E9"]], {"userName": "new@example.org"}) == Absent(FIELDS)
    # held in another case: not linked (a case-sensitive target holds another object) nor absent
    assert index.link([["userName", "bob@example.org"]], {}) is None
    # held by two objects: duplicates, for the connector to report
    assert index.link([["userName", "twin@example.org"]], {}) is None
    # a matching attribute the listing did not cover: the connector decides
    assert index.link([["mail", "x"]], {}) is None


def test_the_index_reads_lists_and_skips_values_that_cannot_match() -> None:
    index = TargetIndex(["mail"], [["t-1", ["a@x.org", "b@x.org"]], ["t-2", None], ["t-3", ""]])
    assert index.link([["mail", "b@x.org"]], {}) == Found("t-1")
    assert index.link([["mail", {"$unique": ["a"]}]], {}) is None  # nothing usable to say absent on


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with StateStore(state_url(str(tmp_path / "state.db"))) as store:
        yield store


class Answering:
    """Stands in for a worker: takes the list request from the target's queue and answers with
    `pages(request_id)` bodies on the results queue."""

    def __init__(self, broker: MemoryBroker, pages: Any) -> None:
        self._broker = broker
        self._pages = pages

    async def run(self) -> None:
        consumer = self._broker.consume(ops_queue("app"), prefetch=1)
        async for delivery in consumer:
            request = decode_work(delivery.body)
            for body in self._pages(request.request_id):  # type: ignore[union-attr]
                await self._broker.publish(RESULTS_QUEUE, [Message(body)])
            await delivery.ack()
            break
        await consumer.aclose()


def body(request_id: str, **fields: Any) -> bytes:
    values: dict[str, Any] = {
        "request_id": request_id,
        "answer_id": "a1",
        "target": "app",
        "number": 0,
        "last": True,
        "fields": FIELDS,
        "objects": [],
    }
    values.update(fields)
    return encode_page(ListPage(**values))


async def fetch(broker: MemoryBroker, state: StateStore, pages: Any, timeout_s: float = 5.0) -> Listing:
    listings = Listings(broker)
    consumer = ResultConsumer(broker, state, Tracker(), listings=listings)
    await consumer.start()
    worker = asyncio.create_task(Answering(broker, pages).run())
    try:
        return await listings.fetch(
            job="people", target="app", object_type="user", attributes=FIELDS, timeout_s=timeout_s
        )
    finally:
        await worker
        await consumer.aclose()


async def test_pages_of_an_answer_given_again_are_never_mixed_with_the_first(state: StateStore) -> None:
    def pages(request_id: str) -> list[bytes]:
        # a first answer cut short (its worker died), then a whole second one, pages out of order
        return [
            body(request_id, answer_id="a1", last=False, objects=ROWS[:1]),
            body(request_id, answer_id="a2", number=1, objects=ROWS[2:]),
            body(request_id, answer_id="a2", number=0, last=False, objects=ROWS[:2]),
        ]

    async with MemoryBroker() as broker:
        index = await fetch(broker, state, pages)

    assert len(index) == 4


async def test_a_page_saying_the_listing_failed_fails_it_with_the_reason(state: StateStore) -> None:
    def pages(request_id: str) -> list[bytes]:
        return [body(request_id, objects=[], error="GET /Users: HTTP 500")]

    async with MemoryBroker() as broker:
        with pytest.raises(ListingFailed, match="could not list target 'app': GET /Users: HTTP 500"):
            await fetch(broker, state, pages)


async def test_a_listing_without_the_attributes_asked_for_is_not_used(state: StateStore) -> None:
    def pages(request_id: str) -> list[bytes]:
        return [body(request_id, fields=["userName"], objects=[["t-1", "ada@example.org"]])]

    async with MemoryBroker() as broker:
        with pytest.raises(ListingFailed, match="lacks attributes asked for"):
            await fetch(broker, state, pages)


async def test_a_bad_page_is_dead_lettered_with_its_reason_and_fails_its_listing_at_once(
    state: StateStore,
) -> None:
    def pages(request_id: str) -> list[bytes]:
        doc = orjson.loads(body(request_id, objects=ROWS[:1]))
        doc["items"] = [["t-1", "E1"]]  # a row one value short
        return [orjson.dumps(doc)]

    async with MemoryBroker() as broker:
        with pytest.raises(ListingFailed, match=r"could not be read: .*not a row of 3 values"):
            await fetch(broker, state, pages, timeout_s=60)
        dead = broker.consume(dead_letter_queue(RESULTS_QUEUE), prefetch=10)
        async for delivery in dead:
            assert "not a row of 3 values" in delivery.headers[REASON_HEADER]
            break
        await dead.aclose()


async def test_no_first_page_soon_fails_the_listing_and_a_late_worker_drops_the_request(
    state: StateStore,
) -> None:
    async with MemoryBroker() as broker:
        listings = Listings(broker)
        consumer = ResultConsumer(broker, state, Tracker(), listings=listings)
        await consumer.start()
        try:
            with pytest.raises(
                ListingFailed, match=r"no worker of target 'app' began the listing within 0\.2 s"
            ):
                await listings.fetch(
                    job="people",
                    target="app",
                    object_type="user",
                    attributes=FIELDS,
                    timeout_s=60,
                    first_page_s=0.2,
                )
        finally:
            await consumer.aclose()
        queued = broker.consume(ops_queue("app"), prefetch=1)
        async for delivery in queued:
            request = decode_work(delivery.body)
            assert isinstance(request, ListRequest) and request.answer_by < time.time()
            break
        await queued.aclose()


async def test_a_listing_begun_but_not_finished_in_time_fails(state: StateStore) -> None:
    def pages(request_id: str) -> list[bytes]:
        return [body(request_id, last=False, objects=ROWS[:1])]  # and never the last page

    async with MemoryBroker() as broker:
        with pytest.raises(ListingFailed, match=r"no complete listing of target 'app' within 0\.5 s"):
            await fetch(broker, state, pages, timeout_s=0.5)
