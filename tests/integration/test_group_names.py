"""Two source groups with the same name are two groups in the target, never one shared: against a real
scim2-server, whose groups the job matches by externalId, then displayName. The first group is in the
target before the others arrive (in one batch they would all search before any exists); checked with
and without the cycle's listing of the target, and again on the next cycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.pipeline import pipeline
from tests.integration.test_scim_groups import config, group, person, read_all, write_sources
from tests.scim_server import ScimServer


@pytest.mark.parametrize("listing_min_creates", [0, 1])
async def test_groups_named_alike_get_a_group_each_with_their_own_members(
    tmp_path: Path, scim: ScimServer, listing_min_creates: int
) -> None:
    people = [person(i) for i in range(6)]
    groups = [
        group(1, ["E00000", "E00001"], name="App Helix"),
        group(2, ["E00002", "E00003"], name="App Helix"),  # both in the target by the second cycle
        group(3, ["E00004", "E00005"], name="app helix"),  # equal to the others without case
    ]
    write_sources(tmp_path, people, groups[:1])
    raw = config(tmp_path, scim.url)
    raw["jobs"][1]["listing_min_creates"] = listing_min_creates
    async with pipeline(tmp_path, raw) as p:
        users, teams = p.runner.config.jobs
        await p.runner.run_cycle(users)
        first = await p.runner.run_cycle(teams)
        write_sources(tmp_path, people, groups)
        second = await p.runner.run_cycle(teams)
        third = await p.runner.run_cycle(teams)

    assert (first.created, second.created, second.failed, third.updated, third.failed) == (1, 2, 0, 0, 0)
    ids = {u["id"]: u["externalId"] for u in await read_all(scim, "Users")}
    stored = await read_all(scim, "Groups")
    assert sorted((g["externalId"], g["displayName"]) for g in stored) == [
        ("G001", "App Helix"),
        ("G002", "App Helix"),
        ("G003", "app helix"),
    ]
    members = {g["externalId"]: sorted(ids[m["value"]] for m in g.get("members") or []) for g in stored}
    assert members == {g["group_id"]: g["members"] for g in groups}
