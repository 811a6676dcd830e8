"""A rename and a membership change of the same person in one cycle, end to end into a real OpenLDAP.

The person's name feeds the DN. Renamed and dropped from a group together, the directory (refint) or the
connector (relink) rewrites the group's `member` value to the new DN before the group job removes the
member: the removal must reach the entry's current DN, and a later cycle must find nothing left to do
because the directory, read back, agrees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.errors import PermanentError
from common.peers.ldap_names import canonical_dn
from tests.integration.pipeline import pipeline
from tests.integration.test_ldap_cycle import GROUPS, PEOPLE, cycle, files_config, write_sources
from tests.slapd import Slapd
from workers.connectors.base import Outcome
from workers.connectors.ldap.connector import LdapConnector


def person(i: int, **overrides: Any) -> dict[str, Any]:
    return {"employee_id": f"E{i}", "login": f"user{i}", "name": f"Person {i}", **overrides}


def config(tmp_path: Path, server: Slapd) -> dict[str, Any]:
    mappings = [
        {"target": "employeeNumber", "source": "employee_id", "match": True},
        {"target": "userName", "source": "login"},
        {"target": "familyName", "source": "name"},
        {"target": "displayName", "source": "name"},
    ]
    return files_config(tmp_path, server, mappings=mappings, batch_size=50, first_delay_ms=50, tiers=3)


def members(server: Slapd) -> dict[str, list[str]]:
    """Each group's members as the employee numbers of their entries (a DN that names no entry stays a DN)."""
    found = server.entries(PEOPLE, "(employeeNumber=*)", ["employeeNumber"])
    of = {canonical_dn(dn): e["employeenumber"][0] for dn, e in found.items()}
    return {
        e["cn"][0]: sorted(of.get(canonical_dn(m), m) for m in e.get("member", []))
        for e in server.entries(GROUPS, "(objectClass=groupOfNames)", ["cn", "member"]).values()
    }


def uids(server: Slapd) -> dict[str, str]:
    return {
        e["employeenumber"][0]: e["uid"][0] for e in server.entries(PEOPLE, "(employeeNumber=*)").values()
    }


@pytest.mark.parametrize("refint", [False, True], ids=["relinked-by-roster", "refint-overlay"])
@pytest.mark.parametrize(
    "order", [("people", "teams"), ("teams", "people")], ids=["users-first", "groups-first"]
)
async def test_a_person_renamed_and_dropped_from_a_group_in_one_cycle_leaves_the_group(
    tmp_path: Path, slapd_factory: Any, refint: bool, order: tuple[str, str]
) -> None:
    server = slapd_factory(refint=refint)
    rows = [person(i) for i in range(3)]
    team = {"team_id": "T1", "name": "Team", "members": ["E0", "E1", "E2"]}
    write_sources(tmp_path, rows, [team])
    async with pipeline(tmp_path, config(tmp_path, server)) as p:
        first = await cycle(p)
        assert (first["people"].created, first["teams"].created) == (3, 1)
        assert members(server) == {"Team": ["E0", "E1", "E2"]}

        rows[1] = person(1, login="user1-renamed")
        write_sources(tmp_path, rows, [{**team, "members": ["E0", "E2"]}])
        second = await cycle(p, order)
        assert (second["people"].updated, second["teams"].updated) == (1, 1)
        assert second["people"].failed == second["teams"].failed == 0
        assert uids(server)["E1"] == "user1-renamed"
        assert members(server) == {"Team": ["E0", "E2"]}

        # Groups first, the removal went out before the rename: the group is checked once more at the
        # person's new DN (the engine cannot tell which came first), then nothing is left to do.
        third = await cycle(p)
        assert [s.changed for s in third.values()] == ([0, 0] if order[0] == "people" else [0, 1])
        assert members(server) == {"Team": ["E0", "E2"]}
        fourth = await cycle(p)
        assert [s.changed for s in fourth.values()] == [0, 0]
    assert members(server) == {"Team": ["E0", "E2"]}


class TwoWorkers:
    """Users through one connector, groups through another (two workers, each with its own memory),
    and the result of the first rename lost after the directory applied it."""

    gate = None

    def __init__(self, users: LdapConnector) -> None:
        self.users = users
        self.groups = LdapConnector("other-worker", users.settings)
        self.lose_rename = False

    async def open(self) -> None:
        await self.users.open()
        await self.groups.open()

    async def aclose(self) -> None:
        await self.groups.aclose()
        await self.users.aclose()

    async def apply(self, ops: Any) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for one in ops:
            connector = self.users if one.object_type == "user" else self.groups
            (outcome,) = await connector.apply([one])
            if self.lose_rename and one.object_type == "user" and one.action == "update":
                self.lose_rename = False
                outcome = PermanentError("injected: the worker died before reporting this rename")
            outcomes.append(outcome)
        return outcomes


@pytest.mark.parametrize("refint", [False, True], ids=["relinked-by-roster", "refint-overlay"])
async def test_a_rename_whose_result_was_lost_on_one_worker_and_a_leave_on_another_converge(
    tmp_path: Path, slapd_factory: Any, refint: bool
) -> None:
    """The group's removal goes out with the old DN (the state never heard of the rename) and finds
    nothing; once the rename's retry reports the new DN, the group is planned again and removes it."""
    server = slapd_factory(refint=refint)
    rows = [person(i) for i in range(3)]
    team = {"team_id": "T1", "name": "Team", "members": ["E0", "E1", "E2"]}
    write_sources(tmp_path, rows, [team])
    workers: list[TwoWorkers] = []

    def wrap(connector: LdapConnector) -> TwoWorkers:
        workers.append(TwoWorkers(connector))
        return workers[-1]

    async with pipeline(tmp_path, config(tmp_path, server), wrap=wrap) as p:
        await cycle(p)
        assert members(server) == {"Team": ["E0", "E1", "E2"]}

        rows[1] = person(1, login="user1-renamed")
        write_sources(tmp_path, rows, [{**team, "members": ["E0", "E2"]}])
        for worker in workers:
            worker.lose_rename = True
        second = await cycle(p)
        assert (second["people"].failed, second["teams"].updated) == (1, 1)
        assert uids(server)["E1"] == "user1-renamed"

        third = await cycle(p)
        assert (third["people"].updated, third["people"].failed, third["teams"].updated) == (1, 0, 1)
        assert members(server) == {"Team": ["E0", "E2"]}
        fourth = await cycle(p)
        assert [s.changed for s in fourth.values()] == [0, 0]
    assert members(server) == {"Team": ["E0", "E2"]}
