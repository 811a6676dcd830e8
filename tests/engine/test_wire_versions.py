"""The engine's choice of wire version per target, and what it does with what v3 cannot carry: nested
group members are deferred (the record and the hash say so), never dropped or sent wrong."""

from __future__ import annotations

from typing import Any

from engine.core.membership import PENDING_PREFIX, REMOVED_PREFIX
from engine.pipeline.publisher import Publisher, PublishSettings
from engine.pipeline.wire import WireVersions, expressible
from queues.contracts import Operation, Result
from queues.memory import MemoryBroker
from queues.topology import ops_queue
from queues.versions import PeerVersions, speaker_headers
from queues.wire import decode_work
from tests.queues import previous_contracts as previous


def _group(**changes: Any) -> Operation:
    fields: dict[str, Any] = {
        "op_id": "c1-1",
        "job": "groups",
        "target": "scim",
        "cycle_id": "c1",
        "action": "update",
        "object_type": "group",
        "source_id": "G1",
        "attributes": {"displayName": "Staff"},
        "desired_hash": "abcdef0123456789",
        "target_id": "t-G1",
        "members_add": ["t-G2", "t-U1"],
        "members_remove": ["t-U9"],
        "members": {"U1": "t-U1", "G2": "t-G2", "U3": "t-U3", REMOVED_PREFIX + "U9": "t-U9"},
        "members_groups": ["t-G2"],
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


def test_nested_members_are_deferred_in_v3_and_the_group_is_planned_again() -> None:
    deferred = expressible(_group(), 3)
    assert deferred.members_add == ["t-U1"]
    assert deferred.members_remove == ["t-U9"]
    assert deferred.members_groups == []
    # The state records only what the target will hold, so a later cycle adds G2 again...
    assert deferred.members == {"U1": "t-U1", "U3": "t-U3", REMOVED_PREFIX + "U9": "t-U9"}
    # ...and never takes the group as applied meanwhile.
    assert deferred.desired_hash == PENDING_PREFIX + "abcdef0123456789"
    assert expressible(_group(), 4) == _group()
    plain = _group(members_groups=[], members_add=["t-U1"])
    assert expressible(plain, 3) is plain


async def test_the_publisher_writes_v3_until_every_consumer_is_known_to_speak_v4() -> None:
    target = "scim"
    async with MemoryBroker() as broker:
        await broker.declare(ops_queue(target))
        wire = WireVersions(broker, PeerVersions())
        publisher = Publisher(broker, PublishSettings(batch_size=1, linger_ms=0), versions=wire)
        consumers = [broker.consume(ops_queue(target), prefetch=10) for _ in range(2)]

        await publisher.add(_group())
        wire.heard(speaker_headers("w1", (3, 4)), 3, [_result(target)])
        await publisher.add(_group(op_id="c1-2"))
        wire.heard(speaker_headers("w2", (3, 4)), 3, [_result(target)])
        await publisher.add(_group(op_id="c1-3"))
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
    assert versions == [3, 3, 4]
    first = previous.decode_operations(bodies[0])[0]  # what a previous worker reads: no nested group
    assert first.members_add == ["t-U1"] and first.desired_hash.startswith(PENDING_PREFIX)
    assert decode_work(bodies[2])[1] == [_group(op_id="c1-3")]


async def test_an_engine_without_peers_writes_its_own_version() -> None:
    async with MemoryBroker() as broker:  # embedded: engine and workers are one build
        assert await WireVersions(broker).for_target("scim") == 4
