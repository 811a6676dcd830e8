"""A prehire during a rolling upgrade, over RabbitMQ: a create that leaves its account disabled is never
sent to a worker of the previous build (wire version 4, which would create it enabled), nor lost.

The engine (a `CycleRunner` fed by presence, as `roster engine` runs it) plans a job with start
dates into a SQLite target; workers with their presence run beside it, the previous one limited to
version 4 as `ROSTER_WIRE_VERSIONS=4` makes `roster worker`. The job is woken again within a minute
for what was kept back, by when the engine knows its workers' versions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.pipeline.cycles import KEPT_BACK_RETRY_S, CycleRunner
from engine.pipeline.fleet import Fleet, FleetSettings
from engine.pipeline.presence import EnginePresence
from engine.store.state import StateStore, state_url
from queues.broker import Broker
from queues.contracts import Operation
from queues.topology import dead_letter_queue, ops_queue
from queues.versions import PeerVersions
from tests.integration.pipeline import (
    Interposer,
    configs,
    job_config,
    person,
    sql_target,
    target_rows,
    write_csv,
)
from tests.queues.conftest import connect_rabbit_broker
from tests.rabbit import vhost
from workers.config import TargetConfig
from workers.presence import PresenceSettings, WorkerPresence
from workers.worker import Worker

pytestmark = pytest.mark.rabbitmq

PREHIRE = "E00001"
TARGET = "db"


class Recording(Interposer):
    """The operations the connector was given."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.ops: list[Operation] = []

    async def interpose(self, ops: Any) -> Any:
        self.ops.extend(ops)
        return await super().interpose(ops)


@asynccontextmanager
async def _worker(
    url: str, target: TargetConfig, spoken: Sequence[int] | None = None
) -> AsyncIterator[Recording]:
    """A worker on a connection of its own, announcing itself; `spoken` as `ROSTER_WIRE_VERSIONS` sets it."""
    broker = await connect_rabbit_broker(url, name="roster-test-worker")
    runtime = target.runtime()
    recording = runtime.connector = Recording(runtime.connector)
    options = {} if spoken is None else {"spoken": spoken}
    try:
        async with (
            Worker(broker, [runtime], **options) as worker,
            WorkerPresence(broker, worker, PresenceSettings(interval_s=0.5)),
        ):
            yield recording
    finally:
        await broker.aclose()


async def _written_in(runner: CycleRunner, version: int) -> None:
    """Until the engine writes the target's operations in `version` (presence tells it)."""
    async with asyncio.timeout(20):
        while await runner.wire.for_target(TARGET) != version:
            await asyncio.sleep(0.1)


async def _dead_letters(broker: Broker) -> int:
    return await broker.depth(dead_letter_queue(ops_queue(TARGET)))


async def test_a_prehire_waits_for_a_worker_of_version_5_and_then_goes_out_a_disabled_create(
    tmp_path: Path,
) -> None:
    start = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    rows = [{**person(i), "start_date": start if f"E{i:05d}" == PREHIRE else ""} for i in range(4)]
    write_csv(tmp_path / "people.csv", rows)
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    raw = {**job_config(tmp_path), **sql_target(target_url, name=TARGET)}
    raw["jobs"][0]["dates"] = {"starts_on": "start_date", "prehire_days": 7}
    config, targets = configs(tmp_path, raw)
    job = config.jobs[0]
    with vhost() as url:
        broker = await connect_rabbit_broker(url, name="roster-test-engine")
        peers = PeerVersions()  # fed by presence and by the workers' results, as `roster engine` does
        try:
            async with (
                StateStore(state_url(str(tmp_path / "state.db"))) as state,
                EnginePresence(broker, Fleet(FleetSettings(interval_s=0.5), versions=peers)),
                CycleRunner(config, broker, state, peers=peers) as runner,
            ):
                async with _worker(url, targets[0], spoken=(4,)) as previous:
                    first = await runner.run_cycle(job)

                assert (first.created, first.failed) == (3, 1)
                assert len(previous.ops) == 3  # the others went to the previous worker, in version 4
                assert PREHIRE not in await target_rows(target_url)
                assert PREHIRE not in {op.source_id for op in previous.ops}  # never sent, so never enabled
                [record] = await state.log_records(job.name, cycle_id=first.cycle_id, source_id=PREHIRE)
                assert (record["action"], record["status"]) == ("create", "failed")
                message = record["error_message"]
                assert "previous build (wire version 4)" in message and "disabled create" in message
                assert "planned again once every worker serving the target speaks version 5" in message
                assert await state.count(job.name) == 3  # the state did not take it as applied
                due = runner.date_due[job.name]  # woken for it within a minute, not on the start date
                assert due is not None and 0 < due - time.time() <= KEPT_BACK_RETRY_S

                async with _worker(url, targets[0]) as current:
                    await _written_in(runner, 5)
                    second = await runner.run_cycle(job)

                assert (second.created, second.failed) == (1, 0)
                [create] = current.ops
                assert (create.source_id, create.action, create.disabled) == (PREHIRE, "create", True)
                held = await target_rows(target_url)
                assert {key: int(row["active"]) for key, row in held.items()} == {
                    r["employee_id"]: int(r["employee_id"] != PREHIRE) for r in rows
                }
                assert await state.count(job.name) == 4
                assert await _dead_letters(broker) == 0
        finally:
            await broker.aclose()
