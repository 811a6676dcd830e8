"""Users, groups and memberships from files into a real SCIM server (scim2-server), through the engine.

Each test gets a fresh server and compares its whole contents with the mapped source: every user
attribute by attribute, every group member by member, read back with a client of our own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from engine.core.membership import PENDING_PREFIX
from engine.pipeline.ondemand import preview_from_state
from tests.fault_proxy import FaultProxy, Faults
from tests.integration.pipeline import pipeline
from tests.scim_server import ScimServer

DEPARTMENTS = ("Sales", "R&D", "People", "Finance")
GROUPS = 100
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def person(i: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "employee_id": f"E{i:05d}",
        "login": f"user{i}@example.org",
        "given_name": ["José", "Zoë", "Siobhán", "Łukasz"][i % 4],
        "family_name": ["O'Brien", "Müller", 'Nuñez "Jr"', "D'Angelo"][i % 4],
        "department": DEPARTMENTS[i % 4],
        "title": "" if i % 7 == 0 else f"Engineer {i % 5}",
    }
    row.update(overrides)
    return row


def group(g: int, members: list[str], **overrides: Any) -> dict[str, Any]:
    return {"group_id": f"G{g:03d}", "name": f"Team {g:03d}", "members": members, **overrides}


def teams(people: list[dict[str, Any]], count: int = GROUPS) -> list[dict[str, Any]]:
    """Each person in two groups: `i % count` and `(i * 7 + 3) % count` (overlapping member sets)."""
    members: dict[int, list[str]] = {g: [] for g in range(count)}
    for i, row in enumerate(people):
        for g in dict.fromkeys((i % count, (i * 7 + 3) % count)):
            members[g].append(row["employee_id"])
    return [group(g, ids) for g, ids in members.items()]


def write_sources(tmp_path: Path, people: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    with (tmp_path / "people.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in people)
    with (tmp_path / "groups.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in groups)


def config(tmp_path: Path, url: str, **target: Any) -> dict[str, Any]:
    return {
        "engine": {"batch_size": 50, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"path": str(tmp_path / "people.jsonl"), "id_column": "employee_id"},
                "target": "app",
                "mappings": [
                    {"target": "externalId", "source": "employee_id", "match": 1},
                    {"target": "userName", "source": "login", "match": 2},
                    {"target": "name.givenName", "source": "given_name"},
                    {"target": "name.familyName", "source": "family_name"},
                    {"target": "title", "expression": 'IIF(IsNullOrEmpty([title]), "Staff", [title])'},
                    {"target": "enterprise.department", "source": "department"},
                ],
            },
            {
                "name": "teams",
                "object_type": "group",
                "source": {"path": str(tmp_path / "groups.jsonl"), "id_column": "group_id"},
                "target": "app",
                "members": {"source": "members", "job": "people"},
                "mappings": [
                    {"target": "externalId", "source": "group_id", "match": True},
                    {"target": "displayName", "source": "name"},
                ],
            },
        ],
        "targets": [
            {
                "name": "app",
                "type": "scim",
                "url": url,
                "max_concurrency": 8,
                "member_chunk_size": 20,
                "retry": {"first_delay_ms": 50, "multiplier": 2, "tiers": 8, "jitter": 0.2},
                **target,
            }
        ],
    }


async def read_all(server: ScimServer, endpoint: str) -> list[dict[str, Any]]:
    """Every resource of an endpoint, paged (the server answers at most 1,000 per page)."""
    resources: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        while True:
            query = f"startIndex={len(resources) + 1}&count=1000"
            async with session.get(f"{server.url}/{endpoint}?{query}") as answer:
                assert answer.status == 200, await answer.text()
                page = await answer.json(content_type=None)
            resources += page.get("Resources", [])
            if not page.get("Resources") or len(resources) >= page["totalResults"]:
                return resources


def expected_user(row: dict[str, Any], *, active: bool = True) -> dict[str, Any]:
    return {
        "userName": row["login"],
        "givenName": row["given_name"],
        "familyName": row["family_name"],
        "title": row["title"] or "Staff",
        "department": row["department"],
        "active": active,
    }


def stored_user(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "userName": user["userName"],
        "givenName": user.get("name", {}).get("givenName"),
        "familyName": user.get("name", {}).get("familyName"),
        "title": user.get("title"),
        "department": user.get(ENTERPRISE, {}).get("department"),
        "active": user.get("active"),
    }


async def assert_target_equals(
    server: ScimServer,
    people: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    *,
    disabled: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> None:
    """The server holds exactly these users (each once) and groups (each once, each member once)."""
    users = await read_all(server, "Users")
    by_external: dict[str, dict[str, Any]] = {}
    for user in users:
        assert user["externalId"] not in by_external, f"user {user['externalId']} is in the target twice"
        by_external[user["externalId"]] = user
    expected = {row["employee_id"]: expected_user(row) for row in people}
    expected |= {row["employee_id"]: expected_user(row, active=False) for row in disabled}
    assert {k: stored_user(u) for k, u in by_external.items()} == expected
    source_of = {u["id"]: k for k, u in by_external.items()}
    stored_groups: dict[str, dict[str, Any]] = {}
    for g in await read_all(server, "Groups"):
        assert g["externalId"] not in stored_groups, f"group {g['externalId']} is in the target twice"
        stored_groups[g["externalId"]] = g
    assert sorted(stored_groups) == sorted(g["group_id"] for g in groups)
    for row in groups:
        stored = stored_groups[row["group_id"]]
        assert stored["displayName"] == row["name"]
        values = [m["value"] for m in stored.get("members") or []]
        assert len(values) == len(set(values)), f"a member of {row['group_id']} appears twice"
        assert sorted(source_of[v] for v in values) == sorted(row["members"]), row["group_id"]


async def run(tmp_path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """One cycle of each job, users first; the summaries by job."""
    async with pipeline(tmp_path, raw) as p:
        summaries = {}
        for job in p.runner.config.jobs:
            summaries[job.name] = await p.runner.run_cycle(job)
        return summaries


async def test_users_groups_and_memberships_converge_member_by_member(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(i) for i in range(2000)]
    groups = teams(people)
    write_sources(tmp_path, people, groups)
    raw = config(tmp_path, scim.url)

    first = await run(tmp_path, raw)
    assert (first["people"].created, first["people"].failed) == (2000, 0)
    assert (first["teams"].created, first["teams"].failed, first["teams"].pending_members) == (GROUPS, 0, 0)
    await assert_target_equals(scim, people, groups)

    # Edits, removals and membership changes: the next cycle converges exactly.
    people[5] = person(5, department="Legal", title="Counsel")
    people[6] = person(6, login="renamed6@example.org")
    gone = people.pop(10)  # disabled, and taken out of its groups by the group source
    touched = {"G000", "G001"}
    for row in groups:
        if gone["employee_id"] in row["members"]:
            row["members"].remove(gone["employee_id"])
            touched.add(row["group_id"])
    groups[0]["members"] = [*groups[0]["members"][5:], people[1]["employee_id"]]
    groups[1]["name"] = "Team one, renamed"
    deleted_group = groups.pop(2)
    touched.discard(deleted_group["group_id"])
    write_sources(tmp_path, people, groups)
    second = await run(tmp_path, raw)
    assert (second["people"].updated, second["people"].disabled, second["people"].failed) == (2, 1, 0)
    assert (second["teams"].updated, second["teams"].deleted, second["teams"].failed) == (len(touched), 1, 0)
    await assert_target_equals(scim, people, groups, disabled=[gone])
    assert deleted_group["group_id"] not in {g["externalId"] for g in await read_all(scim, "Groups")}

    third = await run(tmp_path, raw)
    assert [s.changed for s in third.values()] == [0, 0]


async def test_a_member_not_provisioned_yet_is_added_in_a_later_cycle(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(i) for i in range(20)]
    late = person(20)
    groups = [group(0, [p["employee_id"] for p in people[:5]] + [late["employee_id"]])]
    write_sources(tmp_path, people, groups)
    raw = config(tmp_path, scim.url)

    first = await run(tmp_path, raw)
    assert (first["teams"].created, first["teams"].pending_members) == (1, 1)
    await assert_target_equals(scim, people, [group(0, [p["employee_id"] for p in people[:5]])])
    async with pipeline(tmp_path, raw) as p:
        entry = await p.runner.state.entry("teams", "G000")
        shown = await preview_from_state(p.runner.config.job("teams"), "G000", p.runner.state)
    assert entry is not None and entry.applied_hash.startswith(PENDING_PREFIX)  # not taken as applied
    assert shown.members is not None and (shown.members.pending, len(shown.members.members)) == (1, 5)
    assert shown.action == "nothing"

    again = await run(tmp_path, raw)  # still not provisioned: nothing to send, still pending
    assert (again["teams"].changed, again["teams"].pending_members) == (0, 1)

    write_sources(tmp_path, [*people, late], groups)
    later = await run(tmp_path, raw)
    assert (later["people"].created, later["teams"].updated, later["teams"].pending_members) == (1, 1, 0)
    await assert_target_equals(scim, [*people, late], groups)
    async with pipeline(tmp_path, raw) as p:
        entry = await p.runner.state.entry("teams", "G000")
    assert entry is not None and not entry.applied_hash.startswith(PENDING_PREFIX)


async def test_converges_under_faults_without_duplicates_and_within_the_rate(
    tmp_path: Path, scim: ScimServer, proxy: FaultProxy
) -> None:
    rate_per_s = 150.0
    proxy.faults = Faults(status_503=0.20, status_429=0.05, drop_after_write=0.01, retry_after="0.2")
    people = [person(i) for i in range(400)]
    groups = teams(people, 20)
    write_sources(tmp_path, people, groups)
    # At these rates an operation of three requests fails 6 times in 10; enough tiers make exhausting
    # them unlikely (0.6^16), as a deployment facing such a target would configure.
    retry = {"first_delay_ms": 50, "multiplier": 1.5, "tiers": 16, "jitter": 0.2}
    raw = config(tmp_path, f"{proxy.url}/v2", rate_per_s=rate_per_s, retry=retry)

    first = await run(tmp_path, raw)
    assert [s.failed for s in first.values()] == [0, 0]
    await assert_target_equals(scim, people, groups)

    for row in groups[:5]:
        row["members"] = [*row["members"][3:], people[-1]["employee_id"]]
    people[0] = person(0, title="Chief")
    write_sources(tmp_path, people, groups)
    second = await run(tmp_path, raw)
    assert [s.failed for s in second.values()] == [0, 0]
    await assert_target_equals(scim, people, groups)

    assert proxy.count("503") > 0 and proxy.count("429") > 0 and proxy.count("drop_after_write") > 0
    busiest = proxy.max_per_window(1.0)
    assert busiest <= rate_per_s * 1.05 + 3, f"{busiest} requests within one second"
