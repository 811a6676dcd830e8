"""The engine's choice of wire version per target, and what it does with what v4 cannot carry: a create
or update that leaves its account disabled is kept back with a failed result saying why, never sent
as one that enables it, nor dropped."""

from __future__ import annotations

from typing import Any

from engine.pipeline.publisher import Publisher, PublishSettings
from engine.pipeline.wire import WireVersions, expressible
from queues.contracts import Operation, Result
from queues.memory import MemoryBroker
from queues.topology import ops_queue
from queues.versions import PeerVersions, speaker_headers
from queues.wire import decode_work
from tests.queues import previous_contracts as previous


def _user(**changes: Any) -> Operation:
    fields: dict[str, Any] = {
        "op_id": "c1-1",
        "job": "people",
        "target": "scim",
        "cycle_id": "c1",
        "action": "create",
        "object_type": "user",
        "source_id": "E1",
        "attributes": {"userName": "ada"},
        "desired_hash": "abcdef0123456789",
        "matching": [["userName", "ada"]],
        "emitted_at": 1_700_000_000.0,
    }
    return Operation(**{**fields, **changes})


def _result(target: str) -> Result:
    return Result(
        op_id="x",
        job="people",
        target=target,
        cycle_id="c0",
        source_id="E1",
        action="create",
        status="succeeded",
        attempts=1,
        emitted_at=0.0,
        completed_at=0.0,
    )


def test_a_disabled_create_or_update_is_kept_back_in_v4_with_a_failed_result_saying_why() -> None:
    prehire = _user(disabled=True)
    update = _user(op_id="c1-2", source_id="E2", action="update", target_id="t-E2", disabled=True)
    plain = _user(op_id="c1-3", source_id="E3")
    sent, failed = expressible([prehire, plain, update], 4)
    assert sent == [plain]
    assert [(r.op_id, r.source_id, r.action, r.status, r.target_id) for r in failed] == [
        ("c1-1", "E1", "create", "failed", None),
        ("c1-2", "E2", "update", "failed", "t-E2"),
    ]
    assert all(r.applied_hash is None and r.final for r in failed)  # the state takes none as applied
    message = failed[0].error_message or ""
    assert "previous build (wire version 4)" in message and "disabled create or update" in message
    assert "planned again once every worker serving the target speaks version 5" in message
    ops = [prehire, plain]
    assert expressible(ops, 5) == (ops, [])
    assert expressible([plain], 4) == ([plain], [])


async def test_the_publisher_writes_v4_and_keeps_disabled_ops_back_until_every_consumer_speaks_v5() -> None:
    target = "scim"
    kept_back: list[Result] = []

    async def refused(results: list[Result]) -> None:
        kept_back.extend(results)

    async with MemoryBroker() as broker:
        await broker.declare(ops_queue(target))
        wire = WireVersions(broker, PeerVersions())
        settings = PublishSettings(batch_size=2, linger_ms=0)
        publisher = Publisher(broker, settings, versions=wire, refused=refused)
        consumers = [broker.consume(ops_queue(target), prefetch=10) for _ in range(2)]

        await publisher.add(_user(op_id="c1-1", source_id="E1"))
        await publisher.add(_user(op_id="c1-2", source_id="E2", disabled=True))
        wire.heard(speaker_headers("w1", (4, 5)), 4, [_result(target)])
        await publisher.add(_user(op_id="c1-3", source_id="E3", disabled=True))
        await publisher.add(_user(op_id="c1-4", source_id="E4", disabled=True))
        wire.heard(speaker_headers("w2", (4, 5)), 4, [_result(target)])
        await publisher.add(_user(op_id="c1-5", source_id="E5", disabled=True))
        await publisher.flush()

        bodies = []
        while await broker.depth(ops_queue(target)):
            async for delivery in consumers[0]:
                bodies.append(delivery.body)
                await delivery.ack()
                break
        for consumer in consumers:
            await consumer.aclose()

    versions = [decode_work(body)[0] for body in bodies]
    assert versions == [4, 5]  # the batch of c1-3 and c1-4 had nothing left to send
    previous_reads = previous.decode_operations(bodies[0])  # what a worker of the previous build reads
    assert [op.op_id for op in previous_reads] == ["c1-1"]
    assert [r.op_id for r in kept_back] == ["c1-2", "c1-3", "c1-4"]
    assert decode_work(bodies[1])[1] == [_user(op_id="c1-5", source_id="E5", disabled=True)]
    assert publisher.published_ops == 2 and publisher.published_messages == 2


async def test_an_engine_without_peers_writes_its_own_version() -> None:
    async with MemoryBroker() as broker:  # embedded: engine and workers are one build
        assert await WireVersions(broker).for_target("scim") == 5
