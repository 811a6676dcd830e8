"""A `roster run` killed mid-cycle: the next start records its cycle as `interrupted`, not `running`."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from engine.store.history import LogFilter, query_log
from engine.store.state import StateStore, state_url
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


def _log_statuses(state: Path) -> dict[str, int]:
    """The provisioning log's records by status, read as `roster logs` reads them."""

    async def read() -> list[dict[str, object]]:
        async with StateStore(state_url(str(state))) as store:
            return await query_log(store, LogFilter(limit=10_000))

    return dict(Counter(str(record["status"]) for record in asyncio.run(read())))


@contextmanager
def _silent_run(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`roster run` against a SCIM app that takes connections and never answers, its cycle running
    and its batches taken by the worker; killed at the end if it is still there."""
    write_csv(tmp_path / "people.csv", [person(i) for i in range(200)])
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/scim/v2"
        file = _write(tmp_path, {"type": "scim", "url": url, "timeout_s": 300})
        process = subprocess.Popen(
            [*ROSTER, "run", str(file), "--no-progress"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "running" not in _cycles(tmp_path / "state.db").values():
                assert time.monotonic() < deadline, "the cycle never started"
                assert process.poll() is None, "roster run ended before the signal"
                time.sleep(0.05)
            time.sleep(0.5)  # the worker takes its batches
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=30)


def test_ctrl_c_says_what_roster_run_waits_for_and_records_the_cycle_interrupted(tmp_path: Path) -> None:
    with _silent_run(tmp_path) as process:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert re.search(
        r"stopping: waiting for \d+ batch\(es\) in flight \(\d+ operations\) to come back \(at most 10 s\); "
        r"Ctrl-C again to exit now",
        out,
    ), out
    [cycle] = list(_cycles(tmp_path / "state.db").items())
    assert cycle[1] == "interrupted"
    assert f"stopped: cycle {cycle[0]} interrupted; 200 operation(s) not sent, planned again" in out
    # Nothing came back from the silent app: every operation has one final record saying so.
    assert _log_statuses(tmp_path / "state.db") == {"lost-in-transit": 200}
    assert "Traceback" not in err


def test_a_second_ctrl_c_exits_at_once_and_says_what_it_leaves(tmp_path: Path) -> None:
    with _silent_run(tmp_path) as process:
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        asked = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        took_s = time.monotonic() - asked
    assert process.returncode == 130 and took_s < 3, (took_s, out + err)
    [(cycle_id, status)] = list(_cycles(tmp_path / "state.db").items())
    assert "stopping: waiting for" in out
    assert f"exiting now: cycle(s) {cycle_id} interrupted" in out
    assert status == "interrupted"
