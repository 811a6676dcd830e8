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
from tests.integration.test_dates import stopped_once_applied
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


async def test_a_rehire_applied_by_an_engine_stopped_before_its_result_keeps_the_old_uid_once(
    tmp_path: Path, slapd: Slapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine stops after the rehire's create reached the directory, before its result: the next
    engine plans it again, as a rehire still, and links the entry made rather than make another."""
    rows = [ldap_person(i, worker_id=f"W{i}") for i in range(3)]
    write_people(tmp_path, rows)
    raw = config(tmp_path, slapd, rehire=REHIRE)
    async with pipeline(tmp_path, raw) as p:
        (job,) = p.runner.config.jobs
        await p.runner.run_cycle(job)
        entries = ldap_people(slapd)
        write_people(tmp_path, [rows[0], rows[2]])
        assert (await p.runner.run_cycle(job)).deleted == 1
    back = [rows[0], rows[2], {**rows[1], "worker_id": "W9", "login": "returner-one"}]
    write_people(tmp_path, back)
    await stopped_once_applied(tmp_path, raw, monkeypatch)
    assert ldap_people(slapd)["E00001"]["uid"] == entries["E00001"]["uid"]
    async with pipeline(tmp_path, raw) as p:
        (job,) = p.runner.config.jobs
        again = await p.runner.run_cycle(job)
        assert (again.created, again.failed) == (1, 0), again
        (known,) = await Admin(p.runner, None).person("W9")
        assert [(g.source_id, g.returned_as) for g in known.gaps] == [("W1", "W9")]
    held = ldap_people(slapd)
    assert set(held) == {"E00000", "E00001", "E00002"}
    for employee in held:
        assert canonical_dn(held[employee]["dn"][0]) == canonical_dn(entries[employee]["dn"][0])
        assert held[employee]["uid"] == entries[employee]["uid"]


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
        ({"key": "secret"}, "jobs[0].rehire.key", "redacted"),
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
                "mappings": [*MAPPINGS, {"target": "secret", "expression": "Redact([login])"}],
                "rehire": rehire,
            }
        ],
        "targets": [{"name": "directory", "type": "null"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert field in str(caught.value) and said in str(caught.value)
