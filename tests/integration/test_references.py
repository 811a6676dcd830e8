"""A management tree into real targets: each person's manager is sent as the manager's id in the target
(SCIM id in scim2-server, DN in slapd, key in SQLite), managers listed after their reports, a few
people without one. Forward references are set by the next cycle; a manager who leaves has their
reports moved to another; a manager renamed in the directory moves every report's `manager` DN. Each
test reads every object back and checks its manager."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from engine.core.references import ResolvedReference
from engine.pipeline.dryrun import PlannedObject, plan_job
from engine.pipeline.ondemand import preview_from_state
from engine.pipeline.reconciling import reconcile
from tests.integration.pipeline import job_config, pipeline, sql_target, target_rows
from tests.integration.pipeline import person as sql_person
from tests.integration.test_ldap_cycle import PEOPLE_MAPPINGS
from tests.integration.test_ldap_cycle import files_config as ldap_config
from tests.integration.test_ldap_cycle import people as ldap_people
from tests.integration.test_ldap_cycle import person as ldap_person
from tests.integration.test_ldap_cycle import write_sources as ldap_sources
from tests.integration.test_scim_groups import ENTERPRISE, config, person, read_all, write_sources
from tests.scim_server import ScimServer
from tests.slapd import Slapd

COUNT = 2_000


def sql_job(tmp_path: Path, *, mappings_extra: list[dict[str, Any]]) -> dict[str, Any]:
    raw = job_config(tmp_path)
    raw["jobs"][0]["mappings"] += mappings_extra
    return raw


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def manager_of(i: int) -> str:
    """A tree: E00000 leads; person i reports to (i - 1) // 5; every 17th has no manager."""
    return "" if i == 0 or i % 17 == 0 else f"E{(i - 1) // 5:05d}"


def tree(make: Any) -> list[dict[str, Any]]:
    rows = [make(i, manager=manager_of(i)) for i in range(COUNT)]
    return rows[::-1]  # reports before their managers


async def test_scim_managers_are_the_managers_scim_ids_and_follow_changes(
    tmp_path: Path, scim: ScimServer
) -> None:
    rows = tree(person)
    raw = config(tmp_path, scim.url)
    raw["jobs"] = raw["jobs"][:1]
    raw["jobs"][0]["mappings"].append(
        {"target": "enterprise.manager.value", "reference": {"source": "manager", "job": "people"}}
    )
    write_sources(tmp_path, rows, [])
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        second = await p.runner.run_cycle(job)
        assert_scim_managers(await read_all(scim, "Users"), rows)
        # read back, each manager is the id expected, not the manager's source id
        assert (await reconcile(p.runner, job, act=False)).situations == {"in_step": COUNT}
        # E00001 leaves; their reports move to E00002
        moved = [
            dict(r, manager="E00002") if r["manager"] == "E00001" else r
            for r in rows
            if r["employee_id"] != "E00001"
        ]
        write_sources(tmp_path, moved, [])
        third = await p.runner.run_cycle(job)
        fourth = await p.runner.run_cycle(job)

    with_manager = sum(1 for r in rows if r["manager"])
    assert (first.created, first.pending_references) == (COUNT, with_manager)  # none provisioned yet
    assert (second.updated, second.pending_references, second.failed) == (with_manager, 0, 0)
    assert (third.disabled, third.failed, fourth.updated) == (1, 0, 0)
    users = [u for u in await read_all(scim, "Users") if u.get("active", True)]
    assert_scim_managers(users, moved)


def assert_scim_managers(users: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    id_of = {u["externalId"]: u["id"] for u in users}
    held = {u["externalId"]: (u.get(ENTERPRISE) or {}).get("manager", {}).get("value") for u in users}
    assert held == {r["employee_id"]: id_of[r["manager"]] if r["manager"] else None for r in rows}


async def test_ldap_managers_are_dns_and_a_managers_rename_moves_them(tmp_path: Path, slapd: Slapd) -> None:
    rows = tree(ldap_person)
    mappings = [*PEOPLE_MAPPINGS, {"target": "manager", "reference": {"source": "manager", "job": "people"}}]
    raw = ldap_config(tmp_path, slapd, mappings=mappings)
    raw["jobs"] = raw["jobs"][:1]
    ldap_sources(tmp_path, rows, [])
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        await p.runner.run_cycle(job)
        second = await p.runner.run_cycle(job)
        assert second.pending_references == 0
        assert_ldap_managers(slapd, rows)
        renamed = [dict(r, login="chief") if r["employee_id"] == "E00001" else r for r in rows]  # a new DN
        ldap_sources(tmp_path, renamed, [])
        third = await p.runner.run_cycle(job)
        planned: list[PlannedObject] = []
        plan = await plan_job(job, p.state, planned.append)
        shown = await preview_from_state(job, "E00007", p.state)
        fourth = await p.runner.run_cycle(job)
        fifth = await p.runner.run_cycle(job)

    # the rename, then the rename's 5 reports (planned against the DN the state held), then nothing
    assert (third.updated, third.failed, fourth.updated, fourth.failed, fifth.updated) == (1, 0, 5, 0, 0)
    assert_ldap_managers(slapd, renamed)
    chief = ldap_people(slapd)["E00001"]["dn"][0]
    assert chief.startswith("uid=chief,")
    # the plan before the fourth cycle: each report's manager DN, and the source id that names it
    assert plan.counts()["updated"] == 5 and {o.source_id for o in planned} == {
        f"E{i:05d}" for i in range(6, 11)
    }
    for planned_object in planned:
        assert [c.attribute for c in planned_object.diff.attributes] == ["manager"]
        assert planned_object.references == (ResolvedReference("manager", "people", "E00001", chief),)
    assert shown.action == "update" and shown.references == [
        ResolvedReference("manager", "people", "E00001", chief)
    ]


def assert_ldap_managers(server: Slapd, rows: list[dict[str, Any]]) -> None:
    held = ldap_people(server)
    dn_of = {number: entry["dn"][0] for number, entry in held.items()}
    managers = {number: entry.get("manager", [None])[0] for number, entry in held.items()}
    assert managers == {r["employee_id"]: dn_of[r["manager"]] if r["manager"] else None for r in rows}


async def test_sql_managers_are_the_managers_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = tree(lambda i, manager: {**sql_person(i), "manager": manager})
    write_rows(tmp_path / "people.csv", rows)
    raw = sql_job(
        tmp_path, mappings_extra=[{"target": "manager", "reference": {"source": "manager", "job": "people"}}]
    )
    columns = {
        c: c for c in ("employee_id", "first_name", "last_name", "email", "department", "company", "manager")
    }
    raw |= sql_target(url, columns=columns)
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        second = await p.runner.run_cycle(job)
        third = await p.runner.run_cycle(job)
        shown = await preview_from_state(job, "E00007", p.state)

    # the preview resolves the reference as the cycle does: nothing changed, the manager's key in place
    assert (shown.action, shown.mapped["manager"]) == ("nothing", "E00001")
    with_manager = sum(1 for r in rows if r["manager"])
    assert (first.pending_references, second.updated, second.pending_references, third.updated) == (
        with_manager,
        with_manager,
        0,
        0,
    )
    held = await target_rows(url)
    assert {k: r["manager"] for k, r in held.items()} == {
        r["employee_id"]: r["manager"] or None for r in rows
    }


async def test_a_deleted_manager_is_cleared_from_the_reports_who_still_name_them(tmp_path: Path) -> None:
    """The source still names a manager who left, and the job deletes who leaves: the reports' manager
    is emptied in the target (no key of a row that is gone), and they wait for the reference."""
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = tree(lambda i, manager: {**sql_person(i), "manager": manager})
    write_rows(tmp_path / "people.csv", rows)
    raw = sql_job(
        tmp_path, mappings_extra=[{"target": "manager", "reference": {"source": "manager", "job": "people"}}]
    )
    raw["jobs"][0]["deprovision"] = "delete"
    columns = {
        c: c for c in ("employee_id", "first_name", "last_name", "email", "department", "company", "manager")
    }
    raw |= sql_target(url, columns=columns)
    reports = [r["employee_id"] for r in rows if r["manager"] == "E00001"]
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        await p.runner.run_cycle(job)
        await p.runner.run_cycle(job)
        write_rows(tmp_path / "people.csv", [r for r in rows if r["employee_id"] != "E00001"])
        gone = await p.runner.run_cycle(job)
        after = await p.runner.run_cycle(job)
        later = await p.runner.run_cycle(job)

    held = await target_rows(url)
    assert "E00001" not in held and gone.deleted == 1
    assert {k: held[k]["manager"] for k in reports} == dict.fromkeys(reports)
    assert sorted(k for k, r in held.items() if r["manager"] is None) == sorted(
        [r["employee_id"] for r in rows if not r["manager"]] + reports
    )
    # the reports were updated once: the cycle after the deletion, whose state no longer knows E00001
    assert (gone.updated, after.updated, later.updated) == (0, len(reports), 0)
    assert after.pending_references == later.pending_references == len(reports)
