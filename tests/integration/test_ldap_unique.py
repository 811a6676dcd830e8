"""SelectUniqueValue into a real directory (a private slapd): people whose first uid candidate collides
each get an entry with a free uid, the uid stays through later cycles, and no SelectUniqueValue
placeholder reaches any entry (every value of every entry is read back)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.pipeline import pipeline
from tests.integration.test_ldap_cycle import PEOPLE, files_config, people, write_sources
from tests.slapd import Slapd

MAPPINGS = [
    {"target": "employeeNumber", "source": "employee_id", "match": True},
    {"target": "userName", "expression": "SelectUniqueValue([login], [email])", "apply": "on_create"},
    {"target": "givenName", "source": "given_name"},
    {"target": "familyName", "source": "family_name"},
    {"target": "displayName", "expression": 'Join(" ", [given_name], [family_name])'},
    {"target": "email", "source": "email"},
]


def person(i: int, login: str, email: str, **overrides: Any) -> dict[str, Any]:
    return {
        "employee_id": f"E{i:05d}",
        "login": login,
        "given_name": "Maria",
        "family_name": f"Pappas {i}",
        "email": email,
        **overrides,
    }


def assert_no_placeholder(server: Slapd) -> None:
    for dn, entry in server.entries(PEOPLE).items():
        assert "$unique" not in dn, dn
        for name, values in entry.items():
            assert not any("$unique" in v for v in values), (dn, name, values)


async def test_colliding_uids_each_get_a_free_one_that_stays(tmp_path: Path, slapd: Slapd) -> None:
    rows = [
        person(1, "maria.pappas", "maria.pappas@example.com"),
        person(2, "maria.pappas", "maria.pappas@ext.example.com"),
        person(3, "MARIA.PAPPAS", "mpappas@example.com"),  # the first candidate again, in another case
        person(4, "john.roe", "john.roe@example.com"),
    ]
    write_sources(tmp_path, rows, [])
    raw = files_config(tmp_path, slapd, mappings=MAPPINGS)
    raw["jobs"] = raw["jobs"][:1]
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        held = people(slapd)
        uids = {number: entry["uid"] for number, entry in held.items()}
        rows[1] = {**rows[1], "given_name": "Mary"}  # an update: the uid set on create stays
        write_sources(tmp_path, rows, [])
        second = await p.runner.run_cycle(job)
        third = await p.runner.run_cycle(job)

    assert (first.created, first.failed) == (4, 0)
    assert uids == {
        "E00001": ["maria.pappas"],
        "E00002": ["maria.pappas@ext.example.com"],
        "E00003": ["mpappas@example.com"],
        "E00004": ["john.roe"],
    }
    assert (second.updated, second.failed, third.updated, third.failed) == (1, 0, 0, 0)
    after = people(slapd)
    assert {number: entry["uid"] for number, entry in after.items()} == uids
    assert after["E00002"]["givenname"] == ["Mary"] and after["E00002"]["dn"][0].startswith(
        "uid=maria.pappas@ext"
    )
    assert_no_placeholder(slapd)


async def test_every_candidate_taken_fails_that_person_only_and_writes_nothing_of_it(
    tmp_path: Path, slapd: Slapd
) -> None:
    rows = [person(i, "ann", "ann@example.com") for i in (1, 2, 3)] + [person(4, "bo", "bo@x.org")]
    write_sources(tmp_path, rows, [])
    raw = files_config(tmp_path, slapd, mappings=MAPPINGS)
    raw["jobs"] = raw["jobs"][:1]
    async with pipeline(tmp_path, raw) as p:
        summary = await p.runner.run_cycle(p.runner.config.jobs[0])
        failed = [r for r in await p.state.log_records(job="people") if r["status"] == "failed"]

    assert (summary.created, summary.failed) == (3, 1)
    # In the order of the batch, whatever thread of the worker's pool would have run first.
    held = people(slapd)
    assert sorted(held) == ["E00001", "E00002", "E00004"]
    assert (held["E00001"]["uid"], held["E00002"]["uid"]) == (["ann"], ["ann@example.com"])
    assert [r["source_id"] for r in failed] == ["E00003"]
    assert "all unique candidates for 'userName' are taken" in failed[0]["error_message"]
    assert_no_placeholder(slapd)
