"""Groups by rule ("birthright" groups) into a real slapd: a group per department, and one group whose
members a rule picks, both computed from the people's own attributes. A mover leaves one group and joins
the other in one cycle of each job, keeping their entry; a department that empties loses its group; a
person out of the people job's scope is in none; a row that cannot be read changes no group."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from engine.config import parse_engine_config
from engine.pipeline.dryrun import PlannedObject, plan_job
from tests.integration.pipeline import pipeline
from tests.integration.test_ldap_cycle import PEOPLE_MAPPINGS, cycle, groups_by_cn, people, target
from tests.slapd import Slapd

DEPARTMENTS = ["Sales", "Marketing", "R&D"]
COUNTRIES = ["DE", "FR", "DE", "AT"]


def person(i: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "employee_id": f"E{i:05d}",
        "login": f"user{i}",
        "given_name": ["José", "Zoë", "Siobhán", "Łukasz"][i % 4],
        "family_name": ["O'Brien", "Müller", "Nuñez, Jr.", "D'Angelo"][i % 4],
        "email": f"user{i}@example.org",
        "department": DEPARTMENTS[i % 3],
        "country": COUNTRIES[i % 4],
        "status": "active",
    }
    row.update(overrides)
    return row


def write_people(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=tuple(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def config(tmp_path: Path, server: Slapd) -> dict[str, Any]:
    free = {"deletion_guard": False, "source_max_drop_percent": 100}
    return {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "employee_id"},
                "target": "directory",
                "scoping": [{"clauses": [{"attribute": "status", "operator": "EQUALS", "value": "active"}]}],
                "mappings": PEOPLE_MAPPINGS,
                **free,
            },
            {
                "name": "departments",
                "object_type": "group",
                "target": "directory",
                "members": {"job": "people", "group_per": "department"},
                "mappings": [
                    {"target": "displayName", "expression": 'Join(" ", "Dept", [value])', "match": True}
                ],
                **free,
            },
            {
                "name": "sales-dach",
                "object_type": "group",
                "target": "directory",
                "members": {
                    "job": "people",
                    "rule": '[department] = "Sales" and ([country] = "DE" or [country] = "AT")',
                },
                "mappings": [{"target": "displayName", "constant": "Sales DACH", "match": True}],
                **free,
            },
        ],
        "targets": [target(server)],
    }


def expected_groups(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What the rules mean, worked out here on their own: the groups and their members' numbers."""
    active = [r for r in rows if r["status"] == "active"]
    groups: dict[str, list[str]] = {}
    for row in active:
        if row["department"]:
            groups.setdefault(f"Dept {row['department']}", []).append(row["employee_id"])
    groups["Sales DACH"] = [
        r["employee_id"] for r in active if r["department"] == "Sales" and r["country"] in ("DE", "AT")
    ]
    return {name: sorted(members) for name, members in groups.items()}


async def test_groups_by_rule_follow_the_people_through_a_move_and_an_emptied_department(
    tmp_path: Path, slapd: Slapd
) -> None:
    rows = [person(i) for i in range(12)]
    rows[5]["status"] = "left"  # out of the people job's scope: a member of nothing
    write_people(tmp_path, rows)
    async with pipeline(tmp_path, config(tmp_path, slapd)) as p:
        first = await cycle(p)
        assert {name: s.status for name, s in first.items()} == dict.fromkeys(first, "succeeded"), first
        assert (first["departments"].created, first["sales-dach"].created) == (3, 1)
        assert groups_by_cn(slapd, "employeeNumber") == expected_groups(rows)
        entries = {number: entry["dn"] for number, entry in people(slapd).items()}

        # a mover: Sales (DE) to Marketing; another stays in Sales but moves to France
        assert (rows[0]["department"], rows[0]["country"]) == ("Sales", "DE")
        rows[0]["department"] = "Marketing"
        rows[3]["country"] = "FR"
        write_people(tmp_path, rows)
        moved = await cycle(p)
        assert moved["people"].updated == 0  # neither attribute is mapped: only the groups change
        assert (moved["departments"].updated, moved["sales-dach"].updated) == (2, 1)
        held = groups_by_cn(slapd, "employeeNumber")
        assert held == expected_groups(rows)
        assert "E00000" in held["Dept Marketing"] and "E00000" not in held["Dept Sales"]
        assert {number: entry["dn"] for number, entry in people(slapd).items()} == entries  # same entries

        # everyone leaves R&D: its group goes (a group job deletes what leaves its source)
        for row in rows:
            if row["department"] == "R&D":
                row["department"] = "Sales"
        write_people(tmp_path, rows)
        emptied = await cycle(p)
        assert emptied["departments"].deleted == 1
        assert "Dept R&D" not in groups_by_cn(slapd, "employeeNumber")
        assert groups_by_cn(slapd, "employeeNumber") == expected_groups(rows)


async def test_a_row_that_cannot_be_read_changes_no_group_by_rule(tmp_path: Path, slapd: Slapd) -> None:
    rows = [person(i) for i in range(6)]
    write_people(tmp_path, rows)
    async with pipeline(tmp_path, config(tmp_path, slapd)) as p:
        await cycle(p)
        before = groups_by_cn(slapd, "employeeNumber")
        rows[0]["department"] = "Marketing"
        write_people(tmp_path, rows)
        source = tmp_path / "people.csv"
        source.write_bytes(source.read_bytes().replace(b"user2@example.org", b"user2@\xffexample.org"))
        summaries = await cycle(p, order=("departments", "sales-dach"))

    for name in ("departments", "sales-dach"):
        summary = summaries[name]
        assert summary.status == "failed" and summary.error is not None, summary
        assert "1 row(s) of the source of job 'people' could not be read (line 4:" in summary.error
        assert "no group by rule was changed" in summary.error
        assert (summary.created, summary.updated, summary.deleted) == (0, 0, 0)
    assert groups_by_cn(slapd, "employeeNumber") == before  # the mover stays where they were


@pytest.mark.parametrize(
    ("members", "where", "said"),
    [
        (
            {"job": "people", "rule": '[department] = "Sales" and'},
            "members.rule",
            "expected a value after 'and'",
        ),
        ({"job": "people", "rule": "[department] = Sales"}, "members.rule", "unknown name 'Sales'"),
        ({"job": "people", "rule": "Guid() = 1"}, "members.rule", "another answer at every evaluation"),
        ({"job": "people", "group_per": "department", "source": "x"}, "members.source", "are computed"),
        ({"job": "nobody", "group_per": "department"}, "members.job", "no job is named"),
    ],
)
def test_a_wrong_group_by_rule_names_the_field_and_the_fix(
    tmp_path: Path, slapd: Slapd, members: dict[str, Any], where: str, said: str
) -> None:
    raw = config(tmp_path, slapd)
    raw["jobs"][1]["members"] = members
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert f"jobs[1].{where}" in str(caught.value) and said in str(caught.value), str(caught.value)


def test_a_group_by_rule_with_its_own_source_is_refused(tmp_path: Path, slapd: Slapd) -> None:
    raw = config(tmp_path, slapd)
    raw["jobs"][1]["source"] = {"type": "csv", "path": "groups.csv", "id_column": "id"}
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert "jobs[1].source" in str(caught.value) and "member job's source" in str(caught.value)


async def test_many_membership_removals_are_held_by_the_mass_change_guard_and_go_once_approved(
    tmp_path: Path, slapd: Slapd
) -> None:
    """An export whose department column came wrong for many: their groups would lose them all at once.
    The removals wait for approval (the group keeps those members); what the cycle adds goes on."""
    rows = [person(i) for i in range(12)]
    write_people(tmp_path, rows)
    raw = config(tmp_path, slapd)
    raw["jobs"][1]["mass_change_guard"] = {"count": 2, "percent": 10}
    async with pipeline(tmp_path, raw) as p:
        people_job, departments, _ = p.runner.config.jobs
        await cycle(p)
        before = groups_by_cn(slapd, "employeeNumber")
        sales = [r for r in rows if r["department"] == "Sales"]
        assert len(sales) == 4
        for row in sales[1:]:
            row["department"] = (
                "Marketing"  # three leave Sales (one stays): three removals of twelve, above 2 and 10 %
            )
        write_people(tmp_path, rows)
        await p.runner.run_cycle(people_job)
        shown: list[PlannedObject] = []  # `roster plan` says what the cycle will hold, and why
        plan = await plan_job(departments, p.state, shown.append)
        assert [(o.source_id, o.action, o.held) for o in shown] == [
            ("Marketing", "update", None),
            ("Sales", "update", "mass_change"),
        ]
        reason = "members would be removed: 3 of 12 group memberships (25%), above the threshold of 2 and 10%"
        assert [h.reason for h in plan.holds] == [reason]
        held = await p.runner.run_cycle(departments)
        assert (held.status, held.staged_updates, held.updated, held.deleted) == ("held", 1, 1, 0), held
        (hold,) = held.holds
        assert (hold.kind, hold.reason) == ("mass_change", reason)
        now = groups_by_cn(slapd, "employeeNumber")
        assert now["Dept Sales"] == before["Dept Sales"]  # kept
        assert now["Dept Marketing"] == expected_groups(rows)["Dept Marketing"]  # the additions went

        approved = await p.runner.run_cycle(departments, approved=frozenset({"Sales"}))
        assert (approved.status, approved.staged, approved.updated) == ("succeeded", 0, 1), approved
    departments_now = {
        n: m for n, m in groups_by_cn(slapd, "employeeNumber").items() if n.startswith("Dept ")
    }
    assert departments_now == {n: m for n, m in expected_groups(rows).items() if n.startswith("Dept ")}
