"""The engine's result consumer: results from the workers become state, log records and progress.

The result messages that arrived meanwhile are written in one transaction and acked only after the
commit, so a crash between the two replays them; the state writes are upserts and the tracker ignores
a result it has already settled, so the replay changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from sqlalchemy.exc import InterfaceError, OperationalError

from common.errors import BrokerError, DecodeError, StateError
from engine.metrics import EngineMetrics
from engine.pipeline.tracker import Tracker
from engine.store.state import StateStore
from queues.broker import Broker, Consumer, Delivery
from queues.contracts import Result, decode_results
from queues.topology import RESULTS_QUEUE

log = logging.getLogger("roster.engine.results")

_Received = tuple[Delivery, list[Result] | DecodeError]
"""A delivery and its results, or why they could not be decoded."""


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
    ) -> None:
        self._broker = broker
        self._metrics = metrics
        self._state = state
        self._tracker = tracker
        self._prefetch = prefetch
        self._observers = tuple(observers)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        await self._broker.declare(RESULTS_QUEUE)
        self._task = asyncio.create_task(self._run(), name="roster-results")

    async def _run(self) -> None:
        consumer = self._broker.consume(RESULTS_QUEUE, prefetch=self._prefetch)
        received: asyncio.Queue[_Received | None] = asyncio.Queue()
        receiving = asyncio.create_task(_receive(consumer, received), name="roster-results-receive")
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

    async def _settle(self, batch: list[_Received]) -> None:
        """Write the results of the deliveries in one transaction, then ack them.

        A transaction costs several round trips to the state store (on SQLite, to its driver thread),
        each waiting for a turn of the event loop: one per message fell behind the workers while a
        cycle was planning. Messages queue up while a write commits and the next write takes them
        all, so the round trips are paid once for as many as came.
        """
        results: list[Result] = []
        written: list[Delivery] = []
        for delivery, decoded in batch:
            if isinstance(decoded, DecodeError):
                log.error("event=result_dead_lettered reason=%r", str(decoded))
                try:
                    await delivery.dead_letter(str(decoded))
                except BrokerError as lost:
                    log.warning("event=result_dead_letter_lost error=%r", str(lost))
                continue
            results.extend(decoded)
            written.append(delivery)
        if results:
            await self._write(results)
            self._tracker.settle(results)
            for observe in self._observers:
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

    async def _write(self, results: list[Result]) -> None:
        """Write until it works: a state store that is down holds the results back, never drops them."""
        delay_s = 0.5
        sent = self._tracker.sent(results)
        while True:
            try:
                await self._state.apply_results(results, sent)
                return
            except (OperationalError, InterfaceError, OSError):
                log.exception("event=state_write_failed results=%d retry_in_s=%.1f", len(results), delay_s)
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


async def _receive(consumer: Consumer, received: asyncio.Queue[_Received | None]) -> None:
    """Decode deliveries as they come, while the write before them commits; None ends them."""
    try:
        async for delivery in consumer:
            try:
                decoded: list[Result] | DecodeError = decode_results(delivery.body)
            except DecodeError as exc:
                decoded = exc
            received.put_nowait((delivery, decoded))
    finally:
        received.put_nowait(None)
