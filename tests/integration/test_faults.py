"""Faults mid-cycle: a cancelled worker, a flaky target, a target that refuses a row, bad input.

Each checks the target's final state object by object: nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from queues.topology import dead_letter_queue, ops_queue
from tests.integration.pipeline import (
    FaultInjector,
    expected_row,
    job_config,
    person,
    pipeline,
    sql_target,
    target_rows,
    write_csv,
)
from workers.worker import Worker

N = 1_000


def _assert_target_matches(target: dict, rows: list[dict]) -> None:
    assert set(target) == {r["employee_id"] for r in rows}
    for source in rows:
        row = target[source["employee_id"]]
        assert {k: row[k] for k in expected_row(source)} == expected_row(source)
        assert row["active"] == 1


async def test_a_worker_cancelled_mid_cycle_and_restarted_leaves_the_target_exactly_right(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [person(i) for i in range(N)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path, batch_size=50), **sql_target(url)}
    injectors: list[FaultInjector] = []

    def slow(connector):
        injectors.append(FaultInjector(connector, stall_s=0.01))
        return injectors[-1]

    async with pipeline(tmp_path, raw, wrap=slow) as p:
        job = p.runner.config.jobs[0]
        cycle = asyncio.create_task(p.runner.run_cycle(job))
        while p.worker.batches_handled < 4:
            await asyncio.sleep(0.005)
        await p.worker.stop(grace_s=0)  # cancels the batches in flight, mid-apply
        assert not cycle.done()
        done_before = len(await target_rows(url))
        assert 0 < done_before < N

        async with Worker(p.broker, [t.runtime() for t in p.targets]):
            summary = await asyncio.wait_for(cycle, timeout=60)

    assert summary.created == N and summary.failed == 0
    _assert_target_matches(await target_rows(url), rows)


async def test_a_target_failing_transiently_then_recovering_converges_and_the_retries_are_logged(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [person(i) for i in range(300)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path, batch_size=100), **sql_target(url)}
    injectors: list[FaultInjector] = []

    def flaky(connector):
        injectors.append(FaultInjector(connector, failures=5))
        return injectors[-1]

    async with pipeline(tmp_path, raw, wrap=flaky) as p:
        summary = await asyncio.wait_for(p.runner.run_cycle(p.runner.config.jobs[0]), timeout=60)
        log = await p.state.log_records("people", cycle_id=summary.cycle_id)

    assert (summary.created, summary.failed, summary.status) == (300, 0, "succeeded")
    _assert_target_matches(await target_rows(url), rows)
    retries = [r for r in log if r["status"] == "retrying"]
    assert len(retries) == summary.retries > 0
    assert all(
        r["error_class"] == "TransientError" and "target unavailable" in r["error_message"] for r in retries
    )
    assert all(r["error_code"] == "503" for r in retries)
    final = [r for r in log if r["status"] != "retrying"]
    assert sorted(r["source_id"] for r in final) == sorted(r["employee_id"] for r in rows)
    assert max(r["attempts"] for r in final) > 1


async def test_retries_exhausted_are_dead_lettered_and_reported_failed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [person(i) for i in range(10)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path), **sql_target(url, retry={"tiers": 2, "first_delay_ms": 5, "jitter": 0})}

    async with pipeline(tmp_path, raw, wrap=lambda c: FaultInjector(c, failures=10**6)) as p:
        summary = await asyncio.wait_for(p.runner.run_cycle(p.runner.config.jobs[0]), timeout=30)
        log = await p.state.log_records("people", cycle_id=summary.cycle_id)
        dead = await p.broker.depth(dead_letter_queue(ops_queue("db")))

    assert (summary.failed, summary.created, summary.status) == (10, 0, "completed_with_failures")
    assert dead == 1
    failed = [r for r in log if r["status"] == "failed"]
    assert len(failed) == 10
    assert all(
        r["attempts"] == 3 and "retries exhausted after 3 attempts" in r["error_message"] for r in failed
    )


async def test_a_row_the_target_refuses_is_logged_with_its_message_and_the_cycle_goes_on(
    tmp_path: Path,
) -> None:
    db = tmp_path / "target.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE accounts (employee_id TEXT PRIMARY KEY, first_name TEXT, last_name TEXT,"
            " email TEXT CHECK (email NOT LIKE '%@blocked.example'), department TEXT, company TEXT,"
            " active BOOLEAN)"
        )
    rows = [person(i) for i in range(50)]
    rows[17] = person(17, email="mallory@blocked.example")
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path), **sql_target(f"sqlite:///{db}")}

    async with pipeline(tmp_path, raw) as p:
        summary = await p.runner.run_cycle(p.runner.config.jobs[0])
        log = await p.state.log_records("people", cycle_id=summary.cycle_id)

    assert (summary.created, summary.failed, summary.status) == (49, 1, "completed_with_failures")
    failed = [r for r in log if r["status"] == "failed"]
    assert [r["source_id"] for r in failed] == ["E00017"]
    assert failed[0]["error_class"] == "PermanentError"
    assert "CHECK constraint failed" in failed[0]["error_message"]
    assert failed[0]["attempts"] == 1
    _assert_target_matches(await target_rows(f"sqlite:///{db}"), rows[:17] + rows[18:])
