"""SelectUniqueValue into scim2-server and SQLite as into slapd (tests/integration/test_ldap_unique.py):
people whose first candidate collides each get their own value, it stays through later cycles, and no
SelectUniqueValue placeholder reaches any object of the target (every value read back)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.integration.pipeline import job_config, pipeline, sql_target, target_rows, write_csv
from tests.integration.pipeline import person as sql_person
from tests.integration.test_scim_groups import config, person, read_all, write_sources
from tests.scim_server import ScimServer

UNIQUE_LOGIN = 'SelectUniqueValue([login], Join(".", [given_name], [employee_id]), [employee_id])'


def assert_no_placeholder(objects: list[Any]) -> None:
    written = orjson.dumps(objects).decode()
    assert "$unique" not in written and "'$unique'" not in written


async def test_scim_users_whose_userName_collides_each_get_one_that_stays(
    tmp_path: Path, scim: ScimServer
) -> None:
    rows = [person(i, login="maria.pappas") for i in range(3)] + [person(3, login="MARIA.PAPPAS"), person(4)]
    raw = config(tmp_path, scim.url)
    raw["jobs"] = raw["jobs"][:1]
    mappings = raw["jobs"][0]["mappings"]
    mappings[1] = {"target": "userName", "expression": UNIQUE_LOGIN, "apply": "on_create"}
    write_sources(tmp_path, rows, [])
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        names = {u["externalId"]: u["userName"] for u in await read_all(scim, "Users")}
        write_sources(tmp_path, [dict(r, title="Changed") for r in rows], [])
        second = await p.runner.run_cycle(job)
        users = await read_all(scim, "Users")

    assert (first.created, first.failed, second.updated, second.failed) == (5, 0, 5, 0)
    assert len({n.casefold() for n in names.values()}) == 5  # one each, whatever the case
    # which of the four gets the first candidate depends on which request lands first (8 at a time)
    colliding = {k: v for k, v in names.items() if k != "E00004"}
    assert [v.casefold() for v in colliding.values()].count("maria.pappas") == 1
    given = {r["employee_id"]: r["given_name"] for r in rows}
    assert all(v.casefold() == "maria.pappas" or v == f"{given[k]}.{k}" for k, v in colliding.items())
    assert names["E00004"] == "user4@example.org"
    assert {u["externalId"]: u["userName"] for u in users} == names  # an update never flips them
    assert_no_placeholder(users)


async def test_sql_logins_that_collide_each_get_one_and_no_row_holds_a_placeholder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [sql_person(i, given_name="Ana", family_name="Silva") for i in range(4)]
    write_csv(tmp_path / "people.csv", rows)
    raw = job_config(tmp_path) | sql_target(url)
    raw["jobs"][0]["mappings"].append(
        {
            "target": "email",
            "expression": 'SelectUniqueValue("ana@example.org", Join("", [employee_id], "@example.org"))',
            "apply": "on_create",
        }
    )
    raw["jobs"][0]["mappings"] = [m for m in raw["jobs"][0]["mappings"] if m.get("source") != "email"]
    async with pipeline(tmp_path, raw) as p:
        first = await p.runner.run_cycle(p.runner.config.jobs[0])
        second = await p.runner.run_cycle(p.runner.config.jobs[0])
    held = await target_rows(url)
    assert (first.created, first.failed, second.changed) == (4, 0, 0)
    assert sorted(r["email"] for r in held.values()) == sorted(
        ["ana@example.org", "E00001@example.org", "E00002@example.org", "E00003@example.org"]
    )
    assert_no_placeholder(list(held.values()))
