"""A source read that cannot be trusted never deprovisions: `roster run` against a CSV or JSON Lines file
into SQLite, with unreadable rows, a file cut off mid-row or at a line, and a source that shrank; and
values no target may get (a NUL, a lone surrogate) refused per object."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.integration.pipeline import job_config, person, pipeline, sql_target, write_csv

ROSTER = [sys.executable, "-m", "common.process.launcher"]
REPO = Path(__file__).resolve().parents[2]
PEOPLE = 1000
GUARD = {"count": 500, "percent": 20}  # the defaults, said out loud: 10% and 15% pass it


def _write_config(tmp_path: Path, **job: Any) -> Path:
    raw = {**job_config(tmp_path, **job), **sql_target("sqlite:///target.db")}
    raw["engine"]["state"] = "state.db"
    file = tmp_path / "jobs.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


def _roster(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [*ROSTER, *args], capture_output=True, text=True, timeout=120, cwd=REPO, env=env, check=False
    )


def _active(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT employee_id, active FROM accounts").fetchall())


def _line(output: str, label: str) -> list[str]:
    for line in output.splitlines():
        if line.split()[:1] == [label]:
            return line.split()
    raise AssertionError(f"no {label!r} line in:\n{output}")


def _provisioned(tmp_path: Path, **job: Any) -> Path:
    """1,000 people in people.csv, provisioned by a first run that exits 0."""
    write_csv(tmp_path / "people.csv", [person(i) for i in range(PEOPLE)])
    file = _write_config(tmp_path, **job)
    first = _roster("run", str(file), "--no-progress")
    assert first.returncode == 0, first.stdout + first.stderr
    assert sum(_active(tmp_path / "target.db").values()) == PEOPLE
    return file


def _spoil(line: bytes, kind: int) -> bytes:
    """One CSV record made unreadable in one of the ways an export goes wrong."""
    head, _, rest = line.partition(b",")
    if kind == 0:  # a field over the csv module's size limit
        return head + b',"' + b"x" * 200_000 + b'",' + rest.split(b",", 1)[1]
    if kind == 1:  # a stray character after a closing quote
        return head + b',"Ana"x,' + rest.split(b",", 1)[1]
    if kind == 2:  # a byte that is not UTF-8
        return head + b",Jos\xe9," + rest.split(b",", 1)[1]
    return head + b",too,few"  # fewer fields than the header


def test_ten_percent_unreadable_rows_disable_no_one_and_the_run_says_incomplete_and_held(
    tmp_path: Path,
) -> None:
    file = _provisioned(tmp_path, deletion_guard=GUARD)
    path = tmp_path / "people.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    for n, i in enumerate(range(5, PEOPLE + 1, 10)):  # records 5, 15, ...: 100 of 1,000
        lines[i] = _spoil(lines[i].rstrip(b"\r\n"), n % 4) + b"\r\n"
    path.write_bytes(b"".join(lines))

    run = _roster("run", str(file), "--no-progress")
    out = run.stdout
    assert sum(1 for active in _active(tmp_path / "target.db").values() if not active) == 0, out
    assert run.returncode == 3, out  # not "all good", and nothing failed
    assert _line(out, "disabled") == ["disabled", "0"]
    assert _line(out, "rows") == ["rows", "skipped", "100"]
    assert _line(out, "held") == ["held", "100"]
    assert "the source was read incompletely: 100 row(s) could not be read" in out
    assert "100 deprovision(s) held for approval" in out
    assert "incomplete read: 100 source row(s) could not be read" in out
    assert "roster approve people" in out
    assert "no change since the last applied state" not in out
    assert "field larger than field limit" in out and "line 6:" in out


def test_a_file_cut_off_mid_row_disables_no_one(tmp_path: Path) -> None:
    # The shrink check is off (the harness's default): the torn last row alone must keep the cut file
    # from deprovisioning.
    file = _provisioned(tmp_path, deletion_guard=GUARD)
    path = tmp_path / "people.csv"
    data = path.read_bytes()
    end = data.rfind(b"\n", 0, int(len(data) * 0.85)) + 1
    path.write_bytes(data[: end + 10])  # the export stopped 10 bytes into a row: "E00848,Jos"

    run = _roster("run", str(file), "--no-progress")
    out = run.stdout
    assert not [k for k, active in _active(tmp_path / "target.db").items() if not active], out
    assert run.returncode == 3, out
    assert "ends the file in the middle of a row" in out and "the file looks cut off" in out
    assert "deprovision(s) held for approval" in out and "incomplete read: 1 source row(s)" in out


def test_a_file_cut_off_inside_a_quoted_field_disables_no_one(tmp_path: Path) -> None:
    file = _provisioned(tmp_path, deletion_guard=GUARD)  # the shrink check off, as above
    path = tmp_path / "people.csv"
    lines = path.read_bytes().splitlines(keepends=True)[:851]
    lines.append(b'E00850,"Ana')  # the export stopped inside a quoted name
    path.write_bytes(b"".join(lines))

    run = _roster("run", str(file), "--no-progress")
    assert not [k for k, active in _active(tmp_path / "target.db").items() if not active], run.stdout
    assert run.returncode == 3
    assert "still open at the end of the file" in run.stdout


def test_a_file_cut_at_a_line_boundary_trips_the_shrink_check(tmp_path: Path) -> None:
    file = _provisioned(tmp_path, deletion_guard=GUARD, source_max_drop_percent=10)
    path = tmp_path / "people.csv"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:851]))  # header + 850

    run = _roster("run", str(file), "--no-progress")
    out = run.stdout
    assert not [k for k, active in _active(tmp_path / "target.db").items() if not active], out
    assert run.returncode == 3, out
    assert "150 deprovision(s) held for approval" in out
    assert (
        "source shrink: the source has 850 objects, 15% fewer than the 1,000 of its last complete read" in out
    )


def test_a_source_below_source_min_objects_holds_its_deprovisions(tmp_path: Path) -> None:
    file = _provisioned(tmp_path, deletion_guard=False, source_min_objects=990)
    write_csv(tmp_path / "people.csv", [person(i) for i in range(980)])

    run = _roster("run", str(file), "--no-progress")
    assert sum(1 for active in _active(tmp_path / "target.db").values() if not active) == 0
    assert run.returncode == 3
    assert "source shrink: the source has 980 objects, fewer than source_min_objects (990)" in run.stdout


def test_guard_held_deprovisions_are_counted_and_never_called_nothing_to_do(tmp_path: Path) -> None:
    file = _provisioned(tmp_path, deletion_guard={"count": 5, "percent": 20})
    write_csv(tmp_path / "people.csv", [person(i) for i in range(990)])

    run = _roster("run", str(file), "--no-progress")
    out = run.stdout
    assert run.returncode == 3, out
    assert "no change since the last applied state" not in out
    assert _line(out, "held") == ["held", "10"]
    assert "deletion guard: 10 of 1000 objects would be disabled or deleted" in out
    assert "roster approve people" in out
    assert sum(_active(tmp_path / "target.db").values()) == PEOPLE


def test_a_nul_byte_in_a_value_is_refused_for_that_object_only_and_never_written(tmp_path: Path) -> None:
    rows = [person(i) for i in range(20)]
    rows[4] = person(4, family_name="Mül\x00ler")
    rows[7] = person(7, department="Sa\x1bles")
    write_csv(tmp_path / "people.csv", rows)
    file = _write_config(tmp_path)

    run = _roster("run", str(file), "--no-progress")
    assert run.returncode == 1, run.stdout  # two objects failed
    assert _line(run.stdout, "created") == ["created", "18"]
    assert _line(run.stdout, "failed") == ["failed", "2"]
    active = _active(tmp_path / "target.db")
    assert "E00004" not in active and "E00007" not in active and len(active) == 18
    assert _failures(tmp_path) == {
        "E00004": "last_name: holds a control character (U+0000 NUL) at character 4; the object is not "
        "sent (fix the value in the source)",
        "E00007": "department: holds a control character (U+001B) at character 3; the object is not "
        "sent (fix the value in the source)",
    }


def test_a_lone_surrogate_in_a_jsonl_value_is_refused_for_that_object_with_its_attribute(
    tmp_path: Path,
) -> None:
    lines = [orjson.dumps(person(i)) for i in range(10)]
    lines[3] = lines[3].replace(b'"email":"user3@', b'"email":"\\ud800user3@')
    (tmp_path / "people.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    raw = job_config(tmp_path)
    raw["jobs"][0]["source"] = {"path": str(tmp_path / "people.jsonl"), "id_column": "employee_id"}
    file = tmp_path / "jobs.yaml"
    raw = {**raw, **sql_target("sqlite:///target.db")}
    raw["engine"]["state"] = "state.db"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")

    run = _roster("run", str(file), "--no-progress")
    assert run.returncode == 1, run.stdout
    active = _active(tmp_path / "target.db")
    assert len(active) == 9 and "E00003" not in active
    assert _failures(tmp_path) == {
        "E00003": "email: holds a lone surrogate (U+D800) at character 1, which is not valid Unicode "
        "text; the object is not sent (fix the value in the source)"
    }
    with sqlite3.connect(tmp_path / "target.db") as conn:  # every value the target holds is UTF-8
        conn.text_factory = bytes
        for row in conn.execute("SELECT * FROM accounts"):
            for value in row:
                if isinstance(value, bytes):
                    value.decode("utf-8")


def _failures(tmp_path: Path) -> dict[str, str]:
    with sqlite3.connect(tmp_path / "state.db") as conn:
        rows = conn.execute(
            "SELECT source_id, error_message FROM log_view WHERE status = 'failed'"
        ).fetchall()
    return dict(rows)


async def test_only_a_complete_read_that_passed_the_shrink_check_becomes_the_one_to_compare_with(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(100)])
    raw = {
        **job_config(tmp_path, source_max_drop_percent=10),
        **sql_target(f"sqlite:///{tmp_path / 'target.db'}"),
    }
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        assert (await p.runner.run_cycle(job)).status == "succeeded"
        assert p.runner.control.last_complete_read("people") == 100

        write_csv(tmp_path / "people.csv", [person(i) for i in range(80)])
        held = await p.runner.run_cycle(job)
        assert (held.status, held.staged, held.disabled) == ("held", 20, 0)
        assert [h.kind for h in held.holds] == ["source_shrink"]
        assert p.runner.control.last_complete_read("people") == 100  # a suspicious read is not the bar

        approved = frozenset(source_id for source_id, _ in await p.runner.control.staged("people"))
        done = await p.runner.run_cycle(job, approved=approved)
        assert (done.status, done.disabled, done.staged) == ("succeeded", 20, 0)
        assert p.runner.control.last_complete_read("people") == 80

        rows = [person(i) for i in range(80)]
        rows[5] = {**rows[5], "employee_id": ""}  # a row without an id: the read is incomplete
        write_csv(tmp_path / "people.csv", rows)
        incomplete = await p.runner.run_cycle(job)
        assert (incomplete.status, incomplete.staged, incomplete.skipped_rows) == ("incomplete", 1, 1)
        assert p.runner.control.last_complete_read("people") == 80
    async with pipeline(tmp_path, raw) as p:  # kept in the state store
        assert p.runner.control.last_complete_read("people") == 80
