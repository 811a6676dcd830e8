"""Rehire (`rehire:`) against a real slapd: a person whose account was deleted comes back, under a new
worker id and with a new login from HR, and gets the old uid (so the old DN) again, found by the
employee number that survived; the same person coming back under the same id does too. Their history
shows the gap, and a person who never left is untouched. Wrong settings name the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from common.peers.ldap_names import canonical_dn
from engine.api.admin import Admin
from engine.config import parse_engine_config
from tests.integration.pipeline import pipeline
from tests.integration.test_ldap_cycle import PEOPLE_MAPPINGS
from tests.integration.test_ldap_cycle import people as ldap_people
from tests.integration.test_ldap_cycle import person as ldap_person
from tests.integration.test_ldap_cycle import target as ldap_target
from tests.integration.test_rule_groups import write_people
from tests.slapd import Slapd

# The uid is made once, on create (as identity teams map a login that must never change).
MAPPINGS = [{**m, "apply": "on_create"} if m["target"] == "userName" else m for m in PEOPLE_MAPPINGS]
REHIRE = {"key": "employeeNumber", "keep": ["userName"]}


def config(tmp_path: Path, slapd: Slapd, **job: Any) -> dict[str, Any]:
    return {
        "engine": {"batch_size": 50, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "worker_id"},
                "target": "directory",
                "mappings": MAPPINGS,
                "deprovision": "delete",
                "deletion_guard": False,
                "source_max_drop_percent": 100,
                **job,
            }
        ],
        "targets": [ldap_target(slapd)],
    }


async def test_a_rehire_after_deletion_gets_the_old_uid_and_the_history_shows_the_gap(
    tmp_path: Path, slapd: Slapd
) -> None:
    rows = [ldap_person(i, worker_id=f"W{i}") for i in range(4)]
    write_people(tmp_path, rows)
    async with pipeline(tmp_path, config(tmp_path, slapd, rehire=REHIRE)) as p:
        (job,) = p.runner.config.jobs
        assert (await p.runner.run_cycle(job)).created == 4
        entries = ldap_people(slapd)
        before = {row["employee_id"]: entries[row["employee_id"]]["dn"][0] for row in rows}
        uids = {row["employee_id"]: entries[row["employee_id"]]["uid"] for row in rows}

        write_people(tmp_path, [rows[0], rows[3]])  # W1 and W2 leave: their accounts are deleted
        assert (await p.runner.run_cycle(job)).deleted == 2
        assert set(ldap_people(slapd)) == {"E00000", "E00003"}

        # W1 comes back as W9 with a new login; W2 under the same id, also with a new login
        back = [
            rows[0],
            rows[3],
            {**rows[1], "worker_id": "W9", "login": "returner-one"},
            {**rows[2], "login": "returner-two"},
        ]
        write_people(tmp_path, back)
        rehired = await p.runner.run_cycle(job)
        assert (rehired.created, rehired.failed) == (2, 0), rehired
        held = ldap_people(slapd)
        for employee in ("E00001", "E00002"):
            assert canonical_dn(held[employee]["dn"][0]) == canonical_dn(before[employee])
            assert held[employee]["uid"] == uids[employee]
        assert (await p.runner.run_cycle(job)).changed == 0

        (known,) = await Admin(p.runner, None).person("W9")
        (gap,) = known.gaps
        assert (gap.source_id, gap.returned_as) == ("W1", "W9")
        assert canonical_dn(gap.target_id or "") == canonical_dn(before["E00001"])
        assert gap.returned_at is not None and gap.returned_at >= gap.deleted_at
        (same,) = await Admin(p.runner, None).person("W2")
        assert [(g.source_id, g.returned_as) for g in same.gaps] == [("W2", "W2")]

        write_people(tmp_path, back[:3])  # W2 leaves again: a departure of its own, not back yet
        assert (await p.runner.run_cycle(job)).deleted == 1
        (again,) = await Admin(p.runner, None).person("W2")
        assert [(g.source_id, g.returned_as) for g in again.gaps] == [("W2", "W2"), ("W2", None)]

    assert set(ldap_people(slapd)) == {"E00000", "E00001", "E00003"}


async def test_without_rehire_a_returner_gets_the_new_login(tmp_path: Path, slapd: Slapd) -> None:
    """What the feature changes: the same returns, without `rehire:`, make an account of the new login."""
    rows = [ldap_person(i, worker_id=f"W{i}") for i in range(2)]
    write_people(tmp_path, rows)
    async with pipeline(tmp_path, config(tmp_path, slapd)) as p:
        (job,) = p.runner.config.jobs
        await p.runner.run_cycle(job)
        write_people(tmp_path, rows[:1])
        assert (await p.runner.run_cycle(job)).deleted == 1
        write_people(tmp_path, [rows[0], {**rows[1], "worker_id": "W9", "login": "returner-one"}])
        assert (await p.runner.run_cycle(job)).created == 1
    assert ldap_people(slapd)["E00001"]["uid"] == ["returner-one"]


@pytest.mark.parametrize(
    ("rehire", "field", "said"),
    [
        ({"key": "employeeId"}, "jobs[0].rehire.key", "employeeNumber"),
        ({"key": "employeeNumber", "keep": ["email"]}, "jobs[0].rehire.keep[0]", "apply: on_create"),
        ({"keep": ["userName"]}, "jobs[0].rehire", "key"),
    ],
)
def test_wrong_rehire_settings_name_the_field_and_the_fix(
    tmp_path: Path, rehire: dict[str, Any], field: str, said: str
) -> None:
    raw = {
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": "people.csv", "id_column": "worker_id"},
                "target": "directory",
                "mappings": MAPPINGS,
                "rehire": rehire,
            }
        ],
        "targets": [{"name": "directory", "type": "null"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert field in str(caught.value) and said in str(caught.value)
