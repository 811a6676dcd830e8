"""The worker loop: drains each target's queue through its connector and reports the results.

Each delivery is answered in the wire version it came in (results, listing pages, and retries put
back on the queue), so a message of either version a build speaks is answered in one that its sender
reads; the results and pages say in their headers who this worker is and which versions it speaks,
which is how the engine learns when it may write the newer one (see `engine.pipeline.wire`).

A delivery may instead be a list request (see `engine.pipeline.listing`): the connector's listing of
the target goes back as pages on the results queue, then the request is acked.

Per delivery (a batch of operations): decode, apply through the connector under the target's
concurrency limit, send transient failures to the next retry tier (or the dead letters after the last
one), publish the results, and only then ack. A crash before the ack redelivers the batch, which the
idempotent connectors make harmless. A body that cannot be decoded is dead-lettered with the reason;
a batch the worker itself fails on (a bug, a connector that answers nonsense) is reported failed,
operation by operation, so that the engine logs each one. Every delivery is settled on every path but
one: a broken link to the broker, on which nothing can be settled and which hands the batch out again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from common.errors import BrokerError, ConnectorError, DecodeError, PermanentError, TransientError
from queues.broker import ATTEMPT_HEADER, REASON_HEADER, Broker, Delivery, Message
from queues.contracts import ListPage, ListRequest, Operation, Result, result_of
from queues.topology import RESULTS_QUEUE, dead_letter_queue, ops_queue
from queues.versions import SPOKEN, speaker_headers
from queues.wire import decode_work, encode_operations, encode_page, encode_results
from workers.connectors.base import Applied, Connector, Lister, Outcome
from workers.metrics import WorkerMetrics
from workers.retry import RetryPolicy

log = logging.getLogger("roster.worker")


@dataclass(slots=True, kw_only=True)
class TargetRuntime:
    """One target as a worker runs it: its connector, its limits and its retry tiers."""

    name: str
    connector: Connector
    max_inflight: int = 4
    prefetch: int | None = None  # batches unacked at once; twice max_inflight unless set
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.max_inflight < 1:
            raise ValueError(f"target {self.name}: max_inflight must be at least 1")


class Worker:
    """Consumes the queues of the given targets until `stop()`."""

    def __init__(
        self,
        broker: Broker,
        targets: Sequence[TargetRuntime],
        *,
        rng: random.Random | None = None,
        metrics: WorkerMetrics | None = None,
        spoken: Sequence[int] = SPOKEN,
        peer_id: str | None = None,
    ) -> None:
        """`spoken`: the wire versions this worker decodes (fewer than `SPOKEN` only to play the
        previous build, in tests and emergencies); `peer_id` names it to the engine."""
        self._broker = broker
        self._spoken = tuple(spoken)
        self.spoken = self._spoken
        """The wire versions this worker decodes, as it announces them."""
        self.peer_id = peer_id or f"worker-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._speaker = speaker_headers(self.peer_id, self._spoken)
        self.metrics = metrics or WorkerMetrics(CollectorRegistry())
        self._targets = {t.name: t for t in targets}
        self._rng = rng or random.Random()
        self._loops: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._consumers: list = []
        self._opened: list[Connector] = []
        self._stopped = False
        self.started = False
        self.batches_handled = 0
        self._ops_in_flight = 0
        self._listings_in_flight = 0
        self.ops_in_flight_by_target: dict[str, int] = dict.fromkeys(self._targets, 0)
        self.last_errors: dict[str, tuple[float, str]] = {}
        """Per target, when its last operation failed and why (unredacted: presence redacts it)."""

    async def start(self) -> None:
        await self._broker.declare(RESULTS_QUEUE)
        for target in self._targets.values():
            await target.connector.open()
            self._opened.append(target.connector)
            await self._broker.declare(ops_queue(target.name))
        for target in self._targets.values():
            self._loops.append(
                asyncio.create_task(self._consume(target), name=f"roster-worker-{target.name}")
            )
        self.started = True

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _consume(self, target: TargetRuntime) -> None:
        slots = asyncio.Semaphore(target.max_inflight)
        prefetch = target.prefetch or 2 * target.max_inflight
        consumer = self._broker.consume(ops_queue(target.name), prefetch=prefetch)
        self._consumers.append(consumer)
        async for delivery in consumer:
            await slots.acquire()
            task = asyncio.create_task(self._handle(target, delivery))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
            task.add_done_callback(lambda _task: slots.release())

    @property
    def targets(self) -> tuple[TargetRuntime, ...]:
        return tuple(self._targets.values())

    def in_flight(self) -> tuple[int, int, int]:
        """The batches being applied now, their operations, and the listings being answered (what a
        stop waits for)."""
        return len(self._handlers) - self._listings_in_flight, self._ops_in_flight, self._listings_in_flight

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking batches, let those in flight finish within `grace_s`, then close.

        What is still unsettled after the grace period goes back to its queue for another worker.
        """
        if self._stopped:
            return
        self._stopped = True
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for consumer in self._consumers:
            await consumer.aclose()
        for connector in reversed(self._opened):
            await connector.aclose()

    async def _handle(self, target: TargetRuntime, delivery: Delivery) -> None:
        """Settle the delivery on every path: acked with its results, dead-lettered with the reason,
        or, when the link to the broker failed, left to come back once its channel closes."""
        try:
            version, work = decode_work(delivery.body, self._spoken)
        except DecodeError as exc:
            log.error("event=dead_lettered target=%s reason=%r", target.name, str(exc))
            await self._dead_letter(target, delivery, str(exc), "undecodable")
            return
        if isinstance(work, ListRequest):
            self._listings_in_flight += 1
            try:
                await self._answer_listing(target, delivery, work, version)
            finally:
                self._listings_in_flight -= 1
            return
        ops = work
        self._ops_in_flight += len(ops)
        self.ops_in_flight_by_target[target.name] += len(ops)
        try:
            await self._handle_batch(target, delivery, ops, version)
        except asyncio.CancelledError:
            raise
        except BrokerError as exc:
            # Nothing can be settled on a broken link; the broker hands the batch out again.
            log.warning("event=batch_unsettled target=%s ops=%d error=%r", target.name, len(ops), str(exc))
        except Exception as exc:
            log.exception("event=batch_failed target=%s ops=%d", target.name, len(ops))
            await self._report_crash(target, delivery, ops, exc, version)
        finally:
            self._ops_in_flight -= len(ops)
            self.ops_in_flight_by_target[target.name] -= len(ops)

    async def _answer_listing(
        self, target: TargetRuntime, delivery: Delivery, request: ListRequest, version: int
    ) -> None:
        """Answer a list request with pages on the results queue, then ack it. A listing that fails
        ends with a page saying why; a broken link to the broker leaves the request to come back, and
        its next answer starts again from page 0 under another answer id."""
        if request.answer_by and time.time() > request.answer_by:
            log.info("event=listing_expired target=%s request=%s", target.name, request.request_id)
            await self._settle_expired(target, delivery)
            return
        answer = secrets.token_hex(6)
        number = 0
        fields: list[str] = []
        error: str | None = None
        started = time.perf_counter()

        def page(rows: list[list[object]], *, last: bool = False) -> Message:
            body = ListPage(
                request_id=request.request_id,
                answer_id=answer,
                target=target.name,
                number=number,
                last=last,
                fields=fields,
                objects=rows,
                error=error,
            )
            return Message(encode_page(body, version), self._speaker)

        connector = target.connector
        try:
            if not isinstance(connector, Lister):
                raise PermanentError(f"the connector of target {target.name!r} cannot list its objects")
            fields = connector.listing_fields(request.object_type, request.attributes)
            async for rows in connector.list_objects(request.object_type, fields):
                await self._broker.publish(RESULTS_QUEUE, [page(rows)])
                number += 1
        except asyncio.CancelledError:
            raise
        except BrokerError as exc:
            log.warning("event=listing_unsettled target=%s error=%r", target.name, str(exc))
            return
        except ConnectorError as exc:
            error = exc.message
        except Exception as exc:
            log.exception("event=listing_failed target=%s request=%s", target.name, request.request_id)
            error = f"the worker failed listing: {type(exc).__name__}: {exc}"
        try:
            await self._broker.publish(RESULTS_QUEUE, [page([], last=True)])
            await delivery.ack()
        except BrokerError as exc:
            log.warning("event=listing_unsettled target=%s error=%r", target.name, str(exc))
            return
        log.info(
            "event=listed target=%s request=%s pages=%d elapsed_s=%.2f error=%r",
            target.name,
            request.request_id,
            number,
            time.perf_counter() - started,
            error,
        )

    async def _settle_expired(self, target: TargetRuntime, delivery: Delivery) -> None:
        try:
            await delivery.ack()
        except BrokerError as exc:
            log.warning("event=listing_unsettled target=%s error=%r", target.name, str(exc))

    async def _report_crash(
        self, target: TargetRuntime, delivery: Delivery, ops: list[Operation], exc: Exception, version: int
    ) -> None:
        """A batch the worker itself failed on: each operation is reported failed with the reason, so
        the engine logs it and plans it again; if even that cannot be sent, the batch is dead-lettered."""
        reason = f"the worker failed on this batch: {type(exc).__name__}: {exc}"
        now = time.time()
        self.last_errors[target.name] = (now, reason)
        results = [
            _result(op, "failed", now, 0.0, error_class="WorkerError", error_message=reason) for op in ops
        ]
        try:
            await self._broker.publish(
                RESULTS_QUEUE, [Message(encode_results(results, version), self._speaker)]
            )
            await delivery.ack()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event=crash_report_failed target=%s ops=%d", target.name, len(ops))
            await self._dead_letter(target, delivery, reason, "worker_failed")
            return
        self.metrics.record_batch(target.name, results, 0.0)

    async def _dead_letter(self, target: TargetRuntime, delivery: Delivery, reason: str, kind: str) -> None:
        try:
            await delivery.dead_letter(reason)
        except BrokerError as exc:
            log.warning("event=dead_letter_lost target=%s error=%r", target.name, str(exc))
            return
        self.metrics.dead_letters.labels(target.name, kind).inc()

    async def _handle_batch(
        self, target: TargetRuntime, delivery: Delivery, ops: list[Operation], version: int
    ) -> None:
        in_flight = self.metrics.in_flight.labels(target.name)
        in_flight.inc(len(ops))
        started = time.perf_counter()
        try:
            outcomes = await self._apply(target, ops)
        finally:
            in_flight.dec(len(ops))
        connector_s = time.perf_counter() - started
        connector_ms = connector_s * 1000.0
        # Everything that can fail short of the broker happens before the first publish: a batch the
        # worker fails on has then sent nothing, and reporting all of it failed duplicates nothing.
        results, retries, exhausted = self._sort(target, ops, outcomes, connector_ms)
        queue = ops_queue(target.name)
        sends: list[tuple[str, Message, int]] = []
        if retries:
            # The operations of one delivery share their attempt number, so one tier serves them all.
            attempt = retries[0].attempt - 1
            delay_ms = target.retry.delay_ms(attempt, self._rng) or 0
            body = encode_operations(target.name, retries, version)
            sends.append((queue, Message(body, {ATTEMPT_HEADER: attempt + 1}), delay_ms))
        if exhausted:
            reason = f"escrow exhausted: still failing after {exhausted[0].attempt} attempts"
            body = encode_operations(target.name, exhausted, version)
            sends.append((dead_letter_queue(queue), Message(body, {REASON_HEADER: reason}), 0))
        sends.append((RESULTS_QUEUE, Message(encode_results(results, version), self._speaker), 0))
        for destination, message, delay_ms in sends:
            await self._broker.publish(destination, [message], delay_ms=delay_ms)
        if exhausted:
            self.metrics.dead_letters.labels(target.name, "retries_exhausted").inc()
        await delivery.ack()
        self.batches_handled += 1
        self.metrics.record_batch(target.name, results, connector_s)

    async def _apply(self, target: TargetRuntime, ops: list[Operation]) -> list[Outcome]:
        try:
            outcomes = await target.connector.apply(ops)
        except ConnectorError as exc:
            return [exc] * len(ops)
        except Exception as exc:
            log.exception("event=connector_crashed target=%s ops=%d", target.name, len(ops))
            return [TransientError(f"unexpected {type(exc).__name__}: {exc}")] * len(ops)
        if len(outcomes) != len(ops):
            error = TransientError(f"connector returned {len(outcomes)} outcomes for {len(ops)} operations")
            return [error] * len(ops)
        return outcomes

    def _sort(
        self, target: TargetRuntime, ops: list[Operation], outcomes: list[Outcome], connector_ms: float
    ) -> tuple[list[Result], list[Operation], list[Operation]]:
        """Results for every operation, and the operations to retry or to dead-letter."""
        now = time.time()
        results: list[Result] = []
        retries: list[Operation] = []
        exhausted: list[Operation] = []
        for op, outcome in zip(ops, outcomes, strict=True):
            if isinstance(outcome, Applied):
                results.append(_result(op, "succeeded", now, connector_ms, target_id=outcome.target_id))
                continue
            error: ConnectorError = outcome
            status = "failed"
            message = error.message
            self.last_errors[target.name] = (now, f"{type(error).__name__}: {message}")
            if not isinstance(error, PermanentError):
                if op.attempt <= target.retry.tiers:
                    retries.append(op.next_attempt())
                    status = "retrying"
                else:
                    exhausted.append(op)
                    message = f"retries exhausted after {op.attempt} attempts: {message}"
            results.append(
                _result(
                    op,
                    status,
                    now,
                    connector_ms,
                    error_class=type(error).__name__,
                    error_code=error.code,
                    error_message=message,
                )
            )
        return results, retries, exhausted


def _result(
    op: Operation,
    status: str,
    now: float,
    connector_ms: float,
    *,
    target_id: str | None = None,
    error_class: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> Result:
    return result_of(
        op,
        status,  # type: ignore[arg-type]
        completed_at=now,
        connector_ms=connector_ms,
        target_id=target_id,
        error_class=error_class,
        error_code=error_code,
        error_message=error_message,
    )
