"""`roster plan`: the next cycle as a dry run, object by object and attribute by attribute, whose totals
are what `roster run` then does, and which writes nothing; `roster preview` shows the same diff."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from tests.integration.pipeline import person, write_csv
from tests.integration.test_cli import _line, _roster, _write_config


def _plan_json(file: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The objects of a one-job plan by source id, and its totals line."""
    done = _roster("plan", str(file), "--output", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    *objects, totals = lines
    assert "totals" in totals and all("totals" not in line for line in objects)
    return {line["source_id"]: line for line in objects}, totals


def _stored(db: Path) -> dict[str, Any]:
    """Every table of a SQLite file, row by row (the state store, or the target)."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}


def _digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def test_plan_totals_are_what_the_run_then_does_and_the_plan_writes_nothing(tmp_path: Path) -> None:
    rows = [person(i) for i in range(300)]
    write_csv(tmp_path / "people.csv", rows)
    file = _write_config(tmp_path)
    assert _roster("run", str(file)).returncode == 0

    rows[3] = person(3, email="", department="Legal")  # email emptied, department changed
    rows[5] = person(5, given_name="Ann")
    rows[7] = person(7, department="")  # "People" -> the mapping's default "Unassigned"
    write_csv(tmp_path / "people.csv", rows[:280] + [person(i) for i in range(300, 310)])
    state, target = _stored(tmp_path / "state.db"), _digest(tmp_path / "target.db")

    objects, totals = _plan_json(file)
    assert _stored(tmp_path / "state.db") == state, "the plan wrote to the state store"
    assert _digest(tmp_path / "target.db") == target, "the plan wrote to the target"
    assert totals["totals"] == {
        "created": 10,
        "updated": 3,
        "disabled": 20,
        "deleted": 0,
        "unchanged": 277,
        "out_of_scope": 0,
        "failed": 0,
        "staged": 0,
        "staged_updates": 0,
        "pending_members": 0,
        "pending_references": 0,
    }
    assert objects["E00003"]["attributes"] == {
        "email": {"change": "emptied", "old": "user3@example.org", "new": None},
        "department": {"change": "changed", "old": "People", "new": "Legal"},
    }
    assert objects["E00005"]["attributes"] == {
        "first_name": {"change": "changed", "old": "Zoë", "new": "Ann"}
    }
    assert objects["E00007"]["attributes"] == {
        "department": {"change": "changed", "old": "People", "new": "Unassigned"}
    }
    assert objects["E00300"]["action"] == "create"
    assert objects["E00300"]["attributes"]["email"] == {
        "change": "added",
        "old": None,
        "new": "user300@example.org",
    }
    assert sorted(k for k, o in objects.items() if o["action"] == "disable") == [
        f"E{i:05d}" for i in range(280, 300)
    ]

    run = _roster("run", str(file))
    assert run.returncode == 0, run.stdout + run.stderr
    for label in ("created", "updated", "disabled", "deleted", "unchanged"):
        assert _line(run.stdout, label) == [label, str(totals["totals"][label])]
    with sqlite3.connect(tmp_path / "target.db") as conn:
        after = {
            r[0]: r[1:]
            for r in conn.execute("SELECT employee_id, email, department, first_name FROM accounts")
        }
    assert after["E00003"] == (None, "Legal", "Łukasz")
    assert after["E00005"][2] == "Ann" and after["E00007"][1] == "Unassigned"


def test_plan_of_a_job_never_run_writes_no_state_and_shows_the_first_objects_then_the_totals(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(30)])
    file = _write_config(tmp_path)

    shown = _roster("plan", str(file), "--limit", "2")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    out = shown.stdout
    assert "E00000" in out and "E00001" in out and "E00002" not in out
    assert 'added: (empty) -> "user1@example.org"' in out
    assert "... and 28 more object(s) with an operation" in out
    assert _line(out, "create") == ["create", "30"]
    assert not (tmp_path / "state.db").exists() and not (tmp_path / "target.db").exists()


def test_plan_shows_the_deletion_guards_hold_and_the_run_holds_as_many(tmp_path: Path) -> None:
    rows = [person(i) for i in range(200)]
    write_csv(tmp_path / "people.csv", rows)
    file = _write_config(tmp_path, deletion_guard={"count": 500, "percent": 20})
    assert _roster("run", str(file)).returncode == 0
    write_csv(tmp_path / "people.csv", rows[:100])

    objects, totals = _plan_json(file)
    assert totals["totals"]["staged"] == 100 and totals["totals"]["disabled"] == 0
    assert [hold["kind"] for hold in totals["holds"]] == ["deletion_guard"]
    assert "100 of 200 objects would be disabled or deleted (50%)" in totals["holds"][0]["reason"]
    assert {o["held"] for o in objects.values()} == {"deletion_guard"}

    run = _roster("run", str(file))
    assert run.returncode == 3, run.stdout + run.stderr
    assert _line(run.stdout, "held") == ["held", "100"]
    assert _line(run.stdout, "disabled") == ["disabled", "0"]


def test_preview_shows_what_an_update_changes_from_the_last_applied_values(tmp_path: Path) -> None:
    rows = [person(i) for i in range(4)]
    write_csv(tmp_path / "people.csv", rows)
    file = _write_config(tmp_path)
    assert _roster("run", str(file)).returncode == 0
    rows[2] = person(2, department="Legal", email="")
    write_csv(tmp_path / "people.csv", rows)

    shown = _roster("preview", str(file), "people", "E00002")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "operation: update" in shown.stdout
    assert 'department: changed: "R&D" -> "Legal"' in shown.stdout
    assert 'email: emptied: "user2@example.org" -> (empty)' in shown.stdout
