"""Nested groups (groups whose members include groups of the same job) into a real scim2-server and a
real slapd: depth 3 listed outermost first lands in one cycle, a nested member's removal reaches the
target, and a nesting loop fails the groups in it with the loop named. Each test reads the target back
and compares every group's members with the source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.peers.ldap_names import canonical_dn
from engine.config import in_dependency_order
from engine.model import CycleSummary
from engine.pipeline.reconciling import reconcile
from tests.integration import test_ldap_cycle as ldap
from tests.integration.pipeline import pipeline
from tests.integration.test_reconcile import scim_call
from tests.integration.test_scim_groups import config as scim_config
from tests.integration.test_scim_groups import person, read_all
from tests.integration.test_scim_groups import write_sources as scim_sources
from tests.scim_server import ScimServer
from tests.slapd import ROOT_DN, Slapd

NESTED = {"source": "members", "job": "people", "groups": ["teams"]}


def depth_three() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Six people; G3 holds E0-E2, G2 holds G3 and E3, G1 holds G2 and E4; listed G1, G2, G3 (each group
    before the group it contains), and G4 holding a person only."""
    people = [person(i) for i in range(6)]
    groups = [
        {"group_id": "G1", "name": "Outer", "members": ["G2", "E00004"]},
        {"group_id": "G2", "name": "Middle", "members": ["E00003", "G3"]},
        {"group_id": "G3", "name": "Inner", "members": ["E00000", "E00001", "E00002"]},
        {"group_id": "G4", "name": "Plain", "members": ["E00005"]},
    ]
    return people, groups


async def run_all(p: Any) -> dict[str, CycleSummary]:
    jobs = in_dependency_order(p.runner.config.jobs)
    return {job.name: await p.runner.run_cycle(job) for job in jobs}


# -- SCIM ----------------------------------------------------------------------------------------------


def nested_scim_config(tmp_path: Path, url: str) -> dict[str, Any]:
    raw = scim_config(tmp_path, url)
    raw["jobs"][1]["members"] = dict(NESTED)
    return raw


async def scim_groups(server: ScimServer) -> dict[str, list[tuple[str, str | None]]]:
    """Each group's members by externalId, with the type the server holds: (externalId, type)."""
    users = {u["id"]: u["externalId"] for u in await read_all(server, "Users")}
    groups = await read_all(server, "Groups")
    ids = {**users, **{g["id"]: g["externalId"] for g in groups}}
    return {
        g["externalId"]: sorted(
            (ids.get(m["value"], m["value"]), m.get("type")) for m in g.get("members") or []
        )
        for g in groups
    }


def scim_expected(groups: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    return {
        g["group_id"]: sorted((m, "Group" if m.startswith("G") else "User") for m in g["members"])
        for g in groups
    }


async def test_groups_nested_three_deep_land_in_scim_in_one_cycle_whatever_the_source_order(
    tmp_path: Path, scim: ScimServer
) -> None:
    people, groups = depth_three()
    scim_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, nested_scim_config(tmp_path, scim.url)) as p:
        done = await run_all(p)
        held = await scim_groups(scim)
        again = await run_all(p)

    teams = done["teams"]
    assert (teams.created, teams.failed, teams.pending_members) == (4, 0, 0)
    assert held == scim_expected(groups)
    assert (again["teams"].created, again["teams"].updated, again["teams"].unchanged) == (0, 0, 4)


async def test_a_nested_group_removed_from_its_parent_leaves_it_in_scim(
    tmp_path: Path, scim: ScimServer
) -> None:
    people, groups = depth_three()
    scim_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, nested_scim_config(tmp_path, scim.url)) as p:
        await run_all(p)
        groups[0]["members"] = ["E00004"]  # G2 leaves G1
        groups[1]["members"] = ["E00003", "G3", "G4"]  # G4 joins G2
        scim_sources(tmp_path, people, groups)
        done = await run_all(p)
        held = await scim_groups(scim)

    assert (done["teams"].updated, done["teams"].failed, done["teams"].pending_members) == (2, 0, 0)
    assert held == scim_expected(groups)


async def test_a_nesting_loop_fails_the_groups_in_it_naming_the_loop_and_provisions_the_rest(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(i) for i in range(3)]
    groups = [
        {"group_id": "G1", "name": "One", "members": ["G2", "E00000"]},
        {"group_id": "G2", "name": "Two", "members": ["G1", "E00001"]},  # G1 -> G2 -> G1
        {"group_id": "G5", "name": "Self", "members": ["G5"]},  # G5 -> G5
        {"group_id": "G6", "name": "Outside", "members": ["G1", "G7", "E00002"]},  # holds a looped group
        {"group_id": "G7", "name": "Fine", "members": ["E00002"]},
    ]
    scim_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, nested_scim_config(tmp_path, scim.url)) as p:
        done = await run_all(p)
        log = {r["source_id"]: r for r in await p.state.log_records("teams") if r["status"] == "failed"}
        held = await scim_groups(scim)
        groups[1]["members"] = ["E00001"]  # the loop of G1 and G2 broken; G5 still holds itself
        scim_sources(tmp_path, people, groups)
        fixed = await run_all(p)
        after = await scim_groups(scim)

    teams = done["teams"]
    assert (teams.created, teams.failed) == (2, 3)
    assert teams.status == "completed_with_failures"
    assert "G1 contains G2 contains G1" in log["G1"]["error_message"]
    assert "G2 contains G1 contains G2" in log["G2"]["error_message"]
    assert "G5 contains G5" in log["G5"]["error_message"]
    assert held == {"G6": [("E00002", "User"), ("G7", "Group")], "G7": [("E00002", "User")]}
    assert teams.pending_members == 1  # G1, in G6: never created
    assert [member for member, _ in teams.failed_members] == ["G1"]
    assert (fixed["teams"].created, fixed["teams"].updated, fixed["teams"].failed) == (2, 1, 1)  # G5 fails
    assert after == {
        **held,
        "G1": [("E00000", "User"), ("G2", "Group")],
        "G2": [("E00001", "User")],
        "G6": [("E00002", "User"), ("G1", "Group"), ("G7", "Group")],
    }


async def test_a_nested_group_taken_out_or_put_in_out_of_band_is_found_and_set_right_by_reconciliation(
    tmp_path: Path, scim: ScimServer
) -> None:
    people, groups = depth_three()
    scim_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, nested_scim_config(tmp_path, scim.url)) as p:
        _, teams = in_dependency_order(p.runner.config.jobs)
        await run_all(p)
        ids = {g["externalId"]: g["id"] for g in await read_all(scim, "Groups")}
        patch = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
        remove = {"op": "remove", "path": f'members[value eq "{ids["G2"]}"]'}
        add = {"op": "add", "path": "members", "value": [{"value": ids["G4"], "type": "Group"}]}
        await scim_call(scim, "PATCH", f"/Groups/{ids['G1']}", {"schemas": [patch], "Operations": [remove]})
        await scim_call(scim, "PATCH", f"/Groups/{ids['G3']}", {"schemas": [patch], "Operations": [add]})

        found = await reconcile(p.runner, teams)
        again = await reconcile(p.runner, teams)
        held = await scim_groups(scim)

    drift = {f.source_id: [(d.attribute, d.expected, d.found) for d in f.drift] for f in found.findings}
    assert drift == {"G1": [("members", [ids["G2"]], [])], "G3": [("members", [], [ids["G4"]])]}
    assert again.situations == {"in_step": 4}
    assert held == scim_expected(groups)


async def test_groups_of_another_group_job_are_members_once_that_job_ran_first(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(i) for i in range(4)]
    teams = [
        {"group_id": "T1", "name": "Team 1", "members": ["E00000", "E00001"]},
        {"group_id": "T2", "name": "Team 2", "members": ["E00002"]},
    ]
    divisions = [{"group_id": "D1", "name": "Division 1", "members": ["T1", "T2", "E00003"]}]
    scim_sources(tmp_path, people, teams)
    (tmp_path / "divisions.jsonl").write_text("".join(json.dumps(d) + "\n" for d in divisions))
    raw = scim_config(tmp_path, scim.url)
    division_job = {
        **raw["jobs"][1],
        "name": "divisions",
        "source": {"path": str(tmp_path / "divisions.jsonl"), "id_column": "group_id"},
        "members": {"source": "members", "job": "people", "groups": ["teams"]},
    }
    raw["jobs"].insert(0, division_job)  # listed first: run after the job whose groups it holds
    async with pipeline(tmp_path, raw) as p:
        assert [job.name for job in in_dependency_order(p.runner.config.jobs)] == [
            "people",
            "teams",
            "divisions",
        ]
        done = await run_all(p)
        held = await scim_groups(scim)

    assert (done["divisions"].created, done["divisions"].pending_members) == (1, 0)
    assert held == scim_expected(teams) | {"D1": [("E00003", "User"), ("T1", "Group"), ("T2", "Group")]}


# -- LDAP ----------------------------------------------------------------------------------------------


def nested_ldap_config(tmp_path: Path, server: Slapd) -> dict[str, Any]:
    raw = ldap.files_config(tmp_path, server)
    raw["jobs"][1]["members"] = dict(NESTED)
    return raw


def ldap_groups(server: Slapd) -> dict[str, list[str]]:
    """Each group's members by cn: a user's employeeNumber, a group's cn."""
    users = {
        canonical_dn(dn): e["employeenumber"][0]
        for dn, e in server.entries(ldap.PEOPLE).items()
        if "employeenumber" in e
    }
    entries = server.entries(ldap.GROUPS, "(objectClass=groupOfNames)", ["cn", "member"])
    names = {canonical_dn(dn): e["cn"][0] for dn, e in entries.items()}
    of = {**users, **names}
    return {
        e["cn"][0]: sorted(of.get(canonical_dn(m), m) for m in e.get("member", [])) for e in entries.values()
    }


def ldap_expected(groups: list[dict[str, Any]]) -> dict[str, list[str]]:
    names = {g["group_id"]: g["name"] for g in groups}
    return {g["name"]: sorted(names.get(m, m) for m in g["members"]) for g in groups}


def ldap_sources(tmp_path: Path, people: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    rows = [ldap.person(i, employee_id=row["employee_id"]) for i, row in enumerate(people)]
    teams = [{"team_id": g["group_id"], "name": g["name"], "members": g["members"]} for g in groups]
    ldap.write_sources(tmp_path, rows, teams)


async def test_groups_nested_three_deep_land_in_slapd_in_one_cycle_and_a_removal_follows(
    tmp_path: Path, slapd: Slapd
) -> None:
    people, groups = depth_three()
    ldap_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, nested_ldap_config(tmp_path, slapd)) as p:
        done = await run_all(p)
        first = ldap_groups(slapd)
        groups[0]["members"] = ["E00004"]  # Middle leaves Outer
        groups[3]["members"] = ["E00005", "G3"]  # Inner joins Plain
        ldap_sources(tmp_path, people, groups)
        again = await run_all(p)
        second = ldap_groups(slapd)

    assert (done["teams"].created, done["teams"].failed, done["teams"].pending_members) == (4, 0, 0)
    assert first == ldap_expected(depth_three()[1])
    assert (again["teams"].updated, again["teams"].failed) == (2, 0)
    assert second == ldap_expected(groups)


async def test_a_nested_group_renamed_or_deleted_in_slapd_is_relinked_in_the_groups_that_hold_it(
    tmp_path: Path, slapd: Slapd
) -> None:
    people, groups = depth_three()
    groups[0]["members"] = ["G2", "G4"]  # Outer holds Middle and Plain, no person
    ldap_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, nested_ldap_config(tmp_path, slapd)) as p:
        users, teams = in_dependency_order(p.runner.config.jobs)
        await run_all(p)
        groups[2]["name"] = "Inner Renamed"  # a new cn, so a new DN: Middle must follow it
        del groups[3]  # Plain leaves the source (deleted), though Outer still names it
        ldap_sources(tmp_path, people, groups)
        await p.runner.run_cycle(users)
        done = await p.runner.run_cycle(teams, approved=frozenset({"G4"}))
        held = ldap_groups(slapd)
        again = await p.runner.run_cycle(teams)
        after = ldap_groups(slapd)

    assert (done.updated, done.deleted, done.failed) == (2, 1, 0)  # Middle and Inner; Plain
    expected = {"Middle": ["E00003", "Inner Renamed"], "Inner Renamed": ["E00000", "E00001", "E00002"]}
    assert held == {"Outer": ["Middle"], **expected}  # Plain's DN left Outer with Plain
    assert (again.failed, again.pending_members) == (0, 1)  # Plain, named by Outer, is gone
    assert after == held


async def test_a_group_whose_only_member_is_a_nested_group_keeps_the_stand_in_while_it_is_out(
    tmp_path: Path, slapd: Slapd
) -> None:
    people, groups = depth_three()
    groups[0]["members"] = ["G2"]  # Outer holds Middle only
    ldap_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, nested_ldap_config(tmp_path, slapd)) as p:
        await run_all(p)
        groups[0]["members"] = []
        ldap_sources(tmp_path, people, groups)
        emptied = await run_all(p)
        empty = ldap_groups(slapd)["Outer"]
        groups[0]["members"] = ["G2"]
        ldap_sources(tmp_path, people, groups)
        back = await run_all(p)
        held = ldap_groups(slapd)

    assert (emptied["teams"].updated, emptied["teams"].failed) == (1, 0)
    assert [canonical_dn(m) for m in empty] == [canonical_dn(ROOT_DN)]  # the bind DN keeps it valid
    assert (back["teams"].updated, back["teams"].failed) == (1, 0)
    assert held == ldap_expected(groups)
