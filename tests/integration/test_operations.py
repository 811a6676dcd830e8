"""Operating safely, through whole cycles: the deletion guard, pause and resume, quarantine, and the log.

The guard and pause run into a real SQLite table; quarantine into a real SCIM server whose credentials
are revoked mid-cycle (the server itself answers 401). Every check reads the target back object by object.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.api.admin import Admin
from engine.core.policies import QuarantineSettings
from engine.store.history import LogFilter, iso_utc
from engine.store.state import STAGED_DELETE
from tests.conftest import running_scim_server
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
from tests.scim_server import Credentials, ScimServer

TOKEN = "tok-operations"


def _raw(tmp_path: Path, **job: Any) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    return {**job_config(tmp_path, **job), **sql_target(url)}


def _target(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.db'}"


async def test_a_truncated_source_stages_its_deprovisions_until_approved(tmp_path: Path) -> None:
    people = [person(i) for i in range(200)]
    write_csv(tmp_path / "people.csv", people)
    raw = _raw(tmp_path, deletion_guard={"count": 500, "percent": 20})
    async with pipeline(tmp_path, raw) as p:
        admin = Admin(p.runner)
        job = p.runner.config.job("people")
        assert (await p.runner.run_cycle(job)).created == 200

        kept = [person(7, department="Legal") if i == 7 else row for i, row in enumerate(people[:100])]
        write_csv(tmp_path / "people.csv", kept)
        staged = await p.runner.run_cycle(job)
        assert (staged.staged, staged.disabled, staged.updated) == (100, 0, 1)  # the rest proceeded
        rows = await target_rows(_target(tmp_path))
        assert all(row["active"] for row in rows.values()), "an account was disabled before approval"
        status = await admin.status("people")
        assert status.state == "waiting_for_approval"
        assert status.approval is not None
        assert status.approval.staged == 100 and "100 of 200" in status.approval.reason
        records = await admin.logs(LogFilter(job="people", action=STAGED_DELETE))
        assert sorted(r.source_id for r in records) == sorted(r["employee_id"] for r in people[100:])

        assert (await admin.reject("people")).rejected == 100
        assert (await admin.status("people")).state == "active"
        again = await p.runner.run_cycle(job)  # still missing from the source: held again
        assert (again.staged, again.disabled) == (100, 0)
        assert all(row["active"] for row in (await target_rows(_target(tmp_path))).values())

        approved = await admin.approve("people")
        assert approved.approved == 100 and approved.cycle.disabled == 100
        assert (await admin.status("people")).state == "active"
    rows = await target_rows(_target(tmp_path))
    assert {k for k, row in rows.items() if not row["active"]} == {r["employee_id"] for r in people[100:]}
    assert {k: {c: row[c] for c in expected_row(people[0])} for k, row in rows.items() if row["active"]} == {
        r["employee_id"]: expected_row(r) for r in kept
    }


async def test_pause_mid_cycle_then_resume_completes_it_without_doing_anything_twice(tmp_path: Path) -> None:
    people = [person(i) for i in range(3500)]
    write_csv(tmp_path / "people.csv", people)
    raw = _raw(tmp_path, batch_size=50)
    raw["engine"]["high_water"] = 2  # the engine publishes only a little ahead of the target

    def slow(connector: Any) -> FaultInjector:
        return FaultInjector(connector, stall_s=0.02)

    async with pipeline(tmp_path, raw, wrap=slow) as p:
        job = p.runner.config.job("people")
        cycle = asyncio.create_task(p.runner.run_cycle(job))
        while not p.runner.tracker.running("people") or p.runner.tracker.running("people")[0].planned == 0:
            await asyncio.sleep(0.01)
        await Admin(p.runner).pause("people")
        progress = p.runner.tracker.running("people")[0]
        await asyncio.sleep(0.3)
        planned = progress.planned
        await asyncio.sleep(1.0)
        assert progress.planned == planned < 3500, "a paused job planned more work"
        assert (await Admin(p.runner).status("people")).state == "paused"
        await Admin(p.runner).resume("people")
        summary = await asyncio.wait_for(cycle, 120)
    assert (summary.created, summary.failed, summary.status) == (3500, 0, "succeeded")
    rows = await target_rows(_target(tmp_path))  # raises on a key found twice
    assert {k: {c: row[c] for c in expected_row(people[0])} for k, row in rows.items()} == {
        r["employee_id"]: expected_row(r) for r in people
    }


@pytest.fixture
def scim(tmp_path: Path) -> Any:
    with running_scim_server(tmp_path, Credentials(bearer_tokens=(TOKEN,))) as server:
        yield server


def _scim_raw(tmp_path: Path, server: ScimServer) -> dict[str, Any]:
    raw = job_config(tmp_path, target="app", batch_size=20)
    raw["engine"]["high_water"] = 2
    raw["jobs"][0]["mappings"] = [
        {"target": "externalId", "source": "employee_id", "match": True},
        {"target": "userName", "source": "email"},
        {"target": "title", "source": "department", "default": "none"},
    ]
    raw["targets"] = [
        {
            "name": "app",
            "type": "scim",
            "url": server.url,
            "auth": {"type": "bearer", "token": TOKEN},
            "max_concurrency": 4,
            "max_inflight": 2,
            "retry": {"first_delay_ms": 20, "tiers": 2},
        }
    ]
    return raw


async def test_revoked_credentials_quarantine_the_job_and_restored_ones_release_it(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(i) for i in range(1200)]
    write_csv(tmp_path / "people.csv", people)
    async with pipeline(tmp_path, _scim_raw(tmp_path, scim)) as p:
        job = p.runner.config.job("people")
        cycle = asyncio.create_task(p.runner.run_cycle(job))
        while not p.runner.tracker.running("people") or p.runner.tracker.running("people")[0].settled < 100:
            await asyncio.sleep(0.01)
        scim.revoke(True)
        revoked = await asyncio.wait_for(cycle, 120)
        assert revoked.status == "quarantined"
        assert revoked.quarantined is not None and revoked.quarantined.startswith("credentials rejected")
        assert revoked.created + revoked.failed < 1200, "the cycle went on sending work"
        # Within the window: 10 refusals in a row trip it, and what fails after was already published
        # (the queue up to its high-water mark, the worker's prefetch, results not yet read back).
        window = QuarantineSettings().window
        assert revoked.failed <= window, f"{revoked.failed} failures, more than the window of {window}"
        status = await Admin(p.runner).status("people")
        assert status.state == "quarantined" and status.quarantine is not None
        assert "credentials rejected" in status.quarantine.reason

        scim.revoke(False)
        restored = await p.runner.run_cycle(job)
        assert (restored.status, restored.failed) == ("succeeded", 0)
        assert (await Admin(p.runner).status("people")).state == "active"
    stored = scim_users(scim)
    assert sorted(stored) == sorted(r["employee_id"] for r in people)  # each once, none missing


def scim_users(server: ScimServer) -> dict[str, dict[str, Any]]:
    users: dict[str, dict[str, Any]] = {}
    while True:
        request = urllib.request.Request(
            f"{server.url}/Users?startIndex={len(users) + 1}&count=1000",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            page = json.loads(answer.read())
        for user in page.get("Resources", []):
            assert user["externalId"] not in users, f"{user['externalId']} is in the target twice"
            users[user["externalId"]] = user
        if not page.get("Resources") or len(users) >= page["totalResults"]:
            return users


async def test_every_operation_has_one_final_log_record_and_exports_agree(tmp_path: Path) -> None:
    people = [person(i) for i in range(120)]
    write_csv(tmp_path / "people.csv", people)
    raw = _raw(tmp_path)
    email = next(m for m in raw["jobs"][0]["mappings"] if m["target"] == "email")
    email.pop("source")
    email["expression"] = "Redact([email])"  # written to the target, hidden in the log
    async with pipeline(tmp_path, raw) as p:
        admin = Admin(p.runner)
        job = p.runner.config.job("people")
        first = await p.runner.run_cycle(job)
        write_csv(tmp_path / "people.csv", [person(0, department="Legal"), *people[1:110]])
        second = await p.runner.run_cycle(job)
        final = await admin.logs(LogFilter(job="people", cycle_id=second.cycle_id, status="succeeded"))
        assert sorted((r.action, r.source_id) for r in final) == sorted(
            [("update", "E00000")] + [("disable", r["employee_id"]) for r in people[110:]]
        )
        (update,) = [r for r in final if r.action == "update"]
        assert update.attributes == {**expected_row(person(0, department="Legal")), "email": "***"}
        assert update.steps == {
            "import": "read from the source",
            "scope": "in scope",
            "match": f"linked to {update.target_id}",
            "action": "update",
            "export": "done",
        }
        assert update.duration_ms is not None and update.duration_ms > 0 and update.attempts == 1
        disabled = next(r for r in final if r.action == "disable")
        assert disabled.steps["import"] == "not in the full import" and disabled.attributes is None
        everything = await admin.logs(LogFilter(job="people", limit=10_000))
        per_op: dict[str, int] = {}
        for record in everything:
            if record.status in ("succeeded", "failed") and record.op_id is not None:
                per_op[record.op_id] = per_op.get(record.op_id, 0) + 1
        assert len(per_op) == first.created + second.changed and set(per_op.values()) == {1}
        assert await admin.logs(LogFilter(job="people", action="update")) == [
            r for r in everything if r.action == "update"
        ]
        assert await admin.logs(LogFilter(job="people", since=everything[-1].at + 1)) == []
        assert await admin.logs(LogFilter(job="people", source_id="E00000", cycle_id=first.cycle_id)) == [
            r for r in everything if r.source_id == "E00000" and r.cycle_id == first.cycle_id
        ]

        where = LogFilter(job="people", cycle_id=second.cycle_id)
        lines = b"".join([chunk async for chunk in admin.export_logs(where, "jsonl")]).splitlines()
        exported = [orjson.loads(line) for line in lines]
        text = b"".join([chunk async for chunk in admin.export_logs(where, "csv")]).decode()
        as_csv = list(csv.DictReader(io.StringIO(text)))
    expected = [asdict(r) for r in everything if r.cycle_id == second.cycle_id]
    assert exported == [{**r, "at": iso_utc(r["at"])} for r in expected]  # exports: ISO 8601 times
    assert [(r["op_id"], r["action"], r["status"]) for r in as_csv] == [
        (r["op_id"], r["action"], r["status"]) for r in expected
    ]
