"""Reconciliation against real targets: out-of-band edits, deletions and additions made straight in
the target are classified exactly, corrected per the job's policy, and the next reconciliation finds
everything in step. An orphan is reported and left alone under the default policy.

Each test reads the target back with a client of its own and checks it object by object.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import ldap3
import pytest

from engine.cli.embedded import Embedded
from engine.config import JobConfig
from engine.core.reconcile import Finding
from engine.pipeline.reconciling import ReconcileSummary, reconcile
from engine.pipeline.scheduler import Scheduler
from tests.databases import private_database
from tests.integration.pipeline import (
    expected_row,
    job_config,
    person,
    pipeline,
    sql_target,
    target_rows,
    write_csv,
)
from tests.integration.test_ldap_cycle import GROUPS, PEOPLE, groups_by_cn
from tests.integration.test_ldap_cycle import expected as ldap_expected
from tests.integration.test_ldap_cycle import files_config as ldap_config
from tests.integration.test_ldap_cycle import people as ldap_people
from tests.integration.test_ldap_cycle import person as ldap_person
from tests.integration.test_ldap_cycle import teams as ldap_teams
from tests.integration.test_ldap_cycle import write_sources as ldap_sources
from tests.integration.test_scim_groups import (
    ENTERPRISE,
    config,
    expected_user,
    read_all,
    stored_user,
    write_sources,
)
from tests.integration.test_scim_groups import person as scim_person
from tests.integration.test_scim_groups import teams as scim_teams
from tests.scim_server import ScimServer
from tests.slapd import READER_DN, ROOT_DN, Slapd


def by_situation(summary: ReconcileSummary) -> dict[str, set[str]]:
    """The findings not in step, by situation: the source id, or the target id of an orphan."""
    found: dict[str, set[str]] = {}
    for finding in summary.findings:
        found.setdefault(finding.situation, set()).add(_who(finding))
    return found


def _who(finding: Finding) -> str:
    return finding.source_id if finding.source_id is not None else f"target:{finding.target_id}"


# -- SCIM (scim2-server) ------------------------------------------------------------------------------


async def scim_call(server: ScimServer, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, f"{server.url}{path}", json=body) as answer:
            assert answer.status < 300, await answer.text()
            return await answer.json(content_type=None) if answer.status != 204 else None


async def test_scim_drift_deletion_and_additions_are_found_exactly_and_set_right(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [scim_person(i) for i in range(60)]
    raw = config(tmp_path, scim.url)
    raw["jobs"] = raw["jobs"][:1]
    write_sources(tmp_path, people[:59], [])
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        assert (await p.runner.run_cycle(job)).created == 59
        users = {u["externalId"]: u for u in await read_all(scim, "Users")}
        # Out of band: a title and a department changed, one account deleted, a stranger added, and the
        # 60th person created by another tool before the source has them.
        drifted = users["E00002"]
        await scim_call(
            scim,
            "PATCH",
            f"/Users/{drifted['id']}",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "replace", "path": "title", "value": "HACKED"},
                    {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Nowhere"},
                ],
            },
        )
        await scim_call(scim, "DELETE", f"/Users/{users['E00003']['id']}")
        stranger = await scim_call(
            scim,
            "POST",
            "/Users",
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory@example.org"},
        )
        newcomer = people[59]
        existing = await scim_call(
            scim,
            "POST",
            "/Users",
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": newcomer["login"],
                "externalId": newcomer["employee_id"],
            },
        )
        write_sources(tmp_path, people, [])

        found = await reconcile(p.runner, job)

        assert found.status == "succeeded"
        assert by_situation(found) == {
            "drifted": {"E00002"},
            "missing": {"E00003"},
            "unlinked": {newcomer["employee_id"]},
            "orphan": {f"target:{stranger['id']}"},
        }
        assert found.situations["in_step"] == 57
        drift = next(f for f in found.findings if f.situation == "drifted").drift
        assert {(d.attribute, d.expected, d.found) for d in drift} == {
            ("title", people[2]["title"] or "Staff", "HACKED"),
            ("enterprise.department", people[2]["department"], "Nowhere"),
        }
        assert found.cycle is not None and found.cycle.failed == 0

        again = await reconcile(p.runner, job)

    assert again.situations == {"in_step": 60, "orphan": 1}
    assert by_situation(again) == {"orphan": {f"target:{stranger['id']}"}}
    users = {u.get("externalId"): u for u in await read_all(scim, "Users")}
    assert users[newcomer["employee_id"]]["id"] == existing["id"]  # linked, not created again
    assert users[None]["userName"] == "mallory@example.org"  # the orphan, untouched
    assert {k: stored_user(u) for k, u in users.items() if k is not None} == {
        row["employee_id"]: expected_user(row) for row in people
    }


async def test_scim_report_only_changes_nothing_and_says_the_same_twice(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [scim_person(i) for i in range(20)]
    raw = config(tmp_path, scim.url)
    raw["jobs"] = raw["jobs"][:1]
    write_sources(tmp_path, people, [])
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        await p.runner.run_cycle(job)
        user = next(u for u in await read_all(scim, "Users") if u["externalId"] == "E00005")
        await scim_call(scim, "PUT", f"/Users/{user['id']}", {**user, "title": "HACKED"})
        first = await reconcile(p.runner, job, act=False)
        second = await reconcile(p.runner, job, act=False)
        cycle = await p.runner.run_cycle(job)

    assert by_situation(first) == by_situation(second) == {"drifted": {"E00005"}}
    assert first.corrections == {} and first.cycle is None
    assert (cycle.updated, cycle.created) == (0, 0)  # the state still says what was applied
    user = next(u for u in await read_all(scim, "Users") if u["externalId"] == "E00005")
    assert user["title"] == "HACKED"


# -- SQL (SQLite, PostgreSQL) -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'target.db'}"
        return
    with private_database("roster_reconcile") as url:
        yield url


def sql_edit(url: str, statements: list[str]) -> None:
    """Change the target table straight, as another tool would."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for statement in statements:
                conn.execute(statement)
        return

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


async def test_sql_drift_deletion_orphans_and_leavers_are_classified_and_set_right(
    tmp_path: Path, sql_url: str
) -> None:
    people = [person(i) for i in range(40)]
    write_csv(tmp_path / "people.csv", people)
    raw = job_config(tmp_path) | sql_target(sql_url)
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        assert (await p.runner.run_cycle(job)).created == 40
        write_csv(tmp_path / "people.csv", people[:39])  # E00039 leaves: disabled
        assert (await p.runner.run_cycle(job)).disabled == 1
        sql_edit(
            sql_url,
            [
                "UPDATE accounts SET department = 'HACKED' WHERE employee_id = 'E00001'",
                "UPDATE accounts SET email = NULL, last_name = 'X' WHERE employee_id = 'E00002'",
                "DELETE FROM accounts WHERE employee_id = 'E00003'",
                "INSERT INTO accounts (employee_id, first_name, active) VALUES ('X0001', 'Mallory', TRUE)",
            ],
        )

        found = await reconcile(p.runner, job)
        again = await reconcile(p.runner, job)

    assert by_situation(found) == {
        "drifted": {"E00001", "E00002"},
        "missing": {"E00003"},
        "orphan": {"target:X0001"},
    }
    assert found.situations == {"in_step": 36, "drifted": 2, "missing": 1, "orphan": 1, "deprovisioned": 1}
    drift = {
        f.source_id: {d.attribute: (d.expected, d.found) for d in f.drift} for f in found.findings if f.drift
    }
    assert drift == {
        "E00001": {"department": ("Unassigned", "HACKED")},
        "E00002": {"email": ("user2@example.org", None), "last_name": (people[2]["family_name"], "X")},
    }
    assert again.situations == {"in_step": 39, "orphan": 1, "deprovisioned": 1}
    rows = await target_rows(sql_url)
    assert {k: {c: r[c] for c in expected_row(people[0])} for k, r in rows.items() if k != "X0001"} == {
        row["employee_id"]: expected_row(row) for row in people
    }
    assert rows["X0001"]["first_name"] == "Mallory" and rows["X0001"]["active"] in (1, True)  # reported only
    assert rows["E00039"]["active"] in (0, False)


@asynccontextmanager
async def provisioned(
    tmp_path: Path, count: int, **job: Any
) -> AsyncIterator[tuple[Embedded, JobConfig, str]]:
    """`count` people provisioned into a SQLite table by one cycle of a job with `job`'s settings: the
    pipeline, the job and the table's URL."""
    url = f"sqlite:///{tmp_path / 'target.db'}"
    write_csv(tmp_path / "people.csv", [person(i) for i in range(count)])
    async with pipeline(tmp_path, job_config(tmp_path, **job) | sql_target(url)) as p:
        job_config_ = p.runner.config.jobs[0]
        await p.runner.run_cycle(job_config_)
        yield p, job_config_, url


async def test_orphans_are_deleted_only_when_the_policy_says_and_the_deletion_guard_or_a_person_lets_it(
    tmp_path: Path,
) -> None:
    people = [person(i) for i in range(10)]
    guard = {"count": 2, "percent": 100}
    async with provisioned(tmp_path, 10, reconcile={"orphan": "delete"}, deletion_guard=guard) as (
        p,
        job,
        url,
    ):
        strangers = [f"X{i:04d}" for i in range(3)]
        sql_edit(url, [f"INSERT INTO accounts (employee_id, active) VALUES ('{s}', TRUE)" for s in strangers])

        held = await reconcile(p.runner, job)  # 3 orphans > the guard's 2: reported, not deleted
        assert held.status == "held" and "deletion guard" in (held.held or "")
        assert set(await _keys(url)) == {*strangers, *(row["employee_id"] for row in people)}

        assert "--approve-orphans" in (held.held or "")
        metric = p.runner.metrics.registry.get_sample_value
        assert metric("roster_reconcile_objects", {"job": "people", "situation": "orphan"}) == 3
        assert metric("roster_reconcile_objects", {"job": "people", "situation": "in_step"}) == 10

        approved = await reconcile(p.runner, job, approve_orphans=True)
        assert approved.status == "succeeded" and approved.corrections == {"delete": 3}
        assert approved.orphan_results.get("deleted") == 3

        after = await reconcile(p.runner, job)
        assert metric("roster_reconcile_objects", {"job": "people", "situation": "orphan"}) == 0

    assert after.situations == {"in_step": 10}
    assert set(await _keys(url)) == {row["employee_id"] for row in people}


async def test_a_source_read_with_bad_rows_never_acts_on_orphans(tmp_path: Path) -> None:
    async with provisioned(tmp_path, 10, reconcile={"orphan": "disable"}) as (p, job, url):
        with (tmp_path / "people.csv").open("ab") as f:
            f.write(b'E00099,"unterminated\n')  # a torn last row: the read is incomplete
        sql_edit(url, ["INSERT INTO accounts (employee_id, active) VALUES ('X0001', TRUE)"])
        found = await reconcile(p.runner, job)

    assert found.status == "held" and "could not be read" in (found.held or "")
    assert by_situation(found) == {"orphan": {"target:X0001"}}
    rows = await target_rows(url)
    assert rows["X0001"]["active"] in (1, True)


async def test_a_target_that_cannot_be_listed_fails_the_reconciliation_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with provisioned(tmp_path, 5) as (p, job, url):
        sql_edit(url, ["DROP TABLE accounts"])
        found = await reconcile(p.runner, job)
        entries = await p.state.snapshot("people")

    assert found.status == "failed" and "could not be listed" in (found.error or "")
    assert len(entries) == 5 and all(e.applied_hash for e in entries.values())


async def _keys(url: str) -> list[str]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return [row[0] for row in conn.execute("SELECT employee_id FROM accounts")]


# -- LDAP (a private slapd) ---------------------------------------------------------------------------


async def test_ldap_drift_deletion_and_a_stranger_are_found_exactly_and_set_right(
    tmp_path: Path, slapd: Slapd
) -> None:
    rows = [ldap_person(i) for i in range(30)]
    ldap_sources(tmp_path, rows, [])
    raw = ldap_config(tmp_path, slapd)
    raw["jobs"] = raw["jobs"][:1]
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        assert (await p.runner.run_cycle(job)).created == 30
        held = ldap_people(slapd)
        conn = ldap3.Connection(
            ldap3.Server(slapd.url, get_info=ldap3.NONE), ROOT_DN, slapd.password, auto_bind=True
        )
        try:
            conn.modify(held["E00010"]["dn"][0], {"givenName": [(ldap3.MODIFY_REPLACE, ["HACKED"])]})
            conn.modify(held["E00011"]["dn"][0], {"mail": [(ldap3.MODIFY_DELETE, [])]})
            conn.delete(held["E00012"]["dn"][0])
            stranger = f"uid=mallory,{PEOPLE}"
            conn.add(stranger, ["inetOrgPerson"], {"sn": "M", "cn": "Mallory", "employeeNumber": "X0001"})
        finally:
            conn.unbind()

        found = await reconcile(p.runner, job)
        again = await reconcile(p.runner, job)

    assert by_situation(found) == {
        "drifted": {"E00010", "E00011"},
        "missing": {"E00012"},
        "orphan": {f"target:{stranger}"},
    }
    drift = {
        f.source_id: {d.attribute: (d.expected, d.found) for d in f.drift} for f in found.findings if f.drift
    }
    assert drift == {
        "E00010": {"givenName": (rows[10]["given_name"], "HACKED")},
        "E00011": {"email": (rows[11]["email"], None)},
    }
    assert again.situations == {"in_step": 30, "orphan": 1}
    held = ldap_people(slapd)
    assert {k: {a: e[a] for a in ldap_expected(rows[0])} for k, e in held.items() if k != "X0001"} == {
        row["employee_id"]: ldap_expected(row) for row in rows
    }
    assert held["X0001"]["cn"] == ["Mallory"]  # the orphan, reported and left alone


async def test_a_reconcile_schedule_sets_drift_right_without_being_asked(tmp_path: Path) -> None:
    people = [person(i) for i in range(5)]
    async with provisioned(tmp_path, 5, reconcile={"schedule": {"interval_s": 1}}) as (p, _job, url):
        sql_edit(url, ["UPDATE accounts SET department = 'HACKED' WHERE employee_id = 'E00001'"])
        scheduler = Scheduler(p.runner, p.runner.config.jobs)  # the job has no schedule: one cycle
        running = asyncio.create_task(scheduler.run())
        for _ in range(100):
            if (await target_rows(url))["E00001"]["department"] != "HACKED":
                break
            await asyncio.sleep(0.05)
        scheduler.stop()
        await asyncio.wait_for(running, 30)
        last = await p.state.last_reconciled("people")

    assert (await target_rows(url))["E00001"]["department"] == expected_row(people[1])["department"]
    assert last is not None and last[1]["drifted"] == 1


async def test_a_source_that_cannot_be_read_fails_the_reconciliation_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with provisioned(tmp_path, 5, reconcile={"orphan": "delete"}) as (p, job, url):
        sql_edit(url, ["INSERT INTO accounts (employee_id, active) VALUES ('X0001', TRUE)"])
        (tmp_path / "people.csv").unlink()
        found = await reconcile(p.runner, job)

    assert found.status == "failed" and "the source could not be read" in (found.error or "")
    assert sorted(await _keys(url)) == [*(f"E{i:05d}" for i in range(5)), "X0001"]


# -- Group members (scim2-server, slapd) ------------------------------------------------------------


async def test_scim_members_removed_and_added_out_of_band_are_found_and_set_right(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [scim_person(i) for i in range(12)]
    groups = scim_teams(people, count=3)
    write_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, config(tmp_path, scim.url)) as p:
        users_job, teams_job = p.runner.config.jobs
        await p.runner.run_cycle(users_job)
        await p.runner.run_cycle(teams_job)
        users = {u["externalId"]: u["id"] for u in await read_all(scim, "Users")}
        stored = {g["externalId"]: g for g in await read_all(scim, "Groups")}
        foreign = await scim_call(
            scim,
            "POST",
            "/Users",
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "contractor@example.org"},
        )
        leaver = groups[0]["members"][0]
        joiner = next(m for m in groups[2]["members"] if m not in groups[1]["members"])
        patch = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
        await scim_call(
            scim,
            "PATCH",
            f"/Groups/{stored['G000']['id']}",
            {
                "schemas": [patch],
                "Operations": [{"op": "remove", "path": f'members[value eq "{users[leaver]}"]'}],
            },
        )
        await scim_call(
            scim,
            "PATCH",
            f"/Groups/{stored['G001']['id']}",
            {
                "schemas": [patch],
                "Operations": [
                    {
                        "op": "add",
                        "path": "members",
                        "value": [{"value": users[joiner]}, {"value": foreign["id"]}],
                    }
                ],
            },
        )

        found = await reconcile(p.runner, teams_job)
        again = await reconcile(p.runner, teams_job)

    drift = {f.source_id: [(d.attribute, d.expected, d.found) for d in f.drift] for f in found.findings}
    assert drift == {"G000": [("members", [users[leaver]], [])], "G001": [("members", [], [users[joiner]])]}
    assert found.situations == {"in_step": 1, "drifted": 2}
    assert again.situations == {"in_step": 3}
    held = {
        g["externalId"]: {m["value"] for m in g.get("members") or []} for g in await read_all(scim, "Groups")
    }
    assert held["G000"] == {users[m] for m in groups[0]["members"]}
    assert held["G001"] == {users[m] for m in groups[1]["members"]} | {foreign["id"]}  # theirs, kept
    assert held["G002"] == {users[m] for m in groups[2]["members"]}


async def test_ldap_members_removed_and_added_out_of_band_are_found_and_set_right(
    tmp_path: Path, slapd: Slapd
) -> None:
    rows = [ldap_person(i) for i in range(12)]
    groups = ldap_teams(rows, count=3)
    ldap_sources(tmp_path, rows, groups)
    async with pipeline(tmp_path, ldap_config(tmp_path, slapd)) as p:
        users_job, teams_job = p.runner.config.jobs
        await p.runner.run_cycle(users_job)
        await p.runner.run_cycle(teams_job)
        dns = {number: entry["dn"][0] for number, entry in ldap_people(slapd).items()}
        leaver = groups[0]["members"][0]
        joiner = next(m for m in groups[2]["members"] if m not in groups[1]["members"])
        conn = ldap3.Connection(
            ldap3.Server(slapd.url, get_info=ldap3.NONE), ROOT_DN, slapd.password, auto_bind=True
        )
        try:
            assert conn.modify(f"cn=Team 000,{GROUPS}", {"member": [(ldap3.MODIFY_DELETE, [dns[leaver]])]})
            assert conn.modify(
                f"cn=Team 001,{GROUPS}", {"member": [(ldap3.MODIFY_ADD, [dns[joiner], READER_DN])]}
            )
        finally:
            conn.unbind()

        found = await reconcile(p.runner, teams_job)
        again = await reconcile(p.runner, teams_job)

    drifted = {f.source_id: {d.attribute for d in f.drift} for f in found.findings}
    assert drifted == {"T000": {"members"}, "T001": {"members"}}
    assert again.situations == {"in_step": 3}
    members = groups_by_cn(slapd, "employeeNumber")
    assert members["Team 000"] == sorted(groups[0]["members"])
    assert members["Team 001"] == sorted([*groups[1]["members"], READER_DN])  # theirs, kept
    assert members["Team 002"] == sorted(groups[2]["members"])


async def test_an_orphan_disabled_by_policy_is_never_deleted_by_the_jobs_deprovision(tmp_path: Path) -> None:
    """`reconcile.orphan: disable` in a job that deletes who leaves: the orphan is disabled, and the
    cycles after leave it so; the next reconciliation finds it deprovisioned, no longer an orphan."""
    async with provisioned(tmp_path, 5, deprovision="delete", reconcile={"orphan": "disable"}) as (
        p,
        job,
        url,
    ):
        sql_edit(url, ["INSERT INTO accounts (employee_id, active) VALUES ('X0001', TRUE)"])
        found = await reconcile(p.runner, job)
        cycle = await p.runner.run_cycle(job)
        again = await reconcile(p.runner, job)

    assert found.corrections == {"disable": 1} and found.orphan_results.get("disabled") == 1
    assert (cycle.deleted, cycle.disabled, cycle.changed) == (0, 0, 0)
    assert again.situations == {"in_step": 5, "deprovisioned": 1}
    rows = await target_rows(url)
    assert rows["X0001"]["active"] in (0, False)


async def test_a_redacted_attributes_values_never_reach_a_finding_or_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    people = [person(i) for i in range(3)]
    write_csv(tmp_path / "people.csv", people)
    raw = job_config(tmp_path) | sql_target(url)
    mappings = raw["jobs"][0]["mappings"]
    mappings[:] = [m for m in mappings if m["target"] != "email"] + [
        {"target": "email", "expression": "Redact([email])"}
    ]
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        await p.runner.run_cycle(job)
        sql_edit(url, ["UPDATE accounts SET email = 'leaked-secret@x.org' WHERE employee_id = 'E00001'"])
        found = await reconcile(p.runner, job, act=False)
        records = await p.state.log_records("people", cycle_id=found.cycle_id)

    [finding] = found.findings
    assert [(d.attribute, d.expected, d.found) for d in finding.drift] == [("email", "***", "***")]
    text = repr(records) + finding.describe()
    assert "leaked-secret" not in text and "user1@example.org" not in text
    assert "email: expected '***', found '***'" in finding.describe()
