"""The result consumer: every result message becomes state and log records, and is acked only then.

Messages that wait while a write commits are written together; these tests queue several before the
consumer starts, so that they do arrive together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from common.errors import StateError
from engine.pipeline.results import ResultConsumer
from engine.pipeline.tracker import CycleProgress, Tracker
from engine.store.state import StateStore, state_url
from queues.broker import Message
from queues.contracts import Action, Operation, Result, encode_results
from queues.memory import MemoryBroker
from queues.topology import RESULTS_QUEUE, dead_letter_queue


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with StateStore(state_url(str(tmp_path / "state.db"))) as store:
        yield store


def operation(n: int, action: Action = "create") -> Operation:
    return Operation(
        op_id=f"c1-{n}",
        job="people",
        target="db",
        cycle_id="c1",
        action=action,
        object_type="user",
        source_id=f"E{n}",
        attributes={"employee_id": f"E{n}"},
        desired_hash=f"h{n}-{action}",
        emitted_at=time.time(),
    )


def succeeded(op: Operation) -> Result:
    return Result(
        op_id=op.op_id,
        job=op.job,
        target=op.target,
        cycle_id=op.cycle_id,
        source_id=op.source_id,
        action=op.action,
        status="succeeded",
        attempts=1,
        emitted_at=op.emitted_at,
        completed_at=time.time(),
        target_id=f"t-{op.source_id}",
        applied_hash=op.desired_hash,
    )


def planned(*ops: Operation) -> tuple[Tracker, CycleProgress]:
    """A tracker waiting for the results of `ops`, planned in cycle c1."""
    tracker = Tracker()
    progress = tracker.start_cycle("c1", "people")
    for op in ops:
        tracker.register(op)
    tracker.planning_done("c1")
    return tracker, progress


async def consume_until_done(
    broker: MemoryBroker, state: StateStore, tracker: Tracker, progress: CycleProgress
) -> None:
    consumer = ResultConsumer(broker, state, tracker)
    await consumer.start()
    await consumer.wait_or_fail(progress.done)
    await consumer.aclose()  # an unacked message would go back to the queue now


async def test_result_messages_that_arrive_together_are_all_written_then_acked(state: StateStore) -> None:
    ops = [operation(n) for n in range(30)]
    tracker, progress = planned(*ops)
    async with MemoryBroker() as broker:
        await broker.declare(RESULTS_QUEUE)
        for start in range(0, len(ops), 10):
            body = encode_results([succeeded(op) for op in ops[start : start + 10]])
            await broker.publish(RESULTS_QUEUE, [Message(body)])
        await consume_until_done(broker, state, tracker, progress)
        assert await broker.depth(RESULTS_QUEUE) == 0
    assert progress.counts["created"] == 30
    snapshot = await state.snapshot("people")
    assert {source_id: entry.target_id for source_id, entry in snapshot.items()} == {
        op.source_id: f"t-{op.source_id}" for op in ops
    }
    assert len(await state.log_records("people", cycle_id="c1")) == 30


async def test_an_undecodable_result_message_is_dead_lettered_and_the_others_beside_it_are_written(
    state: StateStore,
) -> None:
    ops = [operation(1), operation(2)]
    tracker, progress = planned(*ops)
    async with MemoryBroker() as broker:
        await broker.declare(RESULTS_QUEUE)
        bodies = [encode_results([succeeded(ops[0])]), b"{not json", encode_results([succeeded(ops[1])])]
        await broker.publish(RESULTS_QUEUE, [Message(body) for body in bodies])
        await consume_until_done(broker, state, tracker, progress)
        assert await broker.depth(RESULTS_QUEUE) == 0
        assert await broker.depth(dead_letter_queue(RESULTS_QUEUE)) == 1
    assert set(await state.snapshot("people")) == {"E1", "E2"}


@pytest.mark.parametrize(
    ("actions", "provisioned"),
    [(("create", "delete"), False), (("delete", "update"), True), (("create", "disable"), True)],
)
async def test_results_of_one_object_written_together_leave_the_state_of_writing_them_in_turn(
    state: StateStore, tmp_path: Path, actions: tuple[Action, Action], provisioned: bool
) -> None:
    first, second = (succeeded(operation(1, action)) for action in actions)
    await state.apply_results([first, second])
    async with StateStore(state_url(str(tmp_path / "in-turn.db"))) as in_turn:
        await in_turn.apply_results([first])
        await in_turn.apply_results([second])
        expected = await in_turn.snapshot("people")
    assert await state.snapshot("people") == expected
    assert ("E1" in expected) is provisioned


async def test_waiting_for_results_fails_at_once_when_the_broker_closes_under_the_consumer(
    state: StateStore,
) -> None:
    first, second = operation(1), operation(2)
    tracker, progress = planned(first, second)
    async with MemoryBroker() as broker:
        consumer = ResultConsumer(broker, state, tracker)
        await consumer.start()
        await broker.publish(RESULTS_QUEUE, [Message(encode_results([succeeded(first)]))])
        async with asyncio.timeout(5):
            while progress.settled < 1:
                await asyncio.sleep(0.01)
        await broker.aclose()
        with pytest.raises(StateError, match="the result consumer stopped"):
            await asyncio.wait_for(consumer.wait_or_fail(progress.done), timeout=5)
        await consumer.aclose()
