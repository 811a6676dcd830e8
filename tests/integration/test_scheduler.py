"""The scheduler obeys the job switches: a paused job starts no cycle, a quarantined one backs off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.errors import PermanentError
from engine.pipeline.scheduler import Scheduler
from tests.integration.pipeline import FaultInjector, job_config, person, pipeline, sql_target, write_csv


def _raw(tmp_path: Path) -> dict[str, Any]:
    raw = {**job_config(tmp_path, schedule={"interval_s": 1}), **sql_target(f"sqlite:///{tmp_path / 't.db'}")}
    raw["engine"]["quarantine"] = {"min_operations": 10}
    return raw


async def _cycles(p: Any) -> int:
    async with p.runner.state.engine.connect() as conn:
        return (await conn.exec_driver_sql("SELECT count(*) FROM cycles")).scalar()


async def test_a_paused_job_starts_no_cycle_until_resumed(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(5)])
    async with pipeline(tmp_path, _raw(tmp_path)) as p:
        await p.runner.control.pause("people")
        scheduler = Scheduler(p.runner, p.runner.config.jobs)
        running = asyncio.create_task(scheduler.run())
        await asyncio.sleep(1.5)
        assert await _cycles(p) == 0
        await p.runner.control.resume("people")
        for _ in range(100):
            if scheduler.history:
                break
            await asyncio.sleep(0.05)
        scheduler.stop()
        await asyncio.wait_for(running, 30)
    assert scheduler.history and scheduler.history[0].created == 5


async def test_a_quarantined_job_waits_a_backed_off_interval(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(30)])

    def broken(connector: Any) -> FaultInjector:
        return FaultInjector(connector, failures=10**6, error=PermanentError("refused", code="500"))

    async with pipeline(tmp_path, _raw(tmp_path), wrap=broken) as p:
        scheduler = Scheduler(p.runner, p.runner.config.jobs)
        running = asyncio.create_task(scheduler.run())
        for _ in range(200):
            if "people" in scheduler.next_run:
                break
            await asyncio.sleep(0.05)
        scheduler.stop()
        await asyncio.wait_for(running, 30)
        switches = p.runner.control.switches("people")
    assert scheduler.history[0].status == "quarantined"
    assert switches.quarantine_reason is not None and "of the last" in switches.quarantine_reason
    wait_s = (scheduler.next_run["people"] - datetime.now(UTC)).total_seconds()
    assert 50 < wait_s <= 60, f"next cycle in {wait_s:.0f} s, not backed off from the 1 s interval"
