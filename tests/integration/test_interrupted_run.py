"""A `roster run` killed mid-cycle: the next start records its cycle as `interrupted`, not `running`."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import yaml

from tests.integration.pipeline import expected_row, job_config, person, sql_target, write_csv
from tests.integration.test_cli import REPO, ROSTER


def _cycles(state: Path) -> dict[str, str]:
    if not state.exists():
        return {}
    with sqlite3.connect(state) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'cycles'").fetchone():
            return {}
        return dict(conn.execute("SELECT cycle_id, status FROM cycles ORDER BY started_at").fetchall())


def _write(tmp_path: Path, target: dict) -> Path:
    raw = {**job_config(tmp_path, target="app"), "targets": [{**target, "name": "app"}]}
    raw["engine"]["state"] = "state.db"
    file = tmp_path / "jobs.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


def test_a_killed_roster_run_leaves_an_interrupted_cycle_not_a_running_one(tmp_path: Path) -> None:
    rows = [person(i) for i in range(200)]
    write_csv(tmp_path / "people.csv", rows)
    with socket.socket() as silent:  # a SCIM app that takes connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        app = {"type": "scim", "url": f"http://127.0.0.1:{silent.getsockname()[1]}/scim/v2", "timeout_s": 300}
        file = _write(tmp_path, app)
        run = [*ROSTER, "run", str(file), "--no-progress"]
        process = subprocess.Popen(run, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while "running" not in _cycles(tmp_path / "state.db").values():
                assert time.monotonic() < deadline, "the cycle never started"
                assert process.poll() is None, "roster run ended before the kill"
                time.sleep(0.05)
            process.kill()  # SIGKILL: no handler runs, nothing records the end of the cycle
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    [killed] = list(_cycles(tmp_path / "state.db"))

    _write(tmp_path, sql_target(f"sqlite:///{tmp_path / 'target.db'}")["targets"][0])
    again = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    cycles = _cycles(tmp_path / "state.db")
    assert cycles[killed] == "interrupted"
    assert list(cycles.values()) == ["interrupted", "succeeded"]
    with sqlite3.connect(tmp_path / "target.db") as conn:
        conn.row_factory = sqlite3.Row
        target = {r["employee_id"]: dict(r) for r in conn.execute("SELECT * FROM accounts")}
    assert set(target) == {r["employee_id"] for r in rows}
    for source in rows:
        assert {k: target[source["employee_id"]][k] for k in expected_row(source)} == expected_row(source)
