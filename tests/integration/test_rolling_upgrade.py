"""Rolling upgrades: an engine of this build with workers of the previous wire version and of this one
(`ROSTER_WIRE_VERSIONS=4` plays the previous build), real processes over RabbitMQ into PostgreSQL.

Each test checks the target object by object (nothing lost, nothing twice) and that nothing was
dead-lettered: a worker of the previous build dead-letters a message it cannot read.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from tests.integration.pipeline import person
from tests.integration.processes import Fleet, Process, wait_until
from tests.integration.test_scaled import TARGET, _assert_exactly, _config, table  # noqa: F401

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

PREVIOUS = {"ROSTER_WIRE_VERSIONS": "4"}


async def _dead_letters(url: str) -> dict[str, int]:
    """Messages in every dead-letter queue the fleet may have used (see `queues.topology`)."""
    counts = {}
    async with await aio_pika.connect(url) as connection:
        for queue in (f"roster.dead.{TARGET}", "roster.dead.results"):
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except ChannelNotFoundEntity:
                continue
            counts[queue] = declared.declaration_result.message_count or 0
    return counts


def _versions_written(engine_log: str) -> list[str]:
    return [
        line.split("version=")[1].split()[0]
        for line in engine_log.splitlines()
        if "event=wire_version" in line
    ]


def test_a_previous_worker_replaced_mid_cycle_by_a_new_one_leaves_the_target_exactly_right(
    tmp_path: Path,
    fleet: Fleet,
    broker_url: str,
    postgres_url: str,
    table: str,  # noqa: F811
) -> None:
    rows = [person(i) for i in range(3000)]
    config = _config(tmp_path, postgres_url, table, rows, batch_size=20)
    previous = fleet.worker(config, "--concurrency", "1", env=PREVIOUS)
    current = fleet.worker(config, "--concurrency", "1")
    previous.wait_healthy()
    current.wait_healthy()

    engine = fleet.engine(config, "--once")
    wait_until(lambda: previous.metric("roster_worker_batches_total") >= 5, 60, "the first batches", fleet)
    previous.signal(signal.SIGTERM)
    assert engine.popen is not None and engine.popen.poll() is None, "the cycle ended before the stop"
    replacement = fleet.worker(config, "--concurrency", "1")
    assert previous.wait(60) == 0, previous.log()
    replacement.wait_healthy()

    assert engine.wait(180) == 0, fleet.logs()
    _assert_exactly(postgres_url, table, rows)
    assert asyncio.run(_dead_letters(broker_url)) == {f"roster.dead.{TARGET}": 0, "roster.dead.results": 0}
    assert "wire_versions=4" in previous.log() and "envelope version" not in previous.log()
    assert _versions_written(engine.log())[0] == "4", engine.log()  # nothing known yet: the previous one


def test_an_engine_writes_the_new_version_once_every_worker_of_the_target_is_known_to_speak_it(
    tmp_path: Path,
    fleet: Fleet,
    broker_url: str,
    postgres_url: str,
    table: str,  # noqa: F811
) -> None:
    rows = [person(i) for i in range(3000)]
    config = _config(tmp_path, postgres_url, table, rows, batch_size=20)
    workers = [fleet.worker(config, "--concurrency", "1"), fleet.worker(config, "--concurrency", "1")]
    for worker in workers:
        worker.wait_healthy()

    engine = fleet.engine(config, "--once")
    assert engine.wait(180) == 0, fleet.logs()
    _assert_exactly(postgres_url, table, rows)
    assert asyncio.run(_dead_letters(broker_url)) == {f"roster.dead.{TARGET}": 0, "roster.dead.results": 0}
    # Presence usually names both workers before the first batch; if not, their results do soon after.
    assert _versions_written(engine.log()) in (["5"], ["4", "5"]), engine.log()


def test_two_previous_workers_upgraded_one_by_one_mid_cycle_leave_the_target_exactly_right(
    tmp_path: Path,
    fleet: Fleet,
    broker_url: str,
    postgres_url: str,
    table: str,  # noqa: F811
) -> None:
    rows = [person(i) for i in range(6000)]
    config = _config(tmp_path, postgres_url, table, rows, batch_size=10)
    old = [fleet.worker(config, "--concurrency", "1", env=PREVIOUS) for _ in range(2)]
    for worker in old:
        worker.wait_healthy()

    engine = fleet.engine(config, "--once")
    new = []
    for i, worker in enumerate(old):
        running = old[i:] + new

        def batches(running: list[Process] = running) -> float:
            return sum(w.metric("roster_worker_batches_total") for w in running)

        enough = batches() + 3
        wait_until(lambda: batches() >= enough, 60, f"batches before upgrading worker {i}", fleet)  # noqa: B023
        worker.signal(signal.SIGTERM)
        assert engine.popen is not None and engine.popen.poll() is None, f"the cycle ended before upgrade {i}"
        new.append(fleet.worker(config, "--concurrency", "1"))
        assert worker.wait(60) == 0, worker.log()
        new[-1].wait_healthy()

    assert engine.wait(180) == 0, fleet.logs()
    _assert_exactly(postgres_url, table, rows)
    assert asyncio.run(_dead_letters(broker_url)) == {f"roster.dead.{TARGET}": 0, "roster.dead.results": 0}
    written = _versions_written(engine.log())
    assert written[0] == "4", engine.log()  # two previous workers: the previous version first
    assert all("envelope version" not in w.log() for w in old), (
        "a previous worker met a message it cannot read"
    )
