"""A leaver's grace (`delete_after_days`) against a real scim2-server, with a clock the test moves (no
waiting for days): who leaves is disabled at once and kept; who comes back inside the grace is enabled
again with the same id in the target; who does not is deleted once the grace has passed, not a moment
before, and only then. The scheduler wakes on the day; `/jobs` and `roster status` list who waits."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from common.errors import ConfigError
from common.peers.ldap_names import canonical_dn
from engine.api.admin import Admin
from engine.cli.commands import _explain
from engine.config import parse_engine_config
from engine.pipeline.scheduler import Scheduler
from tests.integration.pipeline import pipeline
from tests.integration.test_ldap_cycle import PEOPLE_MAPPINGS
from tests.integration.test_ldap_cycle import people as ldap_people
from tests.integration.test_ldap_cycle import person as ldap_person
from tests.integration.test_ldap_cycle import target as ldap_target
from tests.integration.test_rule_groups import write_people
from tests.integration.test_scim_groups import config as scim_config
from tests.integration.test_scim_groups import person, read_all, write_sources
from tests.scim_server import ScimServer
from tests.slapd import Slapd

DAY = 86_400.0
GRACE_DAYS = 30


def config(tmp_path: Path, url: str, **job: Any) -> dict[str, Any]:
    raw = scim_config(tmp_path, url)
    raw["jobs"] = raw["jobs"][:1]  # people alone
    raw["jobs"][0].update(
        {"delete_after_days": GRACE_DAYS, "deletion_guard": False, "source_max_drop_percent": 100, **job}
    )
    return raw


async def users(scim: ScimServer) -> dict[str, tuple[str, bool]]:
    """Each user in the target: externalId -> (id, active)."""
    return {u["externalId"]: (u["id"], u.get("active", True)) for u in await read_all(scim, "Users")}


async def test_a_leaver_is_disabled_kept_through_the_grace_and_deleted_after_it_and_a_returner_keeps_the_id(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(i) for i in range(5)]
    write_sources(tmp_path, people, [])
    moved = [0.0]  # days the test's clock is ahead
    async with pipeline(tmp_path, config(tmp_path, scim.url)) as p:
        p.runner.clock = lambda: time.time() + moved[0] * DAY
        (job,) = p.runner.config.jobs
        assert (await p.runner.run_cycle(job)).created == 5
        ids = {ext: target_id for ext, (target_id, _) in (await users(scim)).items()}

        write_sources(tmp_path, [r for r in people if r["employee_id"] not in ("E00001", "E00002")], [])
        left = await p.runner.run_cycle(job)
        disabled_at = time.time()
        assert (left.disabled, left.deleted) == (2, 0)
        held = await users(scim)
        assert held["E00001"] == (ids["E00001"], False) and held["E00002"] == (ids["E00002"], False)

        status = await Admin(p.runner, None).status("people")
        assert [(d.source_id, d.target_id) for d in status.pending_deletions] == [
            ("E00001", ids["E00001"]),
            ("E00002", ids["E00002"]),
        ]
        for leaver in status.pending_deletions:
            assert leaver.delete_at == leaver.disabled_at + GRACE_DAYS * DAY
            assert abs(leaver.disabled_at - disabled_at) < 5

        # the scheduler's next wake for a job without a schedule: daily, and on the first grace's end
        scheduler = Scheduler(p.runner, [job])
        assert await scheduler.delay_s(job, datetime.now(UTC)) == DAY
        end = datetime.fromtimestamp(time.time() + (GRACE_DAYS - 0.5) * DAY, UTC)
        wake_s = await scheduler.delay_s(job, end)
        assert wake_s is not None and abs(wake_s - 0.5 * DAY) < 10

        moved[0] = 10  # E00002 is back: enabled again, the same user in the target
        write_sources(tmp_path, [r for r in people if r["employee_id"] != "E00001"], [])
        back = await p.runner.run_cycle(job)
        assert (back.updated, back.deleted, back.created) == (1, 0, 0)
        assert (await users(scim))["E00002"] == (ids["E00002"], True)

        moved[0] = GRACE_DAYS - 0.01  # a quarter of an hour before the end: kept
        before = await p.runner.run_cycle(job)
        assert (before.deleted, before.disabled) == (0, 0)
        assert (await users(scim))["E00001"] == (ids["E00001"], False)

        moved[0] = GRACE_DAYS + 0.01  # the grace is over: deleted
        after = await p.runner.run_cycle(job)
        assert (after.deleted, after.disabled, after.updated) == (1, 0, 0)
        assert (await Admin(p.runner, None).status("people")).pending_deletions == []
        again = await p.runner.run_cycle(job)
        assert (again.deleted, again.created) == (0, 0)

    held = await users(scim)
    assert set(held) == {"E00000", "E00002", "E00003", "E00004"}
    assert {ext: target_id for ext, (target_id, _) in held.items()} == {ext: ids[ext] for ext in held}
    assert all(active for _, active in held.values())


async def test_the_deletion_guard_holds_deletions_at_the_end_of_the_grace(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(i) for i in range(5)]
    write_sources(tmp_path, people, [])
    raw = config(tmp_path, scim.url)
    async with pipeline(tmp_path, raw) as p:
        (job,) = p.runner.config.jobs
        await p.runner.run_cycle(job)
        write_sources(tmp_path, people[:2], [])
        assert (await p.runner.run_cycle(job)).disabled == 3
    raw["jobs"][0]["deletion_guard"] = {"count": 2, "percent": 100}
    async with pipeline(tmp_path, raw) as p:
        (job,) = p.runner.config.jobs
        p.runner.clock = lambda: time.time() + (GRACE_DAYS + 1) * DAY
        held = await p.runner.run_cycle(job)
    assert (held.status, held.staged, held.deleted) == ("held", 3, 0)
    assert "deletion guard" in str(held.holds[0])
    assert len(await users(scim)) == 5


def test_a_grace_needs_deprovision_disable(tmp_path: Path) -> None:
    raw = config(tmp_path, "http://127.0.0.1:1/scim/v2", deprovision="delete")
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert "jobs[0].delete_after_days" in str(caught.value) and "deprovision: disable" in str(caught.value)


def test_roster_status_says_who_waits_and_the_day() -> None:
    console = Console(record=True, width=200)
    at = datetime(2027, 1, 6, 9, 30, tzinfo=UTC).timestamp()
    pending = [{"source_id": "E00001", "target_id": "t1", "disabled_at": at - 30 * DAY, "delete_at": at}]
    job = {"job": "people", "quarantine": None, "approval": None, "running": [], "pending_deletions": pending}
    _explain(console, job)
    said = console.export_text()
    assert (
        "people: 1 leaver(s) disabled and kept for the grace period; the first, E00001, is deleted on" in said
    )
    assert "2027-01-06 09:30 UTC unless back in the source" in said


async def test_a_leaver_back_under_a_new_source_id_keeps_the_account_the_grace_would_have_deleted(
    tmp_path: Path, slapd: Slapd
) -> None:
    """HR gives a returner a new worker id, their employee number survives: the create matches their
    old entry by it and links it. At the end of the old id's grace that entry is someone's again: the
    old object is forgotten, the entry not deleted."""
    rows = [ldap_person(i, worker_id=f"W{i}") for i in range(3)]
    write_people(tmp_path, rows)
    raw = {
        "engine": {"batch_size": 50, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "worker_id"},
                "target": "directory",
                "mappings": PEOPLE_MAPPINGS,  # employeeNumber from employee_id, matched on
                "delete_after_days": GRACE_DAYS,
                "deletion_guard": False,
                "source_max_drop_percent": 100,
            }
        ],
        "targets": [ldap_target(slapd)],
    }
    async with pipeline(tmp_path, raw) as p:
        (job,) = p.runner.config.jobs
        await p.runner.run_cycle(job)
        old_dn = (await p.state.entry("people", "W1")).target_id  # type: ignore[union-attr]
        write_people(tmp_path, [rows[0], rows[2]])
        assert (await p.runner.run_cycle(job)).disabled == 1

        write_people(tmp_path, [rows[0], rows[2], {**rows[1], "worker_id": "W9"}])
        rehired = await p.runner.run_cycle(job)
        assert rehired.created == 1, rehired
        assert (await p.state.entry("people", "W9")).target_id == old_dn  # type: ignore[union-attr]

        p.runner.clock = lambda: time.time() + (GRACE_DAYS + 1) * DAY
        after = await p.runner.run_cycle(job)
        assert (after.deleted, after.failed) == (0, 0), after
        assert await p.state.entry("people", "W1") is None  # forgotten
        assert (await Admin(p.runner, None).status("people")).pending_deletions == []
    held = ldap_people(slapd)
    assert set(held) == {"E00000", "E00001", "E00002"}
    assert canonical_dn(held["E00001"]["dn"][0]) == canonical_dn(old_dn)  # type: ignore[arg-type]
    assert held["E00001"].get("employeetype", []) == []  # enabled again by the create that matched it
