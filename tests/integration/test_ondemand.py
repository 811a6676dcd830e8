"""`roster preview` and `roster provision`: one object, every step shown, nothing else touched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml

from tests.integration.pipeline import person, write_csv
from tests.integration.test_cli import _roster, _write_config


def _rows(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db) as conn:
        return {r[0]: r[1:] for r in conn.execute("SELECT employee_id, department, active FROM accounts")}


def test_preview_shows_scoping_mapping_and_the_operation_and_writes_nothing(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(5)])
    scoping = [{"clauses": [{"attribute": "department", "operator": "IS NOT NULL"}]}]
    file = _write_config(tmp_path, scoping=scoping)

    shown = _roster("preview", str(file), "people", "E00002")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    out = shown.stdout
    assert "line 4 of the source" in out
    assert "department IS NOT NULL" in out and "-> yes" in out
    assert "Nuñez, Jr." in out and "Example Corp" in out
    assert "operation: create (not in the target yet)" in out
    assert not (tmp_path / "state.db").exists() and not (tmp_path / "target.db").exists()

    out_of_scope = _roster("preview", str(file), "people", "E00001").stdout  # department is empty
    assert "-> no" in out_of_scope and "in scope: no" in out_of_scope


def test_provision_applies_exactly_one_object_and_shows_its_log_record(tmp_path: Path) -> None:
    rows = [person(i) for i in range(6)]
    write_csv(tmp_path / "people.csv", rows)
    file = _write_config(tmp_path)
    assert _roster("run", str(file)).returncode == 0

    rows[2] = person(2, department="Legal")
    rows[3] = person(3, department="Legal")
    write_csv(tmp_path / "people.csv", rows)
    done = _roster("provision", str(file), "people", "E00002")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "operation: update (its mapped attributes changed" in done.stdout
    assert "result: update succeeded after 1 attempt(s), target id E00002" in done.stdout

    target = _rows(tmp_path / "target.db")
    assert target["E00002"] == ("Legal", 1)
    assert target["E00003"] == ("People", 1)  # changed in the source too, but not asked for

    again = _roster("provision", str(file), "people", "E00002")
    assert "result: nothing was sent" in again.stdout


def test_provision_holds_a_deprovision_when_rows_could_not_be_read(tmp_path: Path) -> None:
    """The person's own row is unreadable: on demand, as in a cycle, that is no reason to disable them."""
    write_csv(tmp_path / "people.csv", [person(i) for i in range(6)])
    file = _write_config(tmp_path)
    assert _roster("run", str(file)).returncode == 0
    source = tmp_path / "people.csv"
    source.write_bytes(source.read_bytes().replace(b"user2@example.org", b"user2@\xffexample.org"))

    done = _roster("provision", str(file), "people", "E00002")
    assert done.returncode == 1, done.stdout + done.stderr
    said = " ".join(done.stdout.split())
    assert "disabled (disable policy), but 1 source row(s) could not be read, so that is held" in said
    assert "held for approval (incomplete read: 1 source row(s) could not be read" in said
    assert _rows(tmp_path / "target.db")["E00002"][1] == 1  # still active


def test_provision_holds_a_deprovision_past_the_guard_or_the_shrink_check(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(4)])
    file = _write_config(tmp_path, deletion_guard={"count": 500, "percent": 20}, source_min_objects=4)
    assert _roster("run", str(file)).returncode == 0
    write_csv(tmp_path / "people.csv", [person(i) for i in range(4) if i != 2])

    done = _roster("provision", str(file), "people", "E00002")
    assert done.returncode == 1, done.stdout + done.stderr
    said = " ".join(done.stdout.split())
    assert "source shrink: the source has 3 objects, fewer than source_min_objects (4)" in said
    assert "deletion guard: 1 of 4 objects would be disabled or deleted (25%)" in said
    assert _rows(tmp_path / "target.db")["E00002"][1] == 1

    relaxed = _write_config(tmp_path, deletion_guard=False)  # both checks off: the deprovision goes
    gone = _roster("provision", str(relaxed), "people", "E00002")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert _rows(tmp_path / "target.db")["E00002"][1] == 0


def test_preview_shows_a_target_path_with_its_filter_whole(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(3)])
    file = _write_config(tmp_path)
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    raw["jobs"][0]["mappings"].append({"target": 'emails[type eq "work"].value', "source": "email"})
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    shown = _roster("preview", str(file), "people", "E00001")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert 'emails[type eq "work"].value' in shown.stdout
