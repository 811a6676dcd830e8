"""Presence messages and broadcasts: an announcement survives the wire, a malformed one is refused with
the reason (and a listener drops it and goes on), credentials never travel, and both brokers hand
every broadcast to every subscriber."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from common.errors import DecodeError
from queues.heartbeat import Heartbeat
from queues.memory import MemoryBroker
from queues.presence import (
    Announcement,
    TargetReport,
    decode_announcement,
    encode_announcement,
    redact,
)
from queues.topology import AGENTS_EXCHANGE
from queues.versions import SPOKEN
from tests.queues.conftest import MakeBroker


def _announcement(**overrides: object) -> Announcement:
    fields: dict[str, object] = {
        "kind": "worker",
        "id": "host-12-abcdef",
        "host": "host",
        "pid": 12,
        "version": "1.2.3",
        "spoken": SPOKEN,
        "state": "running",
        "started_at": 1_700_000_000.0,
        "sent_at": 1_700_000_042.5,
        "interval_s": 5.0,
        "targets": (TargetReport(name="app", concurrency=4, in_flight=3, last_error="TransientError: 503"),),
    }
    fields.update(overrides)
    return Announcement(**fields)  # type: ignore[arg-type]


def test_an_announcement_survives_the_wire_with_its_uptime() -> None:
    sent = _announcement()
    body = encode_announcement(sent)
    assert decode_announcement(body) == sent
    assert orjson.loads(body)["uptime_s"] == 42.5 and orjson.loads(body)["v"] == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "is a list"),
        (b'{"v": 99, "kind": "worker"}', "version 99"),
        (b'{"kind": "worker"}', "version None"),
    ],
)
def test_a_body_that_is_no_announcement_is_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_announcement(body)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("kind", "robot", "kind must be one of engine, worker"),
        ("id", "", "id must be a non-empty string"),
        ("pid", -1, "pid must be a whole number"),
        ("spoken", [], "spoken must be a non-empty list"),
        ("state", "asleep", "state must be one of"),
        ("interval_s", 0, "interval_s must be above 0"),
        ("targets", {"app": 1}, "targets must be a list"),
        ("targets", ["app"], r"targets\[0\] is not an object"),
        ("targets", [{"name": "app", "concurrency": "4", "in_flight": 0}], "concurrency must be"),
    ],
)
def test_an_announcement_with_a_wrong_field_is_refused_naming_it(
    field: str, value: object, reason: str
) -> None:
    raw = orjson.loads(encode_announcement(_announcement()))
    raw[field] = value
    with pytest.raises(DecodeError, match=reason):
        decode_announcement(orjson.dumps(raw))


def test_a_last_error_travels_without_credentials_and_cut_short() -> None:
    said = redact(
        "ConnectError: https://admin:hunter2@scim.example.org/Users refused; Authorization: Bearer abc.def;"
        " password=s3cret token: xyz"
    )
    for secret in ("hunter2", "abc.def", "s3cret", "xyz"):
        assert secret not in said
    assert "scim.example.org/Users" in said
    assert len(redact("x" * 1000)) == 300
    raw = orjson.loads(encode_announcement(_announcement()))
    raw["targets"][0]["last_error"] = "failed with password=hunter2"
    assert decode_announcement(orjson.dumps(raw)).targets[0].last_error == "failed with password=******"


async def test_every_subscriber_gets_every_broadcast_and_a_closed_one_stops(make_broker: MakeBroker) -> None:
    broker = await make_broker()
    first, second = broker.subscribe(AGENTS_EXCHANGE), broker.subscribe(AGENTS_EXCHANGE)
    await first.start()
    await second.start()
    await broker.broadcast(AGENTS_EXCHANGE, b"one")
    await broker.broadcast(AGENTS_EXCHANGE, b"two")
    async with asyncio.timeout(5):
        assert [await anext(aiter(first)), await anext(aiter(first))] == [b"one", b"two"]
        assert [await anext(aiter(second)), await anext(aiter(second))] == [b"one", b"two"]
    await first.aclose()
    await broker.broadcast(AGENTS_EXCHANGE, b"three")
    async with asyncio.timeout(5):
        assert await anext(aiter(second)) == b"three"
    with pytest.raises(StopAsyncIteration):
        await anext(aiter(first))
    await second.aclose()


async def test_a_broadcast_nobody_hears_is_no_error(make_broker: MakeBroker) -> None:
    broker = await make_broker()
    await broker.broadcast(AGENTS_EXCHANGE, b"anyone?")


async def test_a_heartbeat_drops_a_malformed_announcement_and_hears_the_next_one() -> None:
    heard: list[Announcement] = []
    async with MemoryBroker() as broker:
        beat = Heartbeat(broker, kind="engine", interval_s=60, heard=heard.append, version="1.0")
        async with beat:
            await broker.broadcast(AGENTS_EXCHANGE, b"\xff garbage")
            await broker.broadcast(AGENTS_EXCHANGE, b'{"v": 1}')
            await broker.broadcast(AGENTS_EXCHANGE, encode_announcement(_announcement()))
            async with asyncio.timeout(5):
                while len(heard) < 2:
                    await asyncio.sleep(0.01)
            assert sorted(a.id for a in heard) == sorted([beat.id, "host-12-abcdef"])  # its own too
        listener = broker.subscribe(AGENTS_EXCHANGE)
        await broker.broadcast(AGENTS_EXCHANGE, b"after")  # the heartbeat no longer listens
        assert await anext(aiter(listener)) == b"after"
