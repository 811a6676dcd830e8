"""The engine's result consumer: results from the workers become state, log records and progress.

The result messages that arrived meanwhile are written in one transaction and acked only after the
commit, so a crash between the two replays them; the state writes are upserts and the tracker ignores
a result it has already settled, so the replay changes nothing.

A cycle that stops hearing from its operations gives them up at its deadline (`wait_or_expire`): each
gets one final log record, `lost-in-transit`, and the next cycle plans its object again. The give-up
goes through the same queue as the results, so a result and its operation's give-up never cross: the
one that comes first decides. A final result that comes after the give-up (late, or after a restart
of the engine) replaces the `lost-in-transit` record, so an operation still has one final record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from common.errors import BrokerError, DecodeError, StateError
from engine.core.collisions import linking, refuse_shared
from engine.core.rehire import RehireSettings
from engine.metrics import EngineMetrics
from engine.pipeline.listing import Listings
from engine.pipeline.tracker import CycleProgress, Tracker
from engine.pipeline.wire import WireVersions
from engine.store.state import StateStore
from queues.broker import Broker, Consumer, Delivery
from queues.contracts import FINAL_STATUSES, ListPage, PageError, Result
from queues.topology import RESULTS_QUEUE
from queues.wire import decode_reports

log = logging.getLogger("roster.engine.results")

_Received = tuple[Delivery, list[Result] | ListPage | DecodeError]
"""A delivery and its results (or a page of a listing), or why it could not be decoded."""


@dataclass(slots=True)
class _Expiry:
    """A cycle's request to give up on its unanswered operations, answered with how many."""

    cycle_id: str
    reason: str
    answer: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ResultConsumer:
    """Consumes `roster.results` until closed.

    `prefetch` bounds the result messages held unacked, and so how many one write can take: enough
    for what the workers send while a write commits (messages of a partial batch are small).
    """

    def __init__(
        self,
        broker: Broker,
        state: StateStore,
        tracker: Tracker,
        *,
        prefetch: int = 256,
        metrics: EngineMetrics | None = None,
        observers: Sequence[Callable[[list[Result]], None]] = (),
        listings: Listings | None = None,
        versions: WireVersions | None = None,
    ) -> None:
        self._broker = broker
        self._versions = versions
        self._metrics = metrics
        self._state = state
        self._tracker = tracker
        self._prefetch = prefetch
        self.observers: list[Callable[[list[Result]], None]] = list(observers)
        """Told of each batch of results once written (the job control; the notifier's joiners)."""
        self.listings = listings
        """Where the pages of listings go (see `engine.pipeline.listing`); without, they are dropped."""
        self._links_from_empty: dict[str, dict[str, str]] = {}
        self._first_loads: dict[str, int] = {}
        """Cycles running per job that started with none of its objects in the state."""
        self.group_jobs: frozenset[str] = frozenset()
        """The jobs whose creates are checked (`_refuse_shared`): group jobs, whose names are not
        unique; a user job matches on identifiers, and checking each of its creates would cost a
        query per result batch (and, in a first cycle, memory per object)."""
        self.rehire: dict[str, RehireSettings] = {}
        """The jobs with `rehire:`, whose keys the state keeps with their results."""
        self._task: asyncio.Task[None] | None = None
        self._received: asyncio.Queue[_Received | _Expiry | None] = asyncio.Queue()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        await self._broker.declare(RESULTS_QUEUE)
        self._received = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="roster-results")

    async def _run(self) -> None:
        consumer = self._broker.consume(RESULTS_QUEUE, prefetch=self._prefetch)
        received = self._received
        receiving = asyncio.create_task(
            _receive(consumer, received, self._versions), name="roster-results-receive"
        )
        try:
            while True:
                batch = [await received.get()]
                while not received.empty():
                    batch.append(received.get_nowait())
                await self._settle([item for item in batch if item is not None])
                if batch[-1] is None:
                    break
            await receiving  # raises what ended the consumer, if anything did
        finally:
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
            await consumer.aclose()

    async def _settle(self, batch: list[_Received | _Expiry]) -> None:
        """Write the results of the deliveries in one transaction, then ack them.

        A transaction costs several round trips to the state store (on SQLite, to its driver thread),
        each waiting for a turn of the event loop: one per message fell behind the workers while a
        cycle was planning. Messages queue up while a write commits and the next write takes them
        all, so the round trips are paid once for as many as came.
        """
        results: list[Result] = []
        written: list[Delivery] = []
        expiries: list[_Expiry] = []
        for item in batch:
            if isinstance(item, _Expiry):
                expiries.append(item)  # after the results that came with it: they had their chance
                continue
            delivery, decoded = item
            if isinstance(decoded, DecodeError):
                log.error("event=result_dead_lettered reason=%r", str(decoded))
                if isinstance(decoded, PageError) and decoded.request_id and self.listings is not None:
                    self.listings.fail(decoded.request_id, str(decoded))
                try:
                    await delivery.dead_letter(str(decoded))
                except BrokerError as lost:
                    log.warning("event=result_dead_letter_lost error=%r", str(lost))
                continue
            if isinstance(decoded, ListPage):
                # A page changes no state: handed over and acked with the results that came with it.
                if self.listings is not None:
                    self.listings.receive(decoded)
                written.append(delivery)
                continue
            results.extend(decoded)
            written.append(delivery)
        if results:
            results = await self._refuse_shared(results)
            await self._write(results)
            self._tracker.settle(results)
            for observe in self.observers:
                observe(results)
            if self._metrics is not None:
                self._metrics.record_results(results)
        for delivery in written:
            try:
                await delivery.ack()
            except BrokerError as exc:
                # The connection dropped after the write: the message comes back, and writing it
                # again changes nothing (upserts; the tracker ignores settled operations).
                log.warning("event=result_ack_lost error=%r", str(exc))
        for expiry in expiries:
            await self._expire(expiry)

    async def _expire(self, expiry: _Expiry) -> None:
        lost = self._tracker.expire(expiry.cycle_id)
        if lost:
            await self._retrying(lambda: self._state.log_lost(lost, expiry.reason), len(lost))
            log.warning(
                "event=operations_lost cycle=%s ops=%d reason=%r", expiry.cycle_id, len(lost), expiry.reason
            )
        if not expiry.answer.done():
            expiry.answer.set_result(len(lost))

    def linking_from_empty(self, job: str) -> None:
        """A cycle of `job` starts with no object of it in the state: until `linking_done`, the entries
        its creates are linked to are known here, and no result write asks the state who holds them
        (`_refuse_shared`; an initial load's writes would each pay a query that finds nothing)."""
        self._first_loads[job] = self._first_loads.get(job, 0) + 1
        if job in self.group_jobs:
            self._links_from_empty[job] = {}

    def loading_from_empty(self, job: str) -> bool:
        """Whether a cycle of `job` that started with no object of it in the state is running (its
        first load)."""
        return self._first_loads.get(job, 0) > 0

    def linking_done(self, job: str, *, from_empty: bool = False) -> None:
        self._links_from_empty.pop(job, None)
        if from_empty and self._first_loads.get(job, 0) > 0:
            self._first_loads[job] -= 1

    async def _refuse_shared(self, results: list[Result]) -> list[Result]:
        """`results` with a create linked to an entry another object of its job holds failed instead
        (`engine.core.collisions.refuse_shared`): one query per job, only for results with creates."""
        if not self.group_jobs:  # most engines: no result is looked at twice
            return results
        wanted = {job: ids for job, ids in linking(results).items() if job in self.group_jobs}
        if not wanted:
            return results
        known = self._links_from_empty
        holders: dict[str, dict[str, str]] = {job: known[job] for job in wanted if job in known}

        async def read(job: str, ids: set[str]) -> None:
            holders[job] = await self._state.holders(job, ids)

        for job, ids in wanted.items():
            if job not in holders:
                await self._retrying(partial(read, job, ids), len(ids))
        checked = refuse_shared(results, holders)
        for r in checked:
            if r.job in known and r.action == "create" and r.status == "succeeded" and r.target_id:
                known[r.job][r.target_id] = r.source_id
        return checked

    async def _write(self, results: list[Result]) -> None:
        """Write until it works: a state store that is down holds the results back, never drops them.

        A final result of an operation the tracker no longer awaits may be late (given up at its
        cycle's deadline): it replaces that operation's `lost-in-transit` record."""
        tracker = self._tracker
        sent = tracker.sent(results)
        late = [r.op_id for r in results if r.status in FINAL_STATUSES and not tracker.pending(r.op_id)]
        if late:
            log.info("event=results_unawaited results=%d", len(late))
        await self._retrying(
            lambda: self._state.apply_results(results, sent, late=late, rehire=self.rehire), len(results)
        )

    async def _retrying(self, write: Callable[[], Awaitable[None]], count: int) -> None:
        delay_s = 0.5
        while True:
            try:
                await write()
                return
            except (OperationalError, InterfaceError, OSError):
                log.exception("event=state_write_failed records=%d retry_in_s=%.1f", count, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)

    async def wait_or_fail(self, event: asyncio.Event) -> None:
        """Wait for `event`; raise at once if the consumer died, since no result would come then."""
        if self._task is None:
            raise StateError("the result consumer is not running")
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not event.is_set():
            error = self._task.exception() if not self._task.cancelled() else None
            raise StateError(f"the result consumer stopped: {error!r}") from error

    async def wait_or_expire(self, progress: CycleProgress) -> int:
        """Wait for the cycle's results like `wait_or_fail`; once none came for its deadline, give up
        on the unanswered operations (see the module docstring). Returns how many were given up."""
        while progress.deadline_at is not None:
            remaining_s = progress.deadline_at - time.time()
            if remaining_s <= 0:
                break
            try:
                await asyncio.wait_for(self.wait_or_fail(progress.done), remaining_s)
                return 0
            except TimeoutError:
                continue  # a result may have moved the deadline meanwhile
        if progress.deadline_at is None:
            await self.wait_or_fail(progress.done)
            return 0
        reason = (
            f"no result within the cycle's deadline ({progress.deadline_s:g} s without one): the "
            "operation's batch may have been dead-lettered or lost; the next cycle plans it again"
        )
        return await self.expire(progress.cycle_id, reason)

    async def expire(self, cycle_id: str, reason: str) -> int:
        """Give up on the cycle's unanswered operations now, after the results already received."""
        if self._task is None or self._task.done():
            raise StateError("the result consumer is not running")
        expiry = _Expiry(cycle_id, reason)
        self._received.put_nowait(expiry)
        waiting: set[asyncio.Future[Any]] = {expiry.answer, self._task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not expiry.answer.done():
            raise StateError("the result consumer stopped before it recorded the lost operations")
        return expiry.answer.result()

    async def aclose(self) -> None:
        """Stop consuming; a message not yet acked is redelivered to the next consumer."""
        if self._task is None:
            return
        task, self._task = self._task, None
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


async def _receive(
    consumer: Consumer,
    received: asyncio.Queue[_Received | _Expiry | None],
    versions: WireVersions | None,
) -> None:
    """Decode deliveries as they come, while the write before them commits; None ends them. Each
    tells `versions` which wire versions its worker speaks."""
    try:
        async for delivery in consumer:
            decoded: list[Result] | ListPage | DecodeError
            try:
                version, decoded = decode_reports(delivery.body)
            except DecodeError as exc:
                decoded = exc
            else:
                if versions is not None:
                    versions.heard(delivery.headers, version, decoded)
            received.put_nowait((delivery, decoded))
    finally:
        received.put_nowait(None)
