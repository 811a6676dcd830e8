"""Engine failover on PostgreSQL: two `roster engine` processes share one state store; the active
one is killed mid-cycle and the standby takes over within seconds. The cycle's objects all end
right in the target, and nothing that the first engine got done is done again."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.ext.asyncio import create_async_engine

from engine.store.state import state_url
from tests import needs
from tests.databases import private_database
from tests.integration.pipeline import expected_row, job_config, person, sql_target, target_rows, write_csv
from tests.integration.processes import Fleet, Process, free_port, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

TAKEOVER_S = 10.0


@pytest.fixture
def database() -> Iterator[str]:
    needs.postgres()
    with private_database("roster_failover") as url:
        yield url


def _config(tmp_path: Path, database: str, rows: list[dict]) -> Path:
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path, batch_size=20, schedule={"interval": "1h"}), **sql_target(database)}
    raw["engine"].update({"state": database, "high_water": 4})
    file = tmp_path / "roster.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


async def _state(database: str) -> tuple[list[tuple[str, str]], Counter[str], dict[str, str]]:
    engine = create_async_engine(state_url(database))
    async with engine.connect() as conn:
        cycles = [
            tuple(r)
            for r in await conn.execute(sa.text("SELECT cycle_id, status FROM cycles ORDER BY started_at"))
        ]
        creates = Counter(
            r[0]
            for r in await conn.execute(
                sa.text(
                    "SELECT DISTINCT source_id, op_id FROM log_view"
                    " WHERE action = 'create' AND status = 'succeeded'"
                )
            )
        )
        objects = dict((await conn.execute(sa.text("SELECT source_id, state FROM objects"))).all())
    await engine.dispose()
    return cycles, creates, objects  # type: ignore[return-value]


def test_the_standby_takes_over_a_killed_engine_mid_cycle_and_every_object_ends_right_once(
    tmp_path: Path, fleet: Fleet, database: str
) -> None:
    rows = [person(i) for i in range(3000)]
    config = _config(tmp_path, database, rows)
    workers = [fleet.worker(config, "--concurrency", "1"), fleet.worker(config, "--concurrency", "1")]
    engines = [fleet.engine(config), fleet.engine(config)]
    for process in (*workers, *engines):
        process.wait_healthy()  # a standby is healthy too: it serves /metrics while it waits
    wait_until(
        lambda: sum(e.metric("roster_engine_active") for e in engines) == 1, 30, "one active engine", fleet
    )
    active, standby = sorted(engines, key=lambda e: -e.metric("roster_engine_active"))
    assert standby.metric("roster_engine_active") == 0

    wait_until(lambda: active.metric("roster_operations_completed_total") >= 400, 60, "results", fleet)
    done_before_kill = active.metric("roster_operations_completed_total")
    active.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    active.wait(30)

    wait_until(lambda: standby.metric("roster_engine_active") == 1, TAKEOVER_S, "the takeover", fleet)
    took_over_s = time.monotonic() - killed_at
    wait_until(lambda: standby.metric("roster_cycles_total", status="succeeded") >= 1, 120, "a cycle", fleet)

    target = asyncio.run(target_rows(database, "accounts"))  # raises if a key is there twice
    assert set(target) == {r["employee_id"] for r in rows}
    for source in rows:
        row = target[source["employee_id"]]
        assert {k: row[k] for k in expected_row(source)} == expected_row(source) and row["active"] is True
    cycles, creates, objects = asyncio.run(_state(database))
    assert [status for _, status in cycles] == ["interrupted", "succeeded"]
    assert objects == {r["employee_id"]: "active" for r in rows}
    # One operation per object created it (a result message replayed after the kill may log it twice).
    assert set(creates) == set(objects) and max(creates.values()) == 1, creates.most_common(3)
    # The standby's cycle published only what the killed engine had not got done.
    assert standby.metric("roster_operations_published_total") <= len(rows) - done_before_kill
    print(f"takeover after {took_over_s:.1f} s; {done_before_kill:.0f} operations done before the kill")
    _stop(standby, *workers)


def _api(port: int, path: str, token: str) -> tuple[int, dict[str, str], dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_a_standby_answers_503_naming_the_active_engine_until_it_takes_over(
    tmp_path: Path, fleet: Fleet, database: str
) -> None:
    config = _config(tmp_path, database, [person(i) for i in range(20)])
    token = "t-" + secrets.token_hex(16)
    ports = [free_port(), free_port()]
    engines = [
        fleet.engine(config, "--api-listen", f"127.0.0.1:{port}", env={"ROSTER_API_TOKEN": token})
        for port in ports
    ]
    worker = fleet.worker(config)  # so that the takeover finds the queues empty, and is quick
    for process in (*engines, worker):
        process.wait_healthy()
    wait_until(
        lambda: sum(e.metric("roster_engine_active") for e in engines) == 1, 30, "one active engine", fleet
    )
    (active, active_port), (standby, standby_port) = sorted(
        zip(engines, ports, strict=True), key=lambda pair: -pair[0].metric("roster_engine_active")
    )
    assert active.popen is not None
    assert _api(active_port, "/jobs", token)[0] == 200
    active_name = f"roster-engine {socket.gethostname()} pid {active.popen.pid}"
    for path in ("/jobs", "/jobs/people", "/openapi.json", "/logs"):
        status, headers, body = _api(standby_port, path, token)
        assert status == 503 and headers["Retry-After"] == "5", (path, status, body)
        assert body == {
            "error": "standby",
            "detail": f"standby: the active engine is {active_name}",
        }
    status, _, health = _api(standby_port, "/healthz", token)
    assert status == 200 and health["role"] == "standby"

    wait_until(lambda: active.metric("roster_cycles_total", status="succeeded") >= 1, 60, "a cycle", fleet)
    active.signal(signal.SIGKILL)
    active.wait(30)
    wait_until(lambda: standby.metric("roster_engine_active") == 1, TAKEOVER_S, "the takeover", fleet)
    wait_until(lambda: _api(standby_port, "/jobs", token)[0] == 200, 5, "the API of the new active engine")
    _stop(standby, worker)


def _stop(*processes: Process) -> None:
    for process in processes:
        process.signal(signal.SIGTERM)
    assert [p.wait(30) for p in processes] == [0] * len(processes)
