"""Linking a cycle's creates by one listing of the target rather than one search each.

A first cycle against a target that already holds accounts would have the connector search the target
before every create (one `eq` filter GET per matching attribute, for SCIM). `CycleLinks` holds a cycle's
creates back until there are `min_creates` of them, then asks the target's worker for a listing of its
objects (id and matching attributes) through the queue, `Listings` gathers the pages from the results
queue into a `Listing`, indexed as a `TargetIndex`, and each create goes out with what the index says of
it (reconciliation, `engine.pipeline.reconciling`, lists the same way, with every mapped attribute):

* found: the create carries the object's id (`target_id`): the connector reads that object and updates
  it, with no search; gone meanwhile, it searches and creates as before;
* absent: the create carries `listed`, the attributes the listing covered: the connector creates without
  searching on them. Another writer may create the object between the listing and the create: a
  uniqueness conflict (SCIM 409) makes the connector search and adopt it, never a duplicate;
* anything else (duplicates, a listing that failed, timed out or is incomplete): no hint, the connector
  searches as it always did. A listing never deprovisions anything.

Why a threshold (`listing_min_creates`, 50 by default): a listing reads the whole target, a page per
1,000 objects on SCIM, while a few creates cost a few searches. A cycle with a handful of new hires
searches; a first cycle, or one after a big import, lists. The engine never holds the target's
credentials (the workers do, see DESIGN.md), hence the request and its pages travel on the queues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from engine.core.links import Absent, Found, TargetIndex
from engine.pipeline.wire import WireVersions
from queues.broker import Broker, Message
from queues.contracts import VERSION, ListPage, ListRequest, Operation
from queues.topology import ops_queue
from queues.wire import encode_list_request

log = logging.getLogger("roster.engine.listing")


class ListingFailed(Exception):
    """A listing that did not come back complete: why, in words."""


@dataclass(frozen=True, slots=True)
class Listing:
    """Every object of a kind in a target: rows of its id, then one value per field."""

    fields: tuple[str, ...]
    rows: list[list[Any]]

    def __len__(self) -> int:
        return len(self.rows)


FIRST_PAGE_S: Final = 10.0
"""How long a cycle waits for a listing's first page. A worker answers its first page within a request
or two to the target, so a longer silence means that no worker is up, or that a backlog of operations
lies ahead of the request: the cycle goes on without the listing rather than wait for it."""


@dataclass(slots=True)
class _Gathering:
    request: ListRequest
    answers: dict[str, dict[int, ListPage]] = field(default_factory=dict)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    index: asyncio.Future[Listing] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Listings:
    """The listings the engine awaits, by request id. `receive` takes each page the result consumer
    reads; a page of a request nobody awaits (timed out, or from before a restart) is dropped."""

    def __init__(self, broker: Broker, *, versions: WireVersions | None = None) -> None:
        self._broker = broker
        self._versions = versions
        self._waiting: dict[str, _Gathering] = {}

    async def fetch(
        self,
        *,
        job: str,
        target: str,
        object_type: str,
        attributes: list[str],
        timeout_s: float,
        first_page_s: float = FIRST_PAGE_S,
    ) -> Listing:
        """List the target's objects of `object_type`; raises `ListingFailed` with the reason when no
        page came within `first_page_s`, or no complete listing within `timeout_s`."""
        now = time.time()
        request = ListRequest(
            request_id=f"list-{secrets.token_hex(6)}",
            job=job,
            target=target,
            object_type=object_type,
            attributes=attributes,
            emitted_at=now,
            answer_by=now + first_page_s,
        )
        gathering = self._waiting[request.request_id] = _Gathering(request)
        started = time.monotonic()
        try:
            queue = ops_queue(target)
            await self._broker.declare(queue)
            version = VERSION if self._versions is None else await self._versions.for_target(target)
            await self._broker.publish(queue, [Message(encode_list_request(request, version))])
            try:
                await asyncio.wait_for(gathering.answered.wait(), min(first_page_s, timeout_s))
            except TimeoutError:
                raise ListingFailed(
                    f"no worker of target {target!r} began the listing within {first_page_s:g} s"
                ) from None
            left_s = max(timeout_s - (time.monotonic() - started), 0.0)
            try:
                return await asyncio.wait_for(asyncio.shield(gathering.index), left_s)
            except TimeoutError:
                raise ListingFailed(
                    f"no complete listing of target {target!r} within {timeout_s:g} s"
                ) from None
        finally:
            del self._waiting[request.request_id]

    def receive(self, page: ListPage) -> None:
        gathering = self._waiting.get(page.request_id)
        if gathering is None or gathering.index.done():
            log.info("event=listing_page_unawaited request=%s page=%d", page.request_id, page.number)
            return
        gathering.answered.set()
        if page.error is not None:
            self._fail(gathering, f"the worker could not list target {page.target!r}: {page.error}")
            return
        wanted = gathering.request.attributes
        if any(name not in page.fields for name in wanted):
            self._fail(
                gathering, f"the listing lacks attributes asked for: {wanted} not all in {page.fields}"
            )
            return
        pages = gathering.answers.setdefault(page.answer_id, {})
        pages[page.number] = page
        last = next((p.number for p in pages.values() if p.last), None)
        if last is None or any(n not in pages for n in range(last + 1)):
            return
        ordered = [pages[n] for n in range(last + 1)]
        if any(p.fields != page.fields for p in ordered):
            self._fail(gathering, "the pages of one listing name different attributes")
            return
        gathering.index.set_result(Listing(tuple(page.fields), [row for p in ordered for row in p.objects]))

    def fail(self, request_id: str, reason: str) -> None:
        """A page of `request_id` could not be read (the result consumer dead-lettered it)."""
        gathering = self._waiting.get(request_id)
        if gathering is not None and not gathering.index.done():
            self._fail(gathering, f"a page of the listing could not be read: {reason}")

    @staticmethod
    def _fail(gathering: _Gathering, reason: str) -> None:
        gathering.answered.set()  # a word from the worker, if a bad one: no need to wait for more
        if not gathering.index.done():
            gathering.index.set_exception(ListingFailed(reason))


class CycleLinks:
    """One cycle's creates, held back until there are enough to list the target, then sent with what
    the listing says of each (see the module docstring). Other operations pass straight through."""

    def __init__(
        self,
        listings: Listings,
        *,
        job: str,
        target: str,
        object_type: str,
        matching: list[str],
        min_creates: int,
        timeout_s: float,
        send: Callable[[Operation], Awaitable[None]],
    ) -> None:
        self._listings = listings
        self._job = job
        self._target = target
        self._object_type = object_type
        self._matching = matching
        self._min_creates = min_creates
        self._timeout_s = timeout_s
        self._send = send
        self._held: list[Operation] = []
        self._index: TargetIndex | None = None
        self._decided = min_creates <= 0  # 0: never list
        self.found = 0
        self.absent = 0

    async def add(self, op: Operation) -> None:
        if op.action != "create" or op.target_id is not None or (self._decided and self._index is None):
            await self._send(op)
            return
        if self._index is not None:
            await self._send(self._hinted(op, self._index))
            return
        self._held.append(op)
        if len(self._held) >= self._min_creates:
            self._decided = True
            self._index = await self._list()
            held, self._held = self._held, []
            for one in held:
                await self._send(one if self._index is None else self._hinted(one, self._index))

    async def finish(self) -> None:
        """Send what is held: too few creates to be worth a listing."""
        held, self._held = self._held, []
        for op in held:
            await self._send(op)

    async def _list(self) -> TargetIndex | None:
        started = time.perf_counter()
        try:
            listing = await self._listings.fetch(
                job=self._job,
                target=self._target,
                object_type=self._object_type,
                attributes=self._matching,
                timeout_s=self._timeout_s,
            )
        except ListingFailed as exc:
            log.warning("event=listing_failed job=%s target=%s reason=%r", self._job, self._target, str(exc))
            return None
        log.info(
            "event=listed job=%s target=%s objects=%d elapsed_s=%.2f",
            self._job,
            self._target,
            len(listing),
            time.perf_counter() - started,
        )
        return TargetIndex(listing.fields, listing.rows)

    def _hinted(self, op: Operation, index: TargetIndex) -> Operation:
        link = index.link(op.matching, op.attributes)
        if isinstance(link, Found):
            self.found += 1
            return dataclasses.replace(op, target_id=link.target_id)
        if isinstance(link, Absent):
            self.absent += 1
            return dataclasses.replace(op, listed=link.names)
        return op
