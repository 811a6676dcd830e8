"""The mass-change guard through whole cycles into a real SQLite table: a mapping typo that would blank
`title` on most of 5,000 accounts is held for approval, each account read back from the target."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from engine.api.admin import Admin
from engine.store.history import LogFilter, prune_log
from engine.store.state import STAGED_UPDATE
from tests.integration.pipeline import job_config, pipeline, sql_target, target_rows
from tests.integration.test_cli import _line, _roster

PEOPLE = 5_000
COLUMNS = ("employee_id", "given_name", "family_name", "email", "department", "title")
NO_TITLE = set(range(5, PEOPLE, 32)[:156])  # 4,844 of the 5,000 have a title
TITLED = PEOPLE - len(NO_TITLE)


def _person(i: int, **changes: str) -> dict[str, str]:
    row = {
        "employee_id": f"E{i:05d}",
        "given_name": "Ann",
        "family_name": "Lee",
        "email": f"user{i}@example.org",
        "department": ["Sales", "R&D", "People"][i % 3],
        "title": "" if i in NO_TITLE else ["Engineer", "Clerk", "Manager", "Analyst"][i % 4],
    }
    return {**row, **changes}


def _write(tmp_path: Path, rows: list[dict[str, str]]) -> None:
    with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _raw(tmp_path: Path, *, title_from: str = "title") -> dict[str, Any]:
    raw = job_config(tmp_path, mass_change_guard={"count": 500, "percent": 20})
    raw["jobs"][0]["mappings"].append({"target": "title", "source": title_from})
    columns = {
        c: c for c in ("employee_id", "first_name", "last_name", "email", "department", "company", "title")
    }
    raw.update(sql_target(f"sqlite:///{tmp_path / 'target.db'}", columns=columns))
    return raw


async def _titles(tmp_path: Path) -> dict[str, str | None]:
    return {k: row["title"] for k, row in (await target_rows(f"sqlite:///{tmp_path / 'target.db'}")).items()}


def _expected(rows: list[dict[str, str]]) -> dict[str, str | None]:
    return {row["employee_id"]: row["title"] or None for row in rows}


async def _provision(tmp_path: Path, rows: list[dict[str, str]]) -> None:
    _write(tmp_path, rows)
    async with pipeline(tmp_path, _raw(tmp_path)) as p:
        assert (await p.runner.run_cycle(p.runner.config.job("people"))).created == PEOPLE
    assert await _titles(tmp_path) == _expected(rows)


REASON = f"title would be emptied on {TITLED:,} of 5,000 accounts (97%)"


async def test_a_mapping_typo_that_blanks_title_is_held_and_reject_drops_it(tmp_path: Path) -> None:
    rows = [_person(i) for i in range(PEOPLE)]
    await _provision(tmp_path, rows)

    async with pipeline(tmp_path, _raw(tmp_path, title_from="titel")) as p:
        admin = Admin(p.runner)
        held = await p.runner.run_cycle(p.runner.config.job("people"))
        assert (held.status, held.staged, held.staged_updates, held.updated) == ("held", TITLED, TITLED, 0)
        assert [hold.kind for hold in held.holds] == ["mass_change"]
        assert held.holds[0].reason.startswith(REASON)
        assert await _titles(tmp_path) == _expected(rows), "a title changed before approval"
        status = await admin.status("people")
        assert status.state == "waiting_for_approval" and status.approval is not None
        assert status.approval.staged == TITLED and REASON in status.approval.reason
        records = await admin.logs(LogFilter(job="people", action=STAGED_UPDATE, limit=10_000))
        assert (
            len(records) == TITLED and "held for approval (mass change: " + REASON in records[0].error_message
        )

        assert (await admin.reject("people")).rejected == TITLED
        assert (await admin.status("people")).state == "active"
    assert await _titles(tmp_path) == _expected(rows)


async def test_approving_releases_exactly_the_held_updates(tmp_path: Path) -> None:
    rows = [_person(i) for i in range(PEOPLE)]
    await _provision(tmp_path, rows)
    untitled = sorted(NO_TITLE)[:3]  # their change does not touch title: it goes at once
    for i in untitled:
        rows[i] = _person(i, department="Legal")
    _write(tmp_path, rows)

    async with pipeline(tmp_path, _raw(tmp_path, title_from="titel")) as p:
        admin = Admin(p.runner)
        job = p.runner.config.job("people")
        held = await p.runner.run_cycle(job)
        assert (held.staged, held.updated) == (TITLED, 3)
        staged = {
            r.source_id for r in await admin.logs(LogFilter(job="people", action=STAGED_UPDATE, limit=10_000))
        }
        assert await _titles(tmp_path) == _expected([_person(i) for i in range(PEOPLE)])

        approved = await admin.approve("people")
        assert approved.approved == TITLED
        assert (approved.cycle.updated, approved.cycle.staged) == (TITLED, 0)
        updates = await admin.logs(
            LogFilter(job="people", action="update", cycle_id=approved.cycle.cycle_id, limit=10_000)
        )
        assert {r.source_id for r in updates} == staged
        assert (await admin.status("people")).state == "active"
    titles = await _titles(tmp_path)
    assert titles == {row["employee_id"]: None for row in rows}
    rows_after = await target_rows(f"sqlite:///{tmp_path / 'target.db'}")
    assert {k for k, row in rows_after.items() if row["department"] == "Legal"} == {
        f"E{i:05d}" for i in untitled
    }


async def test_a_change_under_the_threshold_goes_through(tmp_path: Path) -> None:
    rows = [_person(i) for i in range(PEOPLE)]
    await _provision(tmp_path, rows)
    changed = [i for i in range(PEOPLE) if i not in NO_TITLE][:900]  # 18%: under the share
    for i in changed:
        rows[i] = _person(i, title="")
    _write(tmp_path, rows)

    async with pipeline(tmp_path, _raw(tmp_path)) as p:
        done = await p.runner.run_cycle(p.runner.config.job("people"))
        assert (done.status, done.updated, done.staged, done.holds) == ("succeeded", 900, 0, ())
    assert await _titles(tmp_path) == _expected(rows)


def test_run_and_plan_say_the_held_updates_and_why(tmp_path: Path) -> None:
    rows = [_person(i) for i in range(PEOPLE)]
    _write(tmp_path, rows)
    raw = _raw(tmp_path)
    raw["engine"]["state"] = "state.db"
    file = tmp_path / "jobs.yaml"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert _roster("run", str(file)).returncode == 0
    raw["jobs"][0]["mappings"][-1]["source"] = "titel"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")

    planned = _roster("plan", str(file), "--output", "json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    *objects, totals = [orjson.loads(line) for line in planned.stdout.splitlines()]
    assert totals["totals"]["staged"] == totals["totals"]["staged_updates"] == TITLED
    assert totals["totals"]["updated"] == 0 and REASON in totals["holds"][0]["reason"]
    assert len(objects) == TITLED and {o["held"] for o in objects} == {"mass_change"}

    run = _roster("run", str(file))
    assert run.returncode == 3, run.stdout + run.stderr  # held: a person must look
    said = " ".join(run.stdout.split())
    assert f"{TITLED:,} update(s) held for approval, not sent" in said
    assert "mass change: " + REASON in said
    assert _line(run.stdout, "held") == ["held", f"{TITLED:,}"]
    assert _line(run.stdout, "updated") == ["updated", "0"]


async def test_updates_whose_last_applied_values_were_pruned_are_not_counted_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The guard compares with the provisioning log, which keeps records for its retention only."""
    rows = [_person(i) for i in range(PEOPLE)]
    await _provision(tmp_path, rows)
    async with pipeline(tmp_path, _raw(tmp_path, title_from="titel")) as p:
        assert await prune_log(p.runner.state, -1.0) == PEOPLE  # past the retention: every record
        with caplog.at_level(logging.WARNING, logger="roster.engine.massgate"):
            done = await p.runner.run_cycle(p.runner.config.job("people"))
    assert (done.updated, done.staged) == (TITLED, 0)
    assert f"event=mass_change_unjudged job=people updates={TITLED}" in caplog.text
