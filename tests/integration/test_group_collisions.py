"""Groups whose names collide are never merged into one entry: against a private slapd (groups named by
`cn`, which compares without case and with leading, trailing and repeated spaces ignored) and a real
scim2-server whose groups the job matches by displayName only. Every group entry of the target is read
back: each holds the members of one source group, and a group that cannot have an entry of its own fails
with a message naming both groups, or (`on_collision: {next: ...}`) gets the next name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.model import CycleSummary
from engine.pipeline import cycles
from tests.integration.pipeline import pipeline
from tests.integration.test_ldap_cycle import GROUPS, PEOPLE, files_config, person, write_sources
from tests.integration.test_scim_groups import config as scim_config
from tests.integration.test_scim_groups import group as scim_group
from tests.integration.test_scim_groups import person as scim_person
from tests.integration.test_scim_groups import read_all
from tests.integration.test_scim_groups import write_sources as scim_sources
from tests.scim_server import ScimServer
from tests.slapd import Slapd

ALIKE = ["App Helix", "App Helix", "app HELIX", "  App   Helix ", "Other"]
"""Names of groups T001 to T005: the four first are one name to the directory."""


def team(t: int, name: str, members: list[str]) -> dict[str, Any]:
    return {"team_id": f"T{t:03d}", "name": name, "members": members}


def alike_teams() -> list[dict[str, Any]]:
    return [team(t, name, [f"E{2 * t:05d}", f"E{2 * t + 1:05d}"]) for t, name in enumerate(ALIKE, 1)]


def group_entries(server: Slapd) -> dict[str, list[str]]:
    """Every group entry: its cn to the employee numbers of its members (a DN without one stays a DN)."""
    numbers = {
        dn.lower(): e["employeenumber"][0] for dn, e in server.entries(PEOPLE, "(employeeNumber=*)").items()
    }
    held: dict[str, list[str]] = {}
    for entry in server.entries(GROUPS, "(objectClass=groupOfNames)", ["cn", "member"]).values():
        assert len(entry["cn"]) == 1, entry
        held[entry["cn"][0]] = sorted(numbers.get(m.lower(), m) for m in entry.get("member", []))
    return held


async def ldap_cycles(
    tmp_path: Path, slapd: Slapd, teams: list[dict[str, Any]], *, mapping: dict[str, Any] | None = None
) -> tuple[dict[str, CycleSummary], list[dict[str, Any]]]:
    rows = [person(i) for i in range(12)]
    write_sources(tmp_path, rows, teams)
    raw = files_config(tmp_path, slapd)
    if mapping is not None:
        raw["jobs"][1]["mappings"] = [mapping]
    async with pipeline(tmp_path, raw) as p:
        people, groups = p.runner.config.jobs
        summaries = {"people": await p.runner.run_cycle(people), "teams": await p.runner.run_cycle(groups)}
        summaries["again"] = await p.runner.run_cycle(groups)
        failed = [r for r in await p.state.log_records(job="teams") if r["status"] == "failed"]
    return summaries, failed


async def test_groups_named_alike_in_a_directory_never_share_an_entry(tmp_path: Path, slapd: Slapd) -> None:
    summaries, failed = await ldap_cycles(tmp_path, slapd, alike_teams())

    # The first of the names alike has the entry; the others fail, each naming it, and no entry is shared.
    assert group_entries(slapd) == {"App Helix": ["E00002", "E00003"], "Other": ["E00010", "E00011"]}
    teams = summaries["teams"]
    assert (teams.created, teams.failed) == (2, 3)
    assert sorted({r["source_id"] for r in failed}) == ["T002", "T003", "T004"]
    for record in failed:
        message = record["error_message"]
        assert "T001" in message and "displayName" in message and "on_collision" in message, message
    assert (summaries["again"].created, summaries["again"].updated) == (0, 0)


async def test_groups_named_alike_get_the_next_name_with_on_collision(tmp_path: Path, slapd: Slapd) -> None:
    mapping = {
        "target": "displayName",
        "source": "name",
        "match": True,
        "on_collision": {"next": ['Join("", [name], " (", [team_id], ")")']},
    }
    summaries, failed = await ldap_cycles(tmp_path, slapd, alike_teams(), mapping=mapping)

    # Spaces as the directory compares them (the fourth name keeps its own, which it ignores).
    assert {" ".join(cn.split()): members for cn, members in group_entries(slapd).items()} == {
        "App Helix": ["E00002", "E00003"],
        "App Helix (T002)": ["E00004", "E00005"],
        "app HELIX (T003)": ["E00006", "E00007"],
        "App Helix (T004)": ["E00008", "E00009"],
        "Other": ["E00010", "E00011"],
    }
    assert (summaries["teams"].created, summaries["teams"].failed, failed) == (5, 0, [])
    assert (summaries["again"].created, summaries["again"].updated, summaries["again"].failed) == (0, 0, 0)


async def test_groups_named_alike_in_a_scim_app_matched_by_name_never_share_a_group(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [scim_person(i) for i in range(10)]
    groups = [
        scim_group(t, [f"E{2 * (t - 1):05d}", f"E{2 * (t - 1) + 1:05d}"], name=name)
        for t, name in enumerate(ALIKE, 1)
    ]
    scim_sources(tmp_path, people, groups[:1])  # the first is in the app before the others come
    raw = scim_config(tmp_path, scim.url)
    raw["jobs"][1]["mappings"] = [{"target": "displayName", "source": "name", "match": True}]
    async with pipeline(tmp_path, raw) as p:
        users, teams = p.runner.config.jobs
        await p.runner.run_cycle(users)
        first = await p.runner.run_cycle(teams)
        scim_sources(tmp_path, people, groups)
        second = await p.runner.run_cycle(teams)
        again = await p.runner.run_cycle(teams)
        failed = [r for r in await p.state.log_records(job="teams") if r["status"] == "failed"]

    ids = {u["id"]: u["externalId"] for u in await read_all(scim, "Users")}
    stored = {g["id"]: g for g in await read_all(scim, "Groups")}
    held = sorted(
        (g["displayName"], sorted(ids[m["value"]] for m in g.get("members") or [])) for g in stored.values()
    )
    assert held == [("App Helix", ["E00000", "E00001"]), ("Other", ["E00008", "E00009"])]
    assert (first.created, second.created, second.failed, again.created, again.updated) == (1, 1, 3, 0, 0)
    assert sorted({r["source_id"] for r in failed}) == ["G002", "G003", "G004"]
    assert all("G001" in r["error_message"] for r in failed)


async def test_the_next_name_is_kept_by_each_group_through_later_cycles_and_deletions(
    tmp_path: Path, slapd: Slapd
) -> None:
    """Group A has `cn=App Helix` before B of that name arrives: B gets its own entry and A keeps its
    own (the name is the matching attribute too, so B must never take A's entry for its own); neither
    flips on the cycles after, when their members change, nor when the other one is deleted."""
    rows = [person(i) for i in range(8)]
    a = team(1, "App Helix", ["E00000", "E00001"])
    b = team(2, "app helix", ["E00002", "E00003"])
    raw = files_config(tmp_path, slapd)
    raw["jobs"][1]["mappings"] = [
        {
            "target": "displayName",
            "source": "name",
            "match": True,
            "on_collision": {"next": ['Join("", [name], " (", [team_id], ")")']},
        }
    ]
    raw["jobs"][1].update(deletion_guard=False, source_max_drop_percent=100)  # deletes on purpose
    write_sources(tmp_path, rows, [a])
    steps: list[tuple[CycleSummary, dict[str, list[str]]]] = []
    async with pipeline(tmp_path, raw) as p:
        people, teams = p.runner.config.jobs
        await p.runner.run_cycle(people)

        async def step(*groups: dict[str, Any]) -> None:
            write_sources(tmp_path, rows, list(groups))
            steps.append((await p.runner.run_cycle(teams), group_entries(slapd)))

        await step(a)
        await step(a, b)  # B arrives: its own entry
        await step(a, b)  # nothing changes
        a["members"], b["members"] = ["E00004"], ["E00005", "E00006"]
        await step(a, b)  # both updated: each keeps its name
        await step(a)  # B deleted: A keeps its entry and members
        await step(a, b)  # B again: the next name again
        await step(b)  # A deleted: B keeps the name it has
        b["members"] = ["E00007"]
        await step(b)
        failed = [r for r in await p.state.log_records(job="teams") if r["status"] == "failed"]

    counts = [(s.created, s.updated, s.deleted, s.failed) for s, _ in steps]
    # (created, updated, deleted, failed) of each step
    assert counts == [
        (1, 0, 0, 0),
        (1, 0, 0, 0),
        (0, 0, 0, 0),
        (0, 2, 0, 0),
        (0, 0, 1, 0),
        (1, 0, 0, 0),
        (0, 0, 1, 0),
        (0, 1, 0, 0),
    ]
    assert [entries for _, entries in steps] == [
        {"App Helix": ["E00000", "E00001"]},
        {"App Helix": ["E00000", "E00001"], "app helix (T002)": ["E00002", "E00003"]},
        {"App Helix": ["E00000", "E00001"], "app helix (T002)": ["E00002", "E00003"]},
        {"App Helix": ["E00004"], "app helix (T002)": ["E00005", "E00006"]},
        {"App Helix": ["E00004"]},
        {"App Helix": ["E00004"], "app helix (T002)": ["E00005", "E00006"]},
        {"app helix (T002)": ["E00005", "E00006"]},
        {"app helix (T002)": ["E00007"]},
    ]
    assert failed == []


@pytest.mark.parametrize("waiting", [cycles.CREATES_WAITING, 0])
async def test_a_linked_group_read_after_a_new_one_of_its_name_keeps_its_entry(
    tmp_path: Path, slapd: Slapd, monkeypatch: pytest.MonkeyPatch, waiting: int
) -> None:
    """The source lists the new group first, in a batch of its own: the cycle has not read the linked
    one yet when it plans the new one, and holds its create back until it has. With no room to hold
    creates back (`waiting` 0) the create goes, and the directory writes it into the linked group's
    entry, but it is never linked there: it fails naming the group that holds the entry."""
    monkeypatch.setattr(cycles, "SOURCE_BATCH", 1)
    monkeypatch.setattr(cycles, "CREATES_WAITING", waiting)
    rows = [person(i) for i in range(4)]
    a, b = team(1, "App Helix", ["E00000", "E00001"]), team(2, "APP HELIX", ["E00002", "E00003"])
    raw = files_config(tmp_path, slapd)
    write_sources(tmp_path, rows, [a])
    async with pipeline(tmp_path, raw) as p:
        people, teams = p.runner.config.jobs
        await p.runner.run_cycle(people)
        first = await p.runner.run_cycle(teams)
        write_sources(tmp_path, rows, [b, a])
        second = await p.runner.run_cycle(teams)
        third = await p.runner.run_cycle(teams)
        failed = [r for r in await p.state.log_records(job="teams") if r["status"] == "failed"]
        linked = await p.state.target_ids("teams")

    assert (first.created, second.created, second.failed, third.created, third.failed) == (1, 0, 1, 0, 1)
    held_back = {"App Helix": ["E00000", "E00001"]}
    written_into = {"APP HELIX": ["E00000", "E00001", "E00002", "E00003"]}  # the directory's doing
    assert group_entries(slapd) == (held_back if waiting else written_into)
    assert list(linked) == ["T001"]
    assert [r["source_id"] for r in failed] == ["T002", "T002"]
    assert "'T001'" in failed[0]["error_message"] and "on_collision" in failed[0]["error_message"]


@pytest.mark.parametrize("together", [False, True])
async def test_a_create_the_directory_matches_to_another_groups_entry_is_never_linked_to_it(
    tmp_path: Path, slapd: Slapd, together: bool
) -> None:
    """The job matches its groups on their id (description), the directory on cn: the engine sees two
    groups, the directory one entry. The second create is not linked to the first one's entry, whether
    the first was linked by an earlier cycle or by this one (the first cycle of the job)."""
    rows = [person(i) for i in range(4)]
    a, b = team(1, "App Helix", ["E00000", "E00001"]), team(2, "App Helix", ["E00002", "E00003"])
    raw = files_config(tmp_path, slapd)
    raw["jobs"][1]["mappings"] = [
        {"target": "description", "source": "team_id", "match": True},
        {"target": "displayName", "source": "name"},
    ]
    write_sources(tmp_path, rows, [a, b] if together else [a])
    async with pipeline(tmp_path, raw) as p:
        people, teams = p.runner.config.jobs
        await p.runner.run_cycle(people)
        first = await p.runner.run_cycle(teams)
        write_sources(tmp_path, rows, [a, b])
        second = await p.runner.run_cycle(teams)
        failed = [r for r in await p.state.log_records(job="teams") if r["status"] == "failed"]
        linked = await p.state.target_ids("teams")

    if together:
        assert (first.created, first.failed, second.created, second.failed) == (1, 1, 0, 1)
        assert [r["source_id"] for r in failed] == ["T002", "T002"]
    else:
        assert (first.created, second.created, second.failed) == (1, 0, 1)
        assert [r["source_id"] for r in failed] == ["T002"]
    assert list(linked) == ["T001"]
    assert "the entry of 'T001'" in failed[0]["error_message"]


async def test_groups_named_alike_in_a_scim_app_get_the_next_name_with_on_collision(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [scim_person(i) for i in range(6)]
    names = ["App Helix", "App Helix", "app HELIX"]
    groups = [
        scim_group(t, [f"E{2 * (t - 1):05d}", f"E{2 * (t - 1) + 1:05d}"], name=n)
        for t, n in enumerate(names, 1)
    ]
    scim_sources(tmp_path, people, groups[:1])
    raw = scim_config(tmp_path, scim.url)
    raw["jobs"][1]["mappings"] = [
        {
            "target": "displayName",
            "source": "name",
            "match": True,
            "on_collision": {"next": ['Join("", [name], " (", [group_id], ")")']},
        }
    ]
    async with pipeline(tmp_path, raw) as p:
        users, teams = p.runner.config.jobs
        await p.runner.run_cycle(users)
        first = await p.runner.run_cycle(teams)
        scim_sources(tmp_path, people, groups)
        second = await p.runner.run_cycle(teams)
        groups[0]["members"] = ["E00005"]
        scim_sources(tmp_path, people, groups)
        third = await p.runner.run_cycle(teams)

    ids = {u["id"]: u["externalId"] for u in await read_all(scim, "Users")}
    held = sorted(
        (g["displayName"], sorted(ids[m["value"]] for m in g.get("members") or []))
        for g in await read_all(scim, "Groups")
    )
    assert held == [
        ("App Helix", ["E00005"]),
        ("App Helix (G002)", ["E00002", "E00003"]),
        ("app HELIX (G003)", ["E00004", "E00005"]),
    ]
    counts = [(s.created, s.updated, s.failed) for s in (first, second, third)]
    assert counts == [(1, 0, 0), (2, 0, 0), (0, 1, 0)]
