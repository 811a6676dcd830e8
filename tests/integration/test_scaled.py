"""Scaled mode: `roster engine` and `roster worker` processes over the real RabbitMQ, into a real
PostgreSQL table, with processes killed and connections dropped mid-cycle.

Every test checks the target's final rows object by object: nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.pipeline import expected_row, job_config, person, sql_target, target_rows, write_csv
from tests.integration.processes import Fleet, Process, free_port, wait_until
from tests.rabbit import rabbitmqctl

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

TARGET = "db"


@pytest.fixture
def table(postgres_url: str) -> Iterator[str]:
    name = f"accounts_{uuid.uuid4().hex[:10]}"
    yield name
    asyncio.run(_drop(postgres_url, name))


async def _drop(url: str, table: str) -> None:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    await engine.dispose()


def _config(tmp_path: Path, postgres_url: str, table: str, rows: list[dict], **engine: Any) -> Path:
    write_csv(tmp_path / "people.csv", rows)
    raw = {
        **job_config(tmp_path, batch_size=engine.pop("batch_size", 50)),
        **sql_target(postgres_url, table=table),
    }
    raw["engine"].update({"state": str(tmp_path / "state.db"), **engine})
    file = tmp_path / "roster.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


def _assert_exactly(postgres_url: str, table: str, rows: list[dict]) -> None:
    target = asyncio.run(target_rows(postgres_url, table))  # raises if a key is there twice
    assert set(target) == {r["employee_id"] for r in rows}
    for source in rows:
        row = target[source["employee_id"]]
        assert {k: row[k] for k in expected_row(source)} == expected_row(source)
        assert row["active"] is True


def test_a_cycle_through_an_engine_and_two_workers_leaves_the_target_exactly_right(
    tmp_path: Path, fleet: Fleet, postgres_url: str, table: str
) -> None:
    rows = [person(i) for i in range(3000)]
    config = _config(tmp_path, postgres_url, table, rows)
    workers = [fleet.worker(config), fleet.worker(config)]
    for worker in workers:
        worker.wait_healthy()

    engine = fleet.engine(config, "--once")
    assert engine.wait(120) == 0, fleet.logs()

    _assert_exactly(postgres_url, table, rows)
    handled = [w.metric("roster_worker_operations_total", status="succeeded") for w in workers]
    assert sum(handled) == 3000 and all(h > 0 for h in handled), handled
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [w.wait(30) for w in workers] == [0, 0], fleet.logs()


def test_a_worker_killed_mid_cycle_leaves_the_rest_to_the_other_and_nothing_is_lost_or_doubled(
    tmp_path: Path, fleet: Fleet, postgres_url: str, table: str
) -> None:
    rows = [person(i) for i in range(4000)]
    config = _config(tmp_path, postgres_url, table, rows, batch_size=20)
    doomed, survivor = fleet.worker(config, "--concurrency", "1"), fleet.worker(config, "--concurrency", "1")
    doomed.wait_healthy()
    survivor.wait_healthy()

    engine = fleet.engine(config, "--once")
    wait_until(lambda: doomed.metric("roster_worker_batches_total") >= 5, 60, "the first batches", fleet)
    doomed.signal(signal.SIGKILL)
    assert engine.popen is not None and engine.popen.poll() is None, "the cycle ended before the kill"
    at_kill = survivor.metric("roster_worker_batches_total")

    assert engine.wait(120) == 0, fleet.logs()
    assert survivor.metric("roster_worker_batches_total") > at_kill
    _assert_exactly(postgres_url, table, rows)


def test_an_engine_killed_mid_publish_and_started_again_converges_without_duplicates(
    tmp_path: Path, fleet: Fleet, postgres_url: str, table: str
) -> None:
    rows = [person(i) for i in range(3000)]
    # A low high-water mark and no worker yet: the engine publishes a few batches, then waits (after
    # its listing's first page did not come: no worker answers it).
    config = _config(tmp_path, postgres_url, table, rows, high_water=4)
    first = fleet.engine(config, "--once")
    # The cycle's listing request, unanswered, holds one of the 4 places in the queue: 3 batches of 50.
    wait_until(lambda: first.metric("roster_operations_published_total") >= 150, 60, "publishing", fleet)
    first.signal(signal.SIGKILL)
    first.wait(30)

    worker = fleet.worker(config)
    worker.wait_healthy()
    second = fleet.engine(config, "--once")
    assert second.wait(120) == 0, fleet.logs()
    _assert_exactly(postgres_url, table, rows)

    third = fleet.engine(config, "--once")
    assert third.wait(60) == 0, fleet.logs()
    assert "no change since the last applied state (3,000 objects)" in third.log(), third.log()
    _assert_exactly(postgres_url, table, rows)


def test_connections_dropped_by_the_broker_mid_cycle_are_restored_and_the_cycle_completes(
    tmp_path: Path, fleet: Fleet, postgres_url: str, table: str
) -> None:
    rows = [person(i) for i in range(6000)]
    config = _config(tmp_path, postgres_url, table, rows, batch_size=10)
    workers = [fleet.worker(config, "--concurrency", "1"), fleet.worker(config, "--concurrency", "1")]
    for worker in workers:
        worker.wait_healthy()

    engine = fleet.engine(config, "--once")
    wait_until(
        lambda: sum(w.metric("roster_worker_batches_total") for w in workers) >= 5, 60, "batches", fleet
    )
    vhost_name = fleet.broker_url.rsplit("/", 1)[1]
    rabbitmqctl("close_all_connections", "--vhost", vhost_name, "roster test: connections dropped mid-cycle")
    assert engine.popen is not None and engine.popen.poll() is None, "the cycle ended before the drop"

    assert engine.wait(180) == 0, fleet.logs()
    _assert_exactly(postgres_url, table, rows)
    for process in (engine, *workers):  # the drop reached every process, and each came back
        # The whole log: `log()` keeps only its tail, where a burst of warnings after the drop can push
        # the line out.
        assert "CONNECTION_FORCED" in process.log_path.read_text(errors="replace"), process.log()


def test_an_undecodable_message_is_dead_lettered_with_its_reason_and_the_worker_goes_on(
    tmp_path: Path, fleet: Fleet, broker_url: str, postgres_url: str, table: str
) -> None:
    rows = [person(i) for i in range(200)]
    config = _config(tmp_path, postgres_url, table, rows)
    worker = fleet.worker(config)
    worker.wait_healthy()
    asyncio.run(_publish_raw(broker_url, b"\x00 this is not an envelope"))

    engine = fleet.engine(config, "--once")
    assert engine.wait(60) == 0, fleet.logs()
    _assert_exactly(postgres_url, table, rows)
    dead = asyncio.run(_dead_letters(broker_url))
    assert [body for body, _ in dead] == [b"\x00 this is not an envelope"]
    assert "not JSON" in dead[0][1]["x-roster-dead-reason"]


def test_a_full_queue_makes_the_engine_wait_until_workers_drain_it(
    tmp_path: Path, fleet: Fleet, broker_url: str, postgres_url: str, table: str
) -> None:
    rows = [person(i) for i in range(2000)]
    config = _config(tmp_path, postgres_url, table, rows, high_water=3)
    engine = fleet.engine(config, "--once")
    # The cycle's listing request, unanswered, holds one of the 3 places in the queue: 2 batches of 50.
    wait_until(lambda: engine.metric("roster_operations_published_total") >= 100, 60, "publishing", fleet)
    stalled_at = engine.metric("roster_operations_published_total")
    time.sleep(1.0)
    assert engine.metric("roster_operations_published_total") == stalled_at < 2000
    assert asyncio.run(_depth(broker_url)) <= 3
    assert engine.popen is not None and engine.popen.poll() is None

    worker = fleet.worker(config)
    assert engine.wait(120) == 0, fleet.logs()
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    _assert_exactly(postgres_url, table, rows)


async def _publish_raw(url: str, body: bytes) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("roster.ops")
        await exchange.publish(aio_pika.Message(body), routing_key=TARGET, mandatory=True)


async def _dead_letters(url: str) -> list[tuple[bytes, dict[str, Any]]]:
    connection = await aio_pika.connect(url)
    out = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"roster.dead.{TARGET}")
        while (message := await queue.get(fail=False)) is not None:
            out.append((message.body, dict(message.headers)))
            await message.ack()
    return out


async def _depth(url: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"roster.ops.{TARGET}", passive=True)
        return queue.declaration_result.message_count or 0


def test_a_worker_process_loads_no_engine_module(
    tmp_path: Path, fleet: Fleet, postgres_url: str, table: str
) -> None:
    # A worker container carries no engine code: `roster worker` must run a whole cycle's batches
    # without importing any. Python's import-time report lists every module the process loads.
    rows = [person(i) for i in range(50)]
    config = _config(tmp_path, postgres_url, table, rows)
    worker = Process(
        "worker-imports",
        ["worker", str(config), "--broker", fleet.broker_url],
        free_port(),
        tmp_path / "worker-imports.log",
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    ).start()
    fleet.processes.append(worker)
    worker.wait_healthy()
    assert fleet.engine(config, "--once").wait(120) == 0, fleet.logs()
    _assert_exactly(postgres_url, table, rows)
    worker.stop()

    report = worker.log_path.read_text(errors="replace")
    loaded = {
        line.rsplit("|", 1)[1].strip() for line in report.splitlines() if line.startswith("import time:")
    }
    assert "workers.worker" in loaded, report[-2000:]  # the report is there, and names the worker's modules
    assert any(m.startswith("workers.connectors.sql") for m in loaded)
    assert sorted(m for m in loaded if m == "engine" or m.startswith("engine.")) == []


def _final(state: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(state) as conn:
        return conn.execute(
            "SELECT cycle_id, op_id, status FROM log_view WHERE status IN "
            "('succeeded', 'failed', 'skipped', 'lost-in-transit') ORDER BY id"
        ).fetchall()


def test_batches_lost_on_the_broker_end_the_cycle_at_its_deadline_and_are_planned_again(
    tmp_path: Path, fleet: Fleet, postgres_url: str, table: str
) -> None:
    # The engine's batches are purged from the queue before any worker reads them (as an operator's
    # purge would lose them): the cycle ends at its deadline, each operation recorded once as
    # `lost-in-transit`, and the next cycle provisions them all.
    rows = [person(i) for i in range(300)]
    config = _config(tmp_path, postgres_url, table, rows, deadline={"base_s": 2, "per_batch_s": 0})
    first = fleet.engine(config, "--once")
    wait_until(lambda: first.metric("roster_operations_published_total") >= 300, 60, "publishing", fleet)
    vhost_name = fleet.broker_url.rsplit("/", 1)[1]
    rabbitmqctl("purge_queue", "-p", vhost_name, f"roster.ops.{TARGET}")
    worker = fleet.worker(config)
    worker.wait_healthy()

    assert first.wait(120) == 1, fleet.logs()  # ended, with failures, instead of waiting forever
    final = _final(tmp_path / "state.db")
    assert Counter(status for _, _, status in final) == {"lost-in-transit": 300}
    assert len({op_id for _, op_id, _ in final}) == 300

    second = fleet.engine(config, "--once")
    assert second.wait(120) == 0, fleet.logs()
    _assert_exactly(postgres_url, table, rows)
    final = _final(tmp_path / "state.db")
    assert Counter(status for _, _, status in final) == {"lost-in-transit": 300, "succeeded": 300}
    assert len({op_id for _, op_id, _ in final}) == 600  # one final record per operation


def test_a_first_cycle_over_rabbitmq_links_the_rows_already_in_the_table_by_one_listing(
    tmp_path: Path, fleet: Fleet, postgres_url: str, table: str
) -> None:
    rows = [person(i) for i in range(600)]
    worker = fleet.worker(_config(tmp_path, postgres_url, table, rows[:200]))
    worker.wait_healthy()
    assert fleet.engine(tmp_path / "roster.yaml", "--once").wait(120) == 0, fleet.logs()
    (tmp_path / "state.db").unlink()  # a new engine, with no links, before a target that holds 200

    config = _config(tmp_path, postgres_url, table, rows)
    engine = fleet.engine(config, "--once")
    assert engine.wait(120) == 0, fleet.logs()

    _assert_exactly(postgres_url, table, rows)
    listed = [line for line in engine.log().splitlines() if "event=listed" in line]
    assert len(listed) == 1 and "objects=200" in listed[0], engine.log()
