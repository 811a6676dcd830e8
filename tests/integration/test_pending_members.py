"""Group members not provisioned are said as Roster knows them (against a real scim2-server): a member
whose own create failed is named with its error, since it joins its groups only once fixed; a member
that may still arrive is counted, not blamed."""

from __future__ import annotations

from pathlib import Path

from engine.cli.report import pending_words
from tests.integration.pipeline import pipeline
from tests.integration.test_scim_groups import config, group, person, read_all, write_sources
from tests.scim_server import ScimServer


async def test_a_member_whose_own_create_failed_is_named_with_its_error(
    tmp_path: Path, scim: ScimServer
) -> None:
    people = [person(i) for i in range(4)]
    people[2] = person(2, given_name="Jo\x00sé")  # a NUL: refused for this person, never sent
    groups = [group(1, ["E00000", "E00002"]), group(2, ["E00001", "E00003", "E00099"])]  # E00099: no one
    write_sources(tmp_path, people, groups)
    async with pipeline(tmp_path, config(tmp_path, scim.url)) as p:
        users, teams = p.runner.config.jobs
        provisioned = await p.runner.run_cycle(users)
        summary = await p.runner.run_cycle(teams)

    assert (provisioned.created, provisioned.failed) == (3, 1)
    assert summary.pending_members == 2
    assert [member for member, _ in summary.failed_members] == ["E00002"]
    assert summary.failed_members[0][1]  # the target's words, as the member's own log record has them
    words = pending_words(summary)
    assert "2 group member(s) not provisioned; 1 of the members failed in their own job" in words
    assert "any other may still arrive" in words
    held = {g["externalId"]: len(g.get("members") or []) for g in await read_all(scim, "Groups")}
    assert held == {"G001": 1, "G002": 2}


async def test_members_that_may_still_arrive_are_only_counted(tmp_path: Path, scim: ScimServer) -> None:
    people = [person(i) for i in range(2)]
    write_sources(tmp_path, people, [group(1, ["E00000", "E00001", "E00042"])])
    async with pipeline(tmp_path, config(tmp_path, scim.url)) as p:
        users, teams = p.runner.config.jobs
        await p.runner.run_cycle(users)
        summary = await p.runner.run_cycle(teams)

    assert (summary.pending_members, summary.failed_members) == (1, ())
    assert pending_words(summary).startswith("1 group member(s) not provisioned yet; their groups get them")
