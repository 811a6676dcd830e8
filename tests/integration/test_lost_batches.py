"""Batches that never come back: a batch the worker fails on, a batch dead-lettered unread, a result
that arrives after its cycle gave up on it. Embedded, with the in-memory broker and a real SQL target.

Every operation must end in exactly one final log record, the cycle must end, the next cycle must plan
what was lost again, and the target's rows must end exactly right, object by object.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from engine.api.admin import Admin
from engine.pipeline.cycles import CycleRunner
from engine.store.state import StateStore, state_url
from queues.broker import REASON_HEADER, Message
from queues.memory import MemoryBroker
from queues.topology import dead_letter_queue, ops_queue
from queues.versions import SPOKEN
from tests.integration.pipeline import (
    Interposer,
    configs,
    expected_row,
    job_config,
    person,
    pipeline,
    sql_target,
    target_rows,
    write_csv,
)
from workers.worker import Worker

N = 120
FINAL = ("succeeded", "failed", "skipped", "lost-in-transit")


class Nonsense(Interposer):
    """Its first call answers something that is not an outcome, as a broken connector plugin might;
    later calls go through."""

    async def interpose(self, ops: Any) -> Any:
        if self.calls == 1:
            return [None] * len(ops)
        return await super().interpose(ops)


class Gate(Interposer):
    """Its first call waits until the test opens the gate."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.held = asyncio.Event()
        self.open_gate = asyncio.Event()

    async def interpose(self, ops: Any) -> Any:
        if self.calls == 1:
            self.held.set()
            await self.open_gate.wait()
        return await super().interpose(ops)


class Garbling:
    """The engine's side of a real broker that garbles the first batch of operations it publishes
    (an envelope version no worker speaks, as in a botched rolling upgrade)."""

    def __init__(self, inner: MemoryBroker) -> None:
        self._inner = inner
        self.garbled: list[bytes] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def publish(self, queue: str, messages: Sequence[Message], *, delay_ms: int = 0) -> None:
        envelope = orjson.loads(messages[0].body) if queue.startswith("roster.ops.") else {}
        if envelope.get("kind") == "ops" and not self.garbled:  # a batch, not a list request
            self.garbled.append(messages[0].body)
            envelope["v"] = 99
            messages = [Message(orjson.dumps(envelope), messages[0].headers), *messages[1:]]
        await self._inner.publish(queue, messages, delay_ms=delay_ms)


def _raw(tmp_path: Path, rows: list[dict], **deadline: float) -> dict[str, Any]:
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path, batch_size=20), **sql_target(f"sqlite:///{tmp_path / 'target.db'}")}
    if deadline:
        raw["engine"]["deadline"] = deadline
    return raw


async def _assert_target_exactly(tmp_path: Path, rows: list[dict]) -> None:
    target = await target_rows(f"sqlite:///{tmp_path / 'target.db'}")  # raises on a key twice
    assert set(target) == {r["employee_id"] for r in rows}
    for source in rows:
        row = target[source["employee_id"]]
        assert {k: row[k] for k in expected_row(source)} == expected_row(source)
        assert row["active"] == 1


async def _final_records(state: StateStore, cycle_id: str) -> dict[str, list[dict[str, Any]]]:
    """The final log records of a cycle, by op id."""
    by_op: dict[str, list[dict[str, Any]]] = {}
    for record in await state.log_records("people", cycle_id=cycle_id):
        if record["status"] in FINAL:
            by_op.setdefault(record["op_id"], []).append(record)
    return by_op


@asynccontextmanager
async def _garbled_pipeline(
    tmp_path: Path, raw: dict[str, Any]
) -> AsyncIterator[tuple[CycleRunner, Garbling]]:
    """The embedded pipeline, but the engine publishes through `Garbling`; the worker reads the broker."""
    config, targets = configs(tmp_path, raw)
    async with MemoryBroker() as broker, StateStore(state_url(str(tmp_path / "state.db"))) as state:
        garbling = Garbling(broker)
        async with (
            Worker(broker, [t.runtime() for t in targets]),
            CycleRunner(config, garbling, state) as runner,  # type: ignore[arg-type]
        ):
            yield runner, garbling


async def _dead_reasons(broker: Any, target: str) -> list[str]:
    """The reasons of the dead letters of `target`'s queue (taken off it)."""
    queue = dead_letter_queue(ops_queue(target))
    reasons = []
    consumer = broker.consume(queue, prefetch=10)
    try:
        while await broker.depth(queue):
            delivery = await anext(aiter(consumer))
            reasons.append(delivery.headers[REASON_HEADER])
            await delivery.ack()
    finally:
        await consumer.aclose()
    return reasons


async def test_a_batch_the_worker_fails_on_is_logged_failed_with_the_reason_and_planned_again(
    tmp_path: Path,
) -> None:
    rows = [person(i) for i in range(N)]
    async with pipeline(tmp_path, _raw(tmp_path, rows), wrap=Nonsense) as p:
        job = p.runner.config.jobs[0]
        first = await asyncio.wait_for(p.runner.run_cycle(job), 60)  # never ended before the fix

        assert (first.status, first.created, first.failed) == ("completed_with_failures", N - 20, 20)
        final = await _final_records(p.state, first.cycle_id)
        assert len(final) == N and all(len(records) == 1 for records in final.values())
        failed = [records[0] for records in final.values() if records[0]["status"] == "failed"]
        assert len(failed) == 20
        for record in failed:
            assert record["error_message"].startswith("the worker failed on this batch: AttributeError")
        assert await p.broker.depth(dead_letter_queue(ops_queue("db"))) == 0  # reported, not escrowed

        second = await asyncio.wait_for(p.runner.run_cycle(job), 60)
        assert (second.status, second.created, second.failed) == ("succeeded", 20, 0)
        assert {r["source_id"] for r in failed} == {
            r["source_id"] for r in await p.state.log_records("people", cycle_id=second.cycle_id)
        }
    await _assert_target_exactly(tmp_path, rows)


async def test_a_dead_lettered_batch_ends_its_cycle_at_the_deadline_lost_in_transit_then_replanned(
    tmp_path: Path,
) -> None:
    rows = [person(i) for i in range(N)]
    async with _garbled_pipeline(tmp_path, _raw(tmp_path, rows, base_s=0.5, per_batch_s=0)) as (runner, g):
        job = runner.config.jobs[0]
        first = await asyncio.wait_for(runner.run_cycle(job), 60)

        lost_ids = {row[6] for row in orjson.loads(g.garbled[0])["items"]}  # source_id column
        assert len(lost_ids) == 20
        assert (first.status, first.created, first.failed) == ("completed_with_failures", N - 20, 20)
        final = await _final_records(runner.state, first.cycle_id)
        assert len(final) == N and all(len(records) == 1 for records in final.values())
        lost = [records[0] for records in final.values() if records[0]["status"] == "lost-in-transit"]
        assert {r["source_id"] for r in lost} == lost_ids
        assert all("no result within the cycle's deadline" in r["error_message"] for r in lost)
        assert not runner.tracker.in_flight("people")  # nothing is left "in flight" forever
        assert await _dead_reasons(runner.broker, "db") == [
            f"unknown envelope version 99, this build speaks {', '.join(map(str, SPOKEN))}"
        ]

        second = await asyncio.wait_for(runner.run_cycle(job), 60)
        assert (second.status, second.created, second.failed) == ("succeeded", 20, 0)
        replanned = await runner.state.log_records("people", cycle_id=second.cycle_id)
        assert {r["source_id"] for r in replanned} == lost_ids
        third = await asyncio.wait_for(runner.run_cycle(job), 60)
        assert (third.created, third.updated, third.failed, third.unchanged) == (0, 0, 0, N)
    await _assert_target_exactly(tmp_path, rows)


async def test_a_result_after_the_deadline_replaces_the_lost_record_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    rows = [person(i) for i in range(N)]
    gates: list[Gate] = []

    def gate(connector: Any) -> Gate:
        gates.append(Gate(connector))
        return gates[-1]

    async with pipeline(tmp_path, _raw(tmp_path, rows, base_s=0.5, per_batch_s=0), wrap=gate) as p:
        job = p.runner.config.jobs[0]
        first = await asyncio.wait_for(p.runner.run_cycle(job), 60)  # the first batch is held
        assert first.failed == 20
        lost = [
            records[0]
            for records in (await _final_records(p.state, first.cycle_id)).values()
            if records[0]["status"] == "lost-in-transit"
        ]
        assert len(lost) == 20

        # The next cycle plans the lost objects again while their first batch is still held.
        second = await asyncio.wait_for(p.runner.run_cycle(job), 60)
        assert (second.created + second.updated, second.failed) == (20, 0)
        await _assert_target_exactly(tmp_path, rows)

        gates[0].open_gate.set()  # the held batch goes through now: its results are late
        for _ in range(600):
            statuses = Counter(r["status"] for r in await p.state.log_records("people"))
            if not statuses["lost-in-transit"]:
                break
            await asyncio.sleep(0.05)

        for cycle in (first, second):
            final = await _final_records(p.state, cycle.cycle_id)
            assert all(len(records) == 1 for records in final.values()), final
            assert Counter(records[0]["status"] for records in final.values()) == {"succeeded": len(final)}
        assert len(await _final_records(p.state, first.cycle_id)) == N
        third = await asyncio.wait_for(p.runner.run_cycle(job), 60)
        assert (third.created, third.updated, third.failed, third.unchanged) == (0, 0, 0, N)
        assert not p.runner.tracker.in_flight("people")
    await _assert_target_exactly(tmp_path, rows)


async def test_status_trigger_and_restart_tell_of_a_cycle_stuck_on_a_batch_and_restart_frees_it(
    tmp_path: Path,
) -> None:
    rows = [person(i) for i in range(N)]
    gates: list[Gate] = []

    def gate(connector: Any) -> Gate:
        gates.append(Gate(connector))
        return gates[-1]

    async with pipeline(tmp_path, _raw(tmp_path, rows, base_s=3600), wrap=gate) as p:
        admin = Admin(p.runner)
        job = p.runner.config.jobs[0]
        stuck = asyncio.create_task(p.runner.run_cycle(job))
        await asyncio.wait_for(gates[0].held.wait(), 60)
        while not p.runner.tracker.running("people")[0].planning_done or (
            p.runner.tracker.running("people")[0].outstanding > 20
        ):
            await asyncio.sleep(0.01)

        status = await admin.status("people")
        [running] = status.running
        assert running.awaiting == 20 and running.deadline_at is not None and not running.past_deadline
        assert p.runner.tracker.health() == (True, {"cycles_past_deadline": []})

        triggered = await admin.trigger("people")
        assert (triggered.started, triggered.queued_behind) == (False, running.cycle_id)
        assert triggered.message.startswith(f"queued behind cycle {running.cycle_id} of people, running ")

        await admin.restart("people")  # gives up on the held batch at once, as the deadline would
        summary = await asyncio.wait_for(stuck, 60)
        assert (summary.status, summary.failed) == ("completed_with_failures", 20)
        gates[0].open_gate.set()
        await asyncio.wait_for(asyncio.gather(*admin._triggered), 60)  # the queued cycle ran
        await admin.aclose()
    await _assert_target_exactly(tmp_path, rows)
