"""A worker's presence: it announces its targets with their limits, in-flight counts and last error
(without credentials), says `draining` then `leaving` when it stops, and keeps the engines it hears."""

from __future__ import annotations

import asyncio

import pytest

from common.errors import ConfigError
from queues.memory import MemoryBroker
from queues.presence import Announcement, decode_announcement, encode_announcement
from queues.topology import AGENTS_EXCHANGE
from queues.versions import PeerVersions
from workers.connectors.null import NullConnector
from workers.presence import Engines, PresenceSettings, WorkerPresence, parse_presence
from workers.worker import TargetRuntime, Worker


async def _next(subscription: object) -> Announcement:
    async with asyncio.timeout(5):
        return decode_announcement(await anext(aiter(subscription)))  # type: ignore[call-overload]


async def test_a_worker_announces_its_targets_and_says_draining_then_leaving() -> None:
    async with MemoryBroker() as broker:
        listener = broker.subscribe(AGENTS_EXCHANGE)
        worker = Worker(broker, [TargetRuntime(name="app", connector=NullConnector("app"), max_inflight=3)])
        await worker.start()
        worker.last_errors["app"] = (1.0, "TransientError: https://u:hunter2@app.example/ refused")
        presence = WorkerPresence(broker, worker, PresenceSettings(interval_s=60))
        await presence.start()
        first = await _next(listener)
        assert (first.kind, first.id, first.state) == ("worker", presence.id, "running")
        [target] = first.targets
        assert (target.name, target.concurrency, target.in_flight) == ("app", 3, 0)
        assert target.last_error is not None and "hunter2" not in target.last_error
        await presence.draining()
        assert (await _next(listener)).state == "draining"
        await worker.stop()
        await presence.aclose()
        assert (await _next(listener)).state == "leaving"


async def test_a_worker_answers_a_new_engine_at_once_and_keeps_its_versions() -> None:
    async with MemoryBroker() as broker:
        listener = broker.subscribe(AGENTS_EXCHANGE)
        worker = Worker(broker, [])
        versions = PeerVersions()
        async with WorkerPresence(
            broker, worker, PresenceSettings(interval_s=60), versions=versions
        ) as presence:
            await _next(listener)  # its first announcement
            engine = Announcement(
                kind="engine",
                id="engine-1",
                host="h",
                pid=2,
                version="1.0",
                spoken=(4,),
                state="running",
                started_at=0.0,
                sent_at=0.0,
                interval_s=5.0,
            )
            await broker.broadcast(AGENTS_EXCHANGE, encode_announcement(engine))
            assert (await _next(listener)).id == "engine-1"
            assert (await _next(listener)).id == presence.id  # answered before its 60 s beat
            assert presence.engines.known == {"engine-1"}


def test_an_engine_not_heard_for_its_missed_beats_is_forgotten() -> None:
    now = [0.0]
    engines = Engines(PeerVersions(), clock=lambda: now[0])
    engine = Announcement(
        kind="engine",
        id="e",
        host="h",
        pid=1,
        version="1",
        spoken=(4,),
        state="running",
        started_at=0,
        sent_at=0,
        interval_s=2,
    )
    assert engines.heard(engine) is True and engines.heard(engine) is False
    now[0] = 7.0
    engines.sweep()
    assert engines.known == frozenset()


def test_the_workers_section_is_checked() -> None:
    assert parse_presence(None) == PresenceSettings()
    assert parse_presence({"presence": {"interval_s": 2}}).interval_s == 2
    with pytest.raises(ConfigError, match=r"workers\.presence\.interval_s"):
        parse_presence({"presence": {"interval_s": -1}})
    with pytest.raises(ConfigError, match="workers"):
        parse_presence({"heartbeat": 1})
