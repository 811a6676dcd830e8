"""Whole cycles into a real OpenLDAP (private slapd instances), users and groups through the engine: from
files, and from one directory into another. Each test compares the directory with its source entry by
entry and group member by member, read back with a connection of our own."""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ldap3

from common.peers.ldap_names import canonical_dn, escape_dn_value, same_dn
from engine.cli.embedded import Embedded
from engine.config import in_dependency_order
from engine.model import CycleSummary
from tests.integration.pipeline import pipeline
from tests.slapd import READER_DN, ROOT_DN, SUFFIX, Slapd, target_settings

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
COLUMNS = ("employee_id", "login", "given_name", "family_name", "email")
AWKWARD = ["nuñez, jr.", "a+b", 'say "hi"', "#hash", "zoë ångström", "star*(x)\\", "semi;<x>="]
USERS = 3000
TEAMS = 100


def person(i: int, **overrides: Any) -> dict[str, Any]:
    login = AWKWARD[i] if i < len(AWKWARD) else f"user{i}"
    row = {
        "employee_id": f"E{i:05d}",
        "login": login,
        "given_name": ["José", "Zoë", "Siobhán", "Łukasz"][i % 4],
        "family_name": ["O'Brien", "Müller", "Nuñez, Jr.", "D'Angelo"][i % 4],
        "email": f"user{i}@example.org",
    }
    row.update(overrides)
    return row


def teams(rows: list[dict[str, Any]], count: int = TEAMS) -> list[dict[str, Any]]:
    """Each person in two teams, `i % count` and `(i * 7 + 3) % count`: member sets that overlap."""
    members: dict[int, list[str]] = {g: [] for g in range(count)}
    for i, row in enumerate(rows):
        for g in dict.fromkeys((i % count, (i * 7 + 3) % count)):
            members[g].append(row["employee_id"])
    return [{"team_id": f"T{g:03d}", "name": f"Team {g:03d}", "members": m} for g, m in members.items()]


def write_sources(tmp_path: Path, rows: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    """people.csv (its columns those of the first row, else `COLUMNS`) and groups.jsonl."""
    with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=tuple(rows[0]) if rows else COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with (tmp_path / "groups.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(g, ensure_ascii=False) + "\n" for g in groups)


PEOPLE_MAPPINGS = [
    {"target": "employeeNumber", "source": "employee_id", "match": True},
    {"target": "userName", "source": "login"},
    {"target": "givenName", "source": "given_name"},
    {"target": "familyName", "source": "family_name"},
    {"target": "displayName", "expression": 'Join(" ", [given_name], [family_name])'},
    {"target": "email", "source": "email"},
]


def target(server: Slapd, *, first_delay_ms: int = 200, tiers: int = 6, **users: Any) -> dict[str, Any]:
    return {
        "name": "directory",
        "type": "ldap",
        **target_settings(server, users={"match": "employeeNumber", **users}, connect_timeout_s=1),
        "retry": {"first_delay_ms": first_delay_ms, "multiplier": 2, "tiers": tiers},
    }


def files_config(
    tmp_path: Path,
    server: Slapd,
    *,
    mappings: Sequence[dict[str, Any]] = PEOPLE_MAPPINGS,
    batch_size: int = 200,
    **retry: int,
) -> dict[str, Any]:
    """Job `people` from people.csv and job `teams` (its members people) from groups.jsonl into one
    directory; `retry` is `target`'s."""
    return {
        "engine": {"batch_size": batch_size, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "employee_id"},
                "target": "directory",
                "mappings": list(mappings),
            },
            {
                "name": "teams",
                "object_type": "group",
                "source": {"type": "jsonl", "path": str(tmp_path / "groups.jsonl"), "id_column": "team_id"},
                "target": "directory",
                "members": {"source": "members", "job": "people"},
                "mappings": [{"target": "displayName", "source": "name", "match": True}],
            },
        ],
        "targets": [target(server, **retry)],
    }


async def cycle(p: Embedded, order: tuple[str, ...] | None = None) -> dict[str, CycleSummary]:
    """One cycle of each job (users first, unless `order` says otherwise); the summaries by job."""
    jobs = {job.name: job for job in p.runner.config.jobs}
    names = order or tuple(job.name for job in in_dependency_order(p.runner.config.jobs))
    return {name: await p.runner.run_cycle(jobs[name]) for name in names}


def expected(row: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "employeenumber": [row["employee_id"]],
        "uid": [row["login"]],
        "givenname": [row["given_name"]],
        "sn": [row["family_name"]],
        "cn": [f"{row['given_name']} {row['family_name']}"],
        "mail": [row["email"]],
    }


def people(server: Slapd) -> dict[str, dict[str, list[str]]]:
    """Users by employeeNumber; fails on a duplicate."""
    entries = server.entries(PEOPLE, "(objectClass=inetOrgPerson)")
    numbers = Counter(e["employeenumber"][0] for e in entries.values())
    assert [n for n, c in numbers.items() if c > 1] == []
    return {e["employeenumber"][0]: {**e, "dn": [dn]} for dn, e in entries.items()}


def groups_by_cn(server: Slapd, key: str) -> dict[str, list[str]]:
    """Each group's members, by the `key` attribute of the member entries (a DN without one stays a DN)."""
    found = server.entries(PEOPLE, f"({key}=*)", [key])
    of = {canonical_dn(dn): e[key.lower()][0] for dn, e in found.items()}
    return {
        e["cn"][0]: sorted(of.get(canonical_dn(m), m) for m in e.get("member", []))
        for e in server.entries(GROUPS, "(objectClass=groupOfNames)", ["cn", "member"]).values()
    }


def assert_directory_equals(
    server: Slapd, rows: list[dict[str, Any]], groups: list[dict[str, Any]], disabled: set[str] = frozenset()
) -> None:
    """The directory holds each row once (disabled as said) and each group with exactly its members."""
    held = people(server)
    assert set(held) == {r["employee_id"] for r in rows}
    for row in rows:
        entry = held[row["employee_id"]]
        assert {k: entry[k] for k in expected(row)} == expected(row), row
        disabled_mark = ["disabled"] if row["employee_id"] in disabled else []
        assert entry.get("employeetype", []) == disabled_mark, row
    assert groups_by_cn(server, "employeeNumber") == {g["name"]: sorted(g["members"]) for g in groups}


async def test_users_and_groups_from_files_converge_through_renames_edits_removals_and_membership_changes(
    tmp_path: Path, slapd: Slapd
) -> None:
    rows = [person(i) for i in range(USERS)]
    groups = teams(rows)
    write_sources(tmp_path, rows, groups)
    async with pipeline(tmp_path, files_config(tmp_path, slapd)) as p:
        first = await cycle(p)
        assert (first["people"].created, first["people"].failed) == (USERS, 0)
        teams_done = first["teams"]
        assert (teams_done.created, teams_done.failed, teams_done.pending_members) == (TEAMS, 0, 0)
        assert_directory_equals(slapd, rows, groups)

        renamed = {3: person(3, login="#renamed, again"), 10: person(10, login="user10-new")}
        edited = {11: person(11, email="edited@example.org"), 20: person(20, family_name="Ångström")}
        removed = {rows[12]["employee_id"], rows[30]["employee_id"]}
        rows = [renamed.get(i) or edited.get(i) or r for i, r in enumerate(rows)]
        touched = {g["team_id"] for g in groups if {"E00003", "E00010"} & set(g["members"])}
        for g in groups:
            if removed & set(g["members"]):
                g["members"] = [m for m in g["members"] if m not in removed]
                touched.add(g["team_id"])
        groups[5]["members"] = [*groups[5]["members"][4:], "E00003", "E00999"]
        touched.add(groups[5]["team_id"])
        gone_team = groups.pop(6)
        touched.discard(gone_team["team_id"])
        write_sources(tmp_path, [r for r in rows if r["employee_id"] not in removed], groups)
        second = await cycle(p)
        assert (second["people"].updated, second["people"].disabled, second["people"].failed) == (4, 2, 0)
        assert (second["teams"].updated, second["teams"].deleted, second["teams"].failed) == (
            len(touched),
            1,
            0,
        )
        third = await cycle(p)
        assert [s.changed for s in third.values()] == [0, 0]

    assert_directory_equals(slapd, rows, groups, disabled=removed)
    after = people(slapd)
    assert same_dn(after["E00003"]["dn"][0], f"uid={escape_dn_value('#renamed, again')},{PEOPLE}")
    memberships = groups_by_cn(slapd, "employeeNumber")
    kept = {g["name"] for g in groups if "E00003" in g["members"]}
    assert kept == {name for name, members in memberships.items() if "E00003" in members}
    assert {"Team 003", "Team 024", "Team 005"} <= kept  # the renamed user's teams, and the one it joined


async def test_a_server_stopped_mid_cycle_and_started_again_converges_without_duplicates(
    tmp_path: Path, slapd: Slapd
) -> None:
    count = 1500
    rows = [person(i) for i in range(count)]
    write_sources(tmp_path, rows, [])
    raw = files_config(tmp_path, slapd)
    raw["jobs"] = raw["jobs"][:1]
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        running = asyncio.ensure_future(p.runner.run_cycle(job))
        await asyncio.sleep(0.4)
        slapd.stop()
        await asyncio.sleep(1.5)
        slapd.start()
        summary = await running
    assert summary.retries > 0, "the server stopped after the cycle was done; stop it sooner"
    assert (summary.created, summary.failed) == (count, 0)
    assert set(people(slapd)) == {r["employee_id"] for r in rows}


def seed(server: Slapd, users: int, groups: int) -> list[str]:
    """`users` people under ou=people and `groups` groups of them under ou=groups; the people's DNs."""
    conn = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), ROOT_DN, server.password)
    conn.bind()
    dns = []
    for i in range(users):
        login = AWKWARD[i] if i < len(AWKWARD) else f"user{i}"
        dn = f"uid={escape_dn_value(login)},{PEOPLE}"
        attributes = {"uid": login, "givenName": f"G{i}", "sn": f"Family, {i}", "cn": f"G{i} F{i}"}
        attributes["mail"] = f"user{i}@example.org"
        assert conn.add(dn, ["inetOrgPerson"], attributes), conn.result
        dns.append(dn)
    for g in range(groups):
        members = dns[g::groups]
        assert conn.add(f"cn=Group {g},{GROUPS}", ["groupOfNames"], {"cn": f"Group {g}", "member": members})
    conn.unbind()
    return dns


def tree(server: Slapd) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[str]]]:
    """Users by uid (their attributes) and groups by cn (the uids of their members)."""
    users = {
        e["uid"][0]: {k: e[k] for k in ("uid", "givenname", "sn", "cn", "mail")}
        for e in server.entries(PEOPLE, "(objectClass=inetOrgPerson)").values()
    }
    return users, groups_by_cn(server, "uid")


def mirror_config(origin: Slapd, copy: Slapd) -> dict[str, Any]:
    reader = {
        "type": "ldap",
        "url": origin.url,
        "bind_dn": READER_DN,
        "bind_password": origin.reader_password,
        "base_dn": PEOPLE,
        "page_size": 100,
    }
    return {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {**reader, "attributes": ["uid", "givenName", "sn", "cn", "mail"]},
                "target": "directory",
                "mappings": [
                    {"target": "userName", "source": "uid", "match": True},
                    {"target": "givenName", "source": "givenName"},
                    {"target": "familyName", "source": "sn"},
                    {"target": "displayName", "source": "cn"},
                    {"target": "email", "source": "mail"},
                ],
            },
            {
                "name": "groups",
                "object_type": "group",
                "source": {
                    **reader,
                    "base_dn": GROUPS,
                    "filter": "(objectClass=groupOfNames)",
                    "attributes": ["cn", "member"],
                    "member_base": PEOPLE,
                },
                "target": "directory",
                "members": {"source": "member", "job": "people"},
                "mappings": [{"target": "displayName", "source": "cn", "match": True}],
            },
        ],
        "targets": [target(copy, match="uid")],
    }


async def test_reading_one_directory_and_provisioning_into_another_gives_equal_trees(
    tmp_path: Path, slapd_factory: Any
) -> None:
    origin, copy = slapd_factory(), slapd_factory()
    dns = seed(origin, users=300, groups=10)
    async with pipeline(tmp_path, mirror_config(origin, copy)) as p:
        first = await cycle(p)
        assert (first["people"].created, first["people"].failed) == (300, 0)
        assert (first["groups"].created, first["groups"].failed, first["groups"].skipped_rows) == (10, 0, 0)
        assert tree(copy) == tree(origin)
        assert len(tree(copy)[1]) == 10

        # Membership changes in the origin, one of them a DN outside ou=people: left out, and said so.
        conn = ldap3.Connection(ldap3.Server(origin.url, get_info=ldap3.NONE), ROOT_DN, origin.password)
        conn.bind()
        changes = {"member": [(ldap3.MODIFY_DELETE, [dns[0]]), (ldap3.MODIFY_ADD, [dns[1], ROOT_DN])]}
        assert conn.modify(f"cn=Group 0,{GROUPS}", changes), conn.result
        conn.unbind()
        second = await cycle(p)
        assert (second["people"].changed, second["groups"].updated, second["groups"].failed) == (0, 1, 0)
        (problem,) = second["groups"].problems
        assert ROOT_DN in problem.message and "left out" in problem.message

    users, groups = tree(origin)
    groups["Group 0"].remove(ROOT_DN)
    assert tree(copy) == (users, groups)
