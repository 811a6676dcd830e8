"""Whole cycles into a real OpenLDAP (private slapd instances), and from one directory into another."""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from pathlib import Path
from typing import Any

import ldap3

from engine.sources.ldap import LdapSource, parse_ldap_source
from queues.contracts import Operation
from queues.ldap_names import dn_key, escape_dn_value, same_dn
from tests.integration.pipeline import pipeline
from tests.slapd import READER_DN, ROOT_DN, SUFFIX, Slapd, target_settings
from workers.connectors.base import Applied
from workers.connectors.ldap import LdapConnector, parse_ldap_settings

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
COLUMNS = ("employee_id", "login", "given_name", "family_name", "email")
AWKWARD = ["nuñez, jr.", "a+b", 'say "hi"', "#hash", "zoë ångström", "star*(x)\\", "semi;<x>="]
N = 2000


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


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def target(server: Slapd, **extra: Any) -> dict[str, Any]:
    return {
        "name": "directory",
        "type": "ldap",
        **target_settings(server, users={"match": "employeeNumber"}, connect_timeout_s=1),
        "retry": {"first_delay_ms": 200, "multiplier": 2, "tiers": 6},
        **extra,
    }


def connector_for(server: Slapd) -> LdapConnector:
    """A connector of our own to the target, beside the pipeline's."""
    own = {k: v for k, v in target(server).items() if k not in ("name", "type", "retry")}
    return LdapConnector("directory", parse_ldap_settings("t", own))


def csv_job(tmp_path: Path, server: Slapd) -> dict[str, Any]:
    return {
        "engine": {"batch_size": 200, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "employee_id"},
                "target": "directory",
                "mappings": [
                    {"target": "employeeNumber", "source": "employee_id", "match": True},
                    {"target": "userName", "source": "login"},
                    {"target": "givenName", "source": "given_name"},
                    {"target": "familyName", "source": "family_name"},
                    {"target": "displayName", "expression": 'Join(" ", [given_name], [family_name])'},
                    {"target": "email", "source": "email"},
                ],
            }
        ],
        "targets": [target(server)],
    }


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


async def test_cycles_converge_on_the_source_through_renames_edits_and_removals(
    tmp_path: Path, slapd: Slapd
) -> None:
    rows = [person(i) for i in range(N)]
    write_csv(tmp_path / "people.csv", rows)
    async with pipeline(tmp_path, csv_job(tmp_path, slapd)) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        assert (first.created, first.failed, first.status) == (N, 0, "succeeded")
        held = people(slapd)
        assert set(held) == {r["employee_id"] for r in rows}
        for row in rows:
            entry = held[row["employee_id"]]
            assert {k: entry[k] for k in expected(row)} == expected(row), row
            assert "employeetype" not in entry

        # A group (provisioned through the connector: the engine side of groups comes separately).
        member_dns = [held[f"E{i:05d}"]["dn"][0] for i in (3, 10, 11, 12)]
        async with connector_for(slapd) as connector:
            (group,) = await connector.apply([group_op("create", "Staff", member_dns)])
        assert isinstance(group, Applied)

        renamed = {3: person(3, login="#renamed, again"), 10: person(10, login="user10-new")}
        edited = {11: person(11, email="edited@example.org"), 20: person(20, family_name="Ångström")}
        removed = {12, 30}
        new_rows = [renamed.get(i) or edited.get(i) or r for i, r in enumerate(rows)]
        write_csv(tmp_path / "people.csv", [r for i, r in enumerate(new_rows) if i not in removed])
        second = await p.runner.run_cycle(job)
        assert (second.updated, second.disabled, second.failed) == (4, 2, 0)
        third = await p.runner.run_cycle(job)
        assert third.changed == 0

    after = people(slapd)
    for i, row in enumerate(new_rows):
        entry = after[row["employee_id"]]
        assert {k: entry[k] for k in expected(row)} == expected(row), row
        assert entry.get("employeetype", []) == (["disabled"] if i in removed else [])
    assert same_dn(after["E00003"]["dn"][0], f"uid={escape_dn_value('#renamed, again')},{PEOPLE}")
    members = slapd.entries(group.target_id or "", "(objectClass=*)", ["member"])
    (listed,) = members.values()
    assert {dn_key(m) for m in listed["member"]} == {
        dn_key(after[f"E{i:05d}"]["dn"][0]) for i in (3, 10, 11, 12)
    }


async def test_a_server_stopped_mid_cycle_and_started_again_converges_without_duplicates(
    tmp_path: Path, slapd: Slapd
) -> None:
    count = 1500
    rows = [person(i) for i in range(count)]
    write_csv(tmp_path / "people.csv", rows)
    async with pipeline(tmp_path, csv_job(tmp_path, slapd)) as p:
        job = p.runner.config.jobs[0]
        cycle = asyncio.ensure_future(p.runner.run_cycle(job))
        await asyncio.sleep(0.4)
        slapd.stop()
        await asyncio.sleep(1.5)
        slapd.start()
        summary = await cycle
    assert summary.retries > 0, "the server stopped after the cycle was done; stop it sooner"
    assert (summary.created, summary.failed) == (count, 0)
    assert set(people(slapd)) == {r["employee_id"] for r in rows}


def group_op(action: str, name: str, members: list[str], **fields: Any) -> Operation:
    return Operation(
        op_id=f"g-{name}-{action}",
        job="groups",
        target="directory",
        cycle_id="c",
        action=action,  # type: ignore[arg-type]
        object_type="group",
        source_id=name,
        attributes={"displayName": name},
        desired_hash="h",
        matching=[["displayName", name]],
        members_add=members,
        **fields,
    )


def seed(server: Slapd, users: int, groups: int) -> None:
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


def tree(server: Slapd) -> tuple[dict[str, dict[str, list[str]]], dict[str, set[str]]]:
    """Users by uid (their attributes) and groups by cn (the uids of their members)."""
    users = {
        e["uid"][0]: {k: e[k] for k in ("uid", "givenname", "sn", "cn", "mail")}
        for e in server.entries(PEOPLE, "(objectClass=inetOrgPerson)").values()
    }
    uid_of = {dn.lower(): e["uid"][0] for dn, e in server.entries(PEOPLE, "(uid=*)", ["uid"]).items()}
    groups = {
        e["cn"][0]: {uid_of[m.lower()] for m in e["member"]}
        for e in server.entries(GROUPS, "(objectClass=groupOfNames)").values()
    }
    return users, groups


async def test_reading_one_directory_and_provisioning_into_another_gives_equal_trees(
    tmp_path: Path, slapd_factory: Any
) -> None:
    origin, copy = slapd_factory(), slapd_factory()
    seed(origin, users=300, groups=10)
    reader = {
        "type": "ldap",
        "url": origin.url,
        "bind_dn": READER_DN,
        "bind_password": origin.reader_password,
        "base_dn": PEOPLE,
        "attributes": ["uid", "givenName", "sn", "cn", "mail"],
        "page_size": 100,
    }
    raw = {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": reader,
                "target": "directory",
                "mappings": [
                    {"target": "userName", "source": "uid", "match": True},
                    {"target": "givenName", "source": "givenName"},
                    {"target": "familyName", "source": "sn"},
                    {"target": "displayName", "source": "cn"},
                    {"target": "email", "source": "mail"},
                ],
            }
        ],
        "targets": [target(copy, users={**target(copy)["users"], "match": "uid"})],
    }
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        summary = await p.runner.run_cycle(job)
        assert (summary.created, summary.failed) == (300, 0)
        state = await p.runner.state.snapshot(job.name)

    # Groups, with their members resolved to the copy's DNs through the engine's state (by entryUUID).
    users = LdapSource(parse_ldap_source("s", reader, base_dir=tmp_path))
    id_of = {}
    async for batch in users.batches(500):
        id_of.update({o.attributes["dn"].lower(): o.source_id for o in batch})
    group_reader = {
        **reader,
        "base_dn": GROUPS,
        "filter": "(objectClass=groupOfNames)",
        "attributes": ["cn", "member"],
    }
    ops = []
    async for batch in LdapSource(parse_ldap_source("s", group_reader, base_dir=tmp_path)).batches(500):
        for group in batch:
            members = [state[id_of[m.lower()]].target_id or "" for m in group.attributes["member"]]
            ops.append(group_op("create", group.attributes["cn"], members))
    async with connector_for(copy) as connector:
        outcomes = await connector.apply(ops)
    assert all(isinstance(o, Applied) for o in outcomes), outcomes

    assert tree(copy) == tree(origin)
    assert len(tree(copy)[1]) == 10
