"""Group membership is planned from plain values: member ids from the source, target ids from the state."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from engine.config import in_dependency_order, parse_engine_config
from engine.core.membership import PENDING_PREFIX, Membership, MembersSettings, member_ids

SETTINGS = MembersSettings(source="members", job="people")


def test_member_ids_read_lists_and_separated_strings_without_blanks_or_repeats() -> None:
    assert member_ids("E1; E2;;E1 ;", ";") == ["E1", "E2"]
    assert member_ids(["E1", None, "", 7, "E1"], ";") == ["E1", "7"]
    assert member_ids(None, ";") == []
    assert member_ids("", ";") == []
    assert member_ids("E1|E2", "|") == ["E1", "E2"]


def _membership(applied: dict[str, dict[str, str]] | None = None) -> Membership:
    return Membership(SETTINGS, target_ids={"E1": "t1", "E2": "t2", "E3": "t3"}, applied=applied or {})


def test_a_new_group_adds_every_resolved_member_and_counts_the_rest_pending() -> None:
    plan = _membership().plan("G1", {"members": ["E1", "E2", "E9"]}, "h")
    assert plan.members == {"E1": "t1", "E2": "t2"}
    assert (plan.add, plan.remove, plan.pending) == (["t1", "t2"], [], 1)
    assert plan.hash.startswith(PENDING_PREFIX)


def test_only_the_difference_with_what_was_applied_is_sent() -> None:
    membership = _membership({"G1": {"E1": "t1", "E2": "t2-old", "E8": "t8"}})
    plan = membership.plan("G1", {"members": "E1;E2;E3"}, "h")
    assert (plan.add, plan.remove, plan.pending) == (["t2", "t3"], ["t2-old", "t8"], 0)
    assert not plan.hash.startswith(PENDING_PREFIX)


def test_the_hash_changes_with_attributes_and_members_and_not_with_member_order() -> None:
    membership = _membership()
    same = membership.plan("G1", {"members": ["E1", "E2"]}, "h").hash
    assert membership.plan("G1", {"members": ["E2", "E1"]}, "h").hash == same
    assert membership.plan("G1", {"members": ["E1"]}, "h").hash != same
    assert membership.plan("G1", {"members": ["E1", "E2"]}, "other").hash != same


def _jobs(**group: object) -> dict:
    people = {
        "name": "people",
        "source": {"type": "csv", "path": "p.csv", "id_column": "id"},
        "target": "app",
        "mappings": [{"target": "userName", "source": "id", "match": True}],
    }
    teams = {
        "name": "teams",
        "object_type": "group",
        "source": {"type": "csv", "path": "g.csv", "id_column": "id"},
        "target": "app",
        "members": {"source": "members", "job": "people"},
        "mappings": [{"target": "displayName", "source": "name"}],
    }
    teams.update(group)
    return {"jobs": [teams, people]}


def test_group_jobs_run_after_user_jobs_and_delete_what_leaves_the_source() -> None:
    config = parse_engine_config(_jobs(), base_dir=Path("."))
    assert [job.name for job in in_dependency_order(config.jobs)] == ["people", "teams"]
    assert config.job("teams").deprovision == "delete"
    assert config.job("people").deprovision == "disable"


@pytest.mark.parametrize(
    ("group", "path", "words"),
    [
        ({"members": {"source": "m", "job": "nobody"}}, "jobs[0].members.job", "no job is named 'nobody'"),
        ({"target": "other"}, "jobs[0].members.job", "is not a user job of target 'other'"),
        ({"object_type": "user"}, "jobs[0].members", "applies to group jobs only"),
        ({"members": {"job": "people"}}, "jobs[0].members.source", "is required"),
    ],
)
def test_a_wrong_members_section_names_the_field_and_the_fix(group: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(_jobs(**group), base_dir=Path("."))
    assert caught.value.path == path
    assert words in str(caught.value)


NESTED = {"source": "members", "job": "people", "groups": ["teams"]}


@pytest.mark.parametrize(
    ("members", "path", "words"),
    [
        ({**NESTED, "groups": ["nobody"]}, "jobs[0].members.groups[0]", "no job is named 'nobody'"),
        ({**NESTED, "groups": ["people"]}, "jobs[0].members.groups[0]", "'people' is not a group job"),
        ({**NESTED, "groups": "teams teams"}, "jobs[0].members.groups[0]", "no job is named 'teams teams'"),
        ({**NESTED, "groups": ["teams", "teams"]}, "jobs[0].members.groups[1]", "'teams' is named twice"),
        ({**NESTED, "groups": {"teams": 1}}, "jobs[0].members.groups", "is not a list"),
    ],
)
def test_a_wrong_groups_list_of_members_names_the_field(members: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(_jobs(members=members), base_dir=Path("."))
    assert caught.value.path == path
    assert words in str(caught.value)


def _group_job(name: str, groups: list[str]) -> dict:
    return {
        "name": name,
        "object_type": "group",
        "source": {"type": "csv", "path": f"{name}.csv", "id_column": "id"},
        "target": "app",
        "members": {"source": "members", "job": "people", "groups": groups},
        "mappings": [{"target": "displayName", "source": "name"}],
    }


def test_group_jobs_run_after_the_group_jobs_they_nest_and_may_not_nest_each_other() -> None:
    raw = _jobs(members=dict(NESTED))  # teams nests its own groups
    raw["jobs"] = [
        _group_job("divisions", ["departments", "divisions"]),
        _group_job("departments", ["teams"]),
        *raw["jobs"],
    ]
    config = parse_engine_config(raw, base_dir=Path("."))
    order = [job.name for job in in_dependency_order(config.jobs)]
    assert order == ["people", "teams", "departments", "divisions"]
    assert config.job("teams").members.jobs == ("people", "teams")  # type: ignore[union-attr]

    raw["jobs"][2]["members"]["groups"] = ["divisions"]  # teams -> divisions -> departments -> teams
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=Path("."))
    assert caught.value.path.endswith(".members.groups[0]")
    assert "take each other's groups as members" in str(caught.value)


def test_the_members_that_are_groups_are_named_apart_from_the_users() -> None:
    membership = Membership(
        MembersSettings(source="members", job="people", groups=("teams",)),
        target_ids={"E1": "t1", "G2": "g2"},
        applied={},
        groups={"g2"},
    )
    plan = membership.plan("G1", {"members": ["G2", "E1"]}, "h")
    assert (plan.add, plan.groups, plan.pending) == (["g2", "t1"], ["g2"], 0)
