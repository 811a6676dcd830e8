"""`roster run` as a user runs it: a subprocess on a YAML file, its output and exit code."""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.integration.pipeline import job_config, person, sql_target, write_csv

ROSTER = [sys.executable, "-m", "common.process.launcher"]
REPO = Path(__file__).resolve().parents[2]


def _write_config(tmp_path: Path, **job: object) -> Path:
    raw = {**job_config(tmp_path, **job), **sql_target("sqlite:///target.db")}
    raw["engine"]["state"] = "state.db"
    file = tmp_path / "jobs.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


def _roster(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [*ROSTER, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, check=False
    )


def _active_rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT employee_id, active FROM accounts").fetchall())


def test_run_provisions_then_does_nothing_then_applies_exactly_the_edits(tmp_path: Path) -> None:
    rows = [person(i) for i in range(200)]
    write_csv(tmp_path / "people.csv", rows)
    file = _write_config(tmp_path)

    first = _roster("run", str(file))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Provisioning summary" in first.stdout
    assert _line(first.stdout, "created") == ["created", "200"]
    assert len(_active_rows(tmp_path / "target.db")) == 200

    second = _roster("run", str(file))
    assert second.returncode == 0
    assert (
        "no change since the last applied state (200 objects); the target itself was not read back"
        in second.stdout
    )
    assert "already matches" not in second.stdout  # nothing read the target: no such claim

    with sqlite3.connect(tmp_path / "target.db") as conn:
        conn.execute("UPDATE accounts SET department = 'HACKED' WHERE employee_id = 'E00007'")
    reconciled = _roster("reconcile", str(file), "people")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert "E00007: drifted: department: expected" in reconciled.stdout
    assert "1 drifted object(s) corrected" in reconciled.stdout
    with sqlite3.connect(tmp_path / "target.db") as conn:
        conn.execute("INSERT INTO accounts (employee_id, active) VALUES ('X0001', 1)")
    orphaned = _roster("reconcile", str(file), "people", "--report-only")
    assert orphaned.returncode == 3, orphaned.stdout + orphaned.stderr  # a person must look
    assert "X0001: orphan: in the target, with no source object" in orphaned.stdout
    assert "left as found (reported only, by the job's `reconcile:` policy): 1 orphan" in orphaned.stdout
    with sqlite3.connect(tmp_path / "target.db") as conn:
        conn.execute("DELETE FROM accounts WHERE employee_id = 'X0001'")
    after = _roster("run", str(file))
    assert re.search(
        r"last reconciled \d+ s ago, which found 0 drifted, 0 missing, 0 unlinked, 1 orphan", after.stdout
    )

    rows[3] = person(3, department="Legal")
    write_csv(tmp_path / "people.csv", rows[:150])
    third = _roster("run", str(file))
    assert third.returncode == 0
    assert _line(third.stdout, "updated") == ["updated", "1"]
    assert _line(third.stdout, "disabled") == ["disabled", "50"]
    assert _line(third.stdout, "unchanged") == ["unchanged", "149"]
    active = _active_rows(tmp_path / "target.db")
    assert sorted(k for k, v in active.items() if not v) == [f"E{i:05d}" for i in range(150, 200)]


def test_a_malformed_row_is_reported_with_its_line_and_the_other_rows_are_provisioned(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(20)])
    lines = (tmp_path / "people.csv").read_text(encoding="utf-8").splitlines()
    lines.insert(5, "E09999,too,few")
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    file = _write_config(tmp_path)

    result = _roster("run", str(file))
    assert result.returncode == 3, result.stdout + result.stderr  # an incomplete read: a person must look
    assert _line(result.stdout, "created") == ["created", "20"]
    assert "the source was read incompletely" in result.stdout
    assert "1 source row(s) skipped" in result.stdout
    assert "line 6:" in result.stdout
    assert "E09999" not in _active_rows(tmp_path / "target.db")


def test_serve_runs_on_the_schedule_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(10)])
    file = _write_config(tmp_path, schedule={"interval_s": 1})
    process = subprocess.Popen(
        [*ROSTER, "run", "--serve", str(file), "--api-listen", "127.0.0.1:0"],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _finished_cycles(tmp_path / "state.db") < 2:
            time.sleep(0.2)
        assert _finished_cycles(tmp_path / "state.db") >= 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()
    assert len(_active_rows(tmp_path / "target.db")) == 10


def _finished_cycles(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM cycles WHERE finished_at IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _line(output: str, label: str) -> list[str]:
    for line in output.splitlines():
        words = line.split()
        if words and words[0] == label:
            return words
    raise AssertionError(f"no {label!r} line in:\n{output}")


def test_plan_reconcile_shows_the_targets_old_values_and_writes_nothing(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(30)])
    file = _write_config(tmp_path)
    assert _roster("run", str(file)).returncode == 0
    with sqlite3.connect(tmp_path / "target.db") as conn:
        conn.execute("UPDATE accounts SET department = 'HACKED' WHERE employee_id = 'E00004'")
        conn.execute("INSERT INTO accounts (employee_id, active) VALUES ('X0001', 1)")
    before = _contents(tmp_path / "state.db"), _contents(tmp_path / "target.db")

    planned = _roster("plan", str(file), "--reconcile", "--output", "json")

    assert planned.returncode == 0, planned.stdout + planned.stderr
    lines = [json.loads(line) for line in planned.stdout.splitlines()]
    assert lines[0] == {
        "job": "people",
        "source_id": "E00004",
        "target_id": "E00004",
        "situation": "drifted",
        "action": "update",
        "changes": {"department": {"old": "HACKED", "new": person(4)["department"] or "Unassigned"}},
    }
    assert lines[1]["situation"] == "orphan" and lines[1]["action"] == "report"
    assert lines[2] == {"job": "people", "totals": {"in_step": 29, "drifted": 1, "orphan": 1}, "error": None}
    assert (_contents(tmp_path / "state.db"), _contents(tmp_path / "target.db")) == before  # nothing written


def _contents(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of a SQLite file, in order."""
    with sqlite3.connect(db) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(map(tuple, conn.execute(f'SELECT * FROM "{t}"')), key=repr) for t in tables}


def test_what_the_local_commands_do_is_in_the_audit_trail_under_the_login(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(5)])
    file = _write_config(tmp_path)
    assert _roster("run", str(file)).returncode == 0
    assert _roster("provision", str(file), "people", "E00001").returncode == 0
    assert _roster("reconcile", str(file), "people", "--report-only").returncode == 0  # changes nothing
    assert _roster("reconcile", str(file), "people").returncode == 0
    with sqlite3.connect(tmp_path / "state.db") as conn:
        trail = conn.execute(
            "SELECT actor_kind, actor_name, address, action, job, object, outcome FROM audit ORDER BY id"
        ).fetchall()
        cycles = [row[0] for row in conn.execute("SELECT cycle_id FROM cycles ORDER BY started_at")]
    login = getpass.getuser()
    assert [row[:3] for row in trail] == [("local_user", login, "local")] * 3
    assert [row[3:] for row in trail] == [
        ("trigger", "people", cycles[0], "done"),
        ("provision", "people", "E00001", "done"),
        ("reconcile", "people", trail[2][5], "done"),
    ]
    assert trail[2][5] in cycles and trail[2][5] != cycles[0]
