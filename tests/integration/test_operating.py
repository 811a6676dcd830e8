"""Operating a live engine from the command line: `roster status`, `pause`, `resume`, `trigger`, `logs`
and `reset` against a real `roster run --serve` process, and `roster engine` serving the same API.

The engine writes its API token beside its state; the commands find it there from the same directory,
so these tests, like a user, never pass the token by hand.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import needs
from tests.integration.pipeline import job_config, person, sql_target, write_csv
from tests.integration.processes import REPO, Fleet, Process, free_port
from tests.rabbit import vhost

PEOPLE = 30


def _config(tmp_path: Path) -> Path:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(PEOPLE)])
    raw = {**job_config(tmp_path, schedule={"interval_s": 3600}), **sql_target("sqlite:///target.db")}
    raw["engine"]["state"] = ".roster/state.db"
    file = tmp_path / "jobs.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    return {**env, "COLUMNS": "160", **extra}


def roster(tmp_path: Path, api: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A `roster` command run from `tmp_path`, as a user in the engine's directory runs it."""
    return subprocess.run(
        [sys.executable, "-m", "common.process.launcher", *args],
        cwd=tmp_path,
        env=_env(ROSTER_API_URL=api, **env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _status(tmp_path: Path, api: str, **env: str) -> dict[str, object]:
    done = roster(tmp_path, api, "status", "people", "--json", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _wait_for(what: str, check: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`roster run --serve` on a free API port (and /metrics on the port in `metrics-port`), its
    first cycle done; yields the API's URL."""
    api = f"http://127.0.0.1:{free_port()}"
    listen = api.removeprefix("http://")
    metrics_port = free_port()
    (tmp_path / "metrics-port").write_text(str(metrics_port))
    args = ["--log-level", "info", "run", "--serve", str(_config(tmp_path)), "--api-listen", listen]
    args += ["--listen", f"127.0.0.1:{metrics_port}"]
    with (tmp_path / "serve.out").open("w") as out, (tmp_path / "serve.err").open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "common.process.launcher", *args],
            cwd=REPO,
            env=_env(),
            stdout=out,
            stderr=err,
        )
    try:
        _wait_for("the API", lambda: process.poll() is None and _answers(api))
        _wait_for(
            "the first cycle",
            lambda: (tmp_path / ".roster" / "api-token").exists() and _first_done(tmp_path, api),
        )
        yield api, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _first_done(tmp_path: Path, api: str, **env: str) -> bool:
    cycles = _status(tmp_path, api, **env)["last_cycles"]
    return bool(cycles) and cycles[0]["status"] == "succeeded"  # type: ignore[index]


def test_the_commands_pause_resume_trigger_and_export_a_live_engine(
    tmp_path: Path, serving: tuple[str, subprocess.Popen[bytes]]
) -> None:
    api, _process = serving
    assert (tmp_path / ".roster" / "api-token").stat().st_mode & 0o777 == 0o600

    listed = roster(tmp_path, api, "status")
    assert listed.returncode == 0 and "people" in listed.stdout and "active" in listed.stdout, listed
    paused = roster(tmp_path, api, "pause", "people")
    assert (paused.returncode, paused.stdout.strip()) == (0, "people: paused")
    assert _status(tmp_path, api)["state"] == "paused"
    shown = roster(tmp_path, api, "status", "people")
    assert "paused" in shown.stdout and "Last cycles" in shown.stdout and "30 created" in shown.stdout
    refused = roster(tmp_path, api, "trigger", "people")
    assert refused.returncode == 1 and "the job is paused: resume it first" in refused.stdout

    assert roster(tmp_path, api, "resume", "people").stdout.strip() == "people: resumed; now active"
    assert roster(tmp_path, api, "trigger", "people").returncode == 0
    _wait_for("the triggered cycle", lambda: _status(tmp_path, api)["last_cycles"][0]["trigger"] == "api")  # type: ignore[index]

    exported = roster(
        tmp_path, api, "logs", "--job", "people", "--action", "create", "--export", "jsonl", "--oldest-first"
    )
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted(r["source_id"] for r in records) == [f"E{i:05d}" for i in range(PEOPLE)]
    as_csv = list(
        csv.DictReader(io.StringIO(roster(tmp_path, api, "logs", "--export", "csv", "--oldest-first").stdout))
    )
    assert [r["op_id"] for r in as_csv] == [r["op_id"] for r in records]
    page = roster(tmp_path, api, "logs", "--job", "people", "--limit", "5", "--since", "1h", "--oldest-first")
    assert "E00004" in page.stdout and "E00005" not in page.stdout and "more: add --cursor" in page.stdout


def test_reset_asks_and_errors_say_what_to_do_and_sigterm_stops_the_engine(
    tmp_path: Path, serving: tuple[str, subprocess.Popen[bytes]]
) -> None:
    api, process = serving
    token_file = tmp_path / ".roster" / "api-token"
    token = token_file.read_text().strip()
    unasked = roster(tmp_path, api, "reset", "people")
    assert unasked.returncode == 1 and "roster reset people --yes" in unasked.stdout
    assert roster(tmp_path, api, "reset", "people", "--yes").returncode == 0

    wrong = roster(tmp_path, api, "status", ROSTER_API_TOKEN="not-it")
    assert (
        wrong.returncode == 1 and "refused the token" in wrong.stdout and "ROSTER_API_TOKEN" in wrong.stdout
    )
    elsewhere = f"http://127.0.0.1:{free_port()}"
    down = roster(tmp_path, elsewhere, "status")
    assert down.returncode == 1 and elsewhere in down.stdout and "roster run FILE --serve" in down.stdout
    unknown = roster(tmp_path, api, "pause", "nobody")
    assert unknown.returncode == 1 and "no job named 'nobody' (jobs: people)" in unknown.stdout

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    out = (tmp_path / "serve.out").read_text() + (tmp_path / "serve.err").read_text()
    assert f"token in {token_file}" in out and f"path={token_file}" in out
    assert token not in out


CYCLE_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d people cycle (\S+) succeeded in \d+\.\d s: "
    r"(\d+) created, (\d+) updated, (\d+) disabled, (\d+) deleted, (\d+) held, (\d+) failed$",
    re.MULTILINE,
)


def _metrics(tmp_path: Path) -> str:
    port = (tmp_path / "metrics-port").read_text()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_run_serve_serves_metrics_and_prints_a_line_per_cycle(
    tmp_path: Path, serving: tuple[str, subprocess.Popen[bytes]]
) -> None:
    api, process = serving
    scraped = _metrics(tmp_path)
    assert 'roster_cycles_total{job="people",status="succeeded"} 1.0' in scraped
    assert "roster_engine_active 1.0" in scraped
    assert 'roster_worker_batches_total{target="db"}' in scraped  # the embedded workers' too
    assert 'role="engine"' in scraped and 'role="worker"' in scraped
    [first] = CYCLE_LINE.findall((tmp_path / "serve.out").read_text())
    assert first[1:] == (str(PEOPLE), "0", "0", "0", "0", "0")
    assert first[0] == _status(tmp_path, api)["last_cycles"][0]["cycle_id"]  # type: ignore[index]

    write_csv(tmp_path / "people.csv", [person(i, department="Legal") for i in range(PEOPLE - 1)])
    assert roster(tmp_path, api, "trigger", "people").returncode == 0
    _wait_for("the second line", lambda: len(CYCLE_LINE.findall((tmp_path / "serve.out").read_text())) == 2)
    second = CYCLE_LINE.findall((tmp_path / "serve.out").read_text())[1]
    assert second[1:] == ("0", str(PEOPLE - 1), "1", "0", "0", "0")
    assert 'roster_cycles_total{job="people",status="succeeded"} 2.0' in _metrics(tmp_path)

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert "stopping: no cycle is running" in (tmp_path / "serve.out").read_text()


ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_logs_read_newest_first_export_iso_times_and_redact_personal_values(
    tmp_path: Path, serving: tuple[str, subprocess.Popen[bytes]]
) -> None:
    api, _process = serving
    first = json.loads(roster(tmp_path, api, "logs", "--limit", "10", "--json").stdout)
    ids = [r["id"] for r in first["records"]]
    assert ids == sorted(ids, reverse=True) and first["next_before_id"] == ids[-1]
    older = json.loads(roster(tmp_path, api, "logs", "--before-id", str(ids[-1]), "--json").stdout)
    assert [r["id"] for r in older["records"]] == list(range(ids[-1] - 1, 0, -1))
    table = roster(tmp_path, api, "logs", "--limit", "3").stdout
    assert "newest first" in table and re.search(rf"older: add --cursor \S+~{ids[2]}\b", table)
    cursor = json.loads(roster(tmp_path, api, "logs", "--limit", "3", "--json").stdout)["next_cursor"]
    after = json.loads(roster(tmp_path, api, "logs", "--cursor", cursor, "--limit", "2", "--json").stdout)
    assert [r["id"] for r in after["records"]] == ids[3:5]

    exported = [
        json.loads(line) for line in roster(tmp_path, api, "logs", "--export", "jsonl").stdout.splitlines()
    ]
    assert [r["id"] for r in exported] == sorted((r["id"] for r in exported), reverse=True)
    assert len(exported) == PEOPLE and all(ISO_UTC.fullmatch(r["at"]) for r in exported)
    as_csv = list(csv.DictReader(io.StringIO(roster(tmp_path, api, "logs", "--export", "csv").stdout)))
    assert [int(r["id"]) for r in as_csv] == [r["id"] for r in exported]
    assert all(ISO_UTC.fullmatch(r["at"]) for r in as_csv)
    assert any("user3@example.org" in r["attributes"] for r in as_csv)

    for form in ("jsonl", "csv"):
        hidden = roster(tmp_path, api, "logs", "--export", form, "--redact")
        assert hidden.returncode == 0, hidden.stderr
        assert "@example.org" not in hidden.stdout and "Müller" not in hidden.stdout
        assert all(f"E{i:05d}" in hidden.stdout for i in range(PEOPLE))  # ids stay
    record = json.loads(roster(tmp_path, api, "logs", "--export", "jsonl", "--redact").stdout.splitlines()[0])
    assert set(record["attributes"].values()) == {"***"} and "email" in record["attributes"]
    shown = json.loads(roster(tmp_path, api, "logs", "--json", "--redact").stdout)
    assert all(set(r["attributes"].values()) == {"***"} for r in shown["records"])


def test_pause_and_resume_say_when_the_job_is_so_already(
    tmp_path: Path, serving: tuple[str, subprocess.Popen[bytes]]
) -> None:
    api, _process = serving
    assert roster(tmp_path, api, "resume", "people").stdout.strip() == "people: not paused (active)"
    assert roster(tmp_path, api, "pause", "people").stdout.strip() == "people: paused"
    again = roster(tmp_path, api, "pause", "people")
    assert (again.returncode, again.stdout.strip()) == (0, "people: already paused")
    assert _status(tmp_path, api)["state"] == "paused"
    shown = json.loads(roster(tmp_path, api, "pause", "people", "--json").stdout)
    assert shown["state"] == "paused"


def test_commands_piped_into_head_end_quietly(
    tmp_path: Path, serving: tuple[str, subprocess.Popen[bytes]]
) -> None:
    api, _process = serving
    env = _env(ROSTER_API_URL=api)
    for command in (["logs", "--export", "jsonl"], ["logs", "--export", "csv"], ["logs"], ["status"]):
        roster = [sys.executable, "-m", "common.process.launcher", *command]
        piped = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {' '.join(roster)} | head -1"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert piped.stdout.strip() and piped.stderr == "", (command, piped.stderr)
        # A reader gone before the first write (what `head` does to a longer output): no traceback,
        # and the exit of a process that SIGPIPE ended.
        closed = subprocess.Popen(
            roster, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert closed.stdout is not None and closed.stderr is not None
        closed.stdout.close()
        with closed.stderr:
            error = closed.stderr.read().decode()
        assert (closed.wait(timeout=60), error) == (141, ""), command


@pytest.mark.rabbitmq
def test_roster_engine_serves_the_api_with_the_token_from_its_environment(tmp_path: Path) -> None:
    needs.rabbitmq()
    config = _config(tmp_path)
    api = f"http://127.0.0.1:{free_port()}"
    with vhost() as broker_url:
        fleet = Fleet(tmp_path, broker_url)
        try:
            fleet.worker(config)
            args = [
                "engine",
                str(config),
                "--broker",
                broker_url,
                "--api-listen",
                api.removeprefix("http://"),
            ]
            engine = Process(
                "engine", args, free_port(), tmp_path / "engine.log", env={"ROSTER_API_TOKEN": "t0k"}
            )
            fleet.processes.append(engine.start())
            engine.wait_healthy()
            _wait_for("the API", lambda: _answers(api))
            _wait_for("the first cycle", lambda: _first_done(tmp_path, api, ROSTER_API_TOKEN="t0k"))
            assert not (tmp_path / ".roster" / "api-token").exists()  # the token came from the environment
            assert roster(tmp_path, api, "pause", "people", ROSTER_API_TOKEN="t0k").returncode == 0
            assert roster(tmp_path, api, "status", ROSTER_API_TOKEN="wrong").returncode == 1
            engine.signal(signal.SIGTERM)
            assert engine.wait(30) == 0
        finally:
            fleet.stop_all()
    assert "event=api_listening" in engine.log() and "t0k" not in engine.log()


def test_what_the_commands_do_is_in_the_audit_trail_with_its_comment(
    tmp_path: Path, serving: tuple[str, subprocess.Popen[bytes]]
) -> None:
    api, _process = serving
    paused = roster(tmp_path, api, "pause", "people", "--comment", "CHG-7: target maintenance")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert roster(tmp_path, api, "resume", "people").returncode == 0
    refused = roster(tmp_path, api, "approve", "people", "--comment", "looked at it")
    assert refused.returncode != 0 and "nothing is waiting for approval" in refused.stdout + refused.stderr

    listed = roster(tmp_path, api, "audit", "--output", "json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    trail = json.loads(listed.stdout)["records"]
    assert [(e["action"], e["outcome"], e["comment"]) for e in trail] == [
        ("approve", "refused", "looked at it"),
        ("resume", "done", None),
        ("pause", "done", "CHG-7: target maintenance"),
    ]
    assert {(e["actor_kind"], e["actor_name"], e["address"]) for e in trail} == {
        ("service_account", "admin", "127.0.0.1")
    }
    token = (tmp_path / ".roster" / "api-token").read_text().strip()
    assert token not in listed.stdout

    only = json.loads(roster(tmp_path, api, "audit", "--action", "pause", "--job", "people", "--json").stdout)
    assert [e["comment"] for e in only["records"]] == ["CHG-7: target maintenance"]
    assert json.loads(roster(tmp_path, api, "audit", "--actor", "someone", "--json").stdout) == {
        "records": []
    }
    assert len(json.loads(roster(tmp_path, api, "audit", "--limit", "1", "--json").stdout)["records"]) == 1
    since = json.loads(
        roster(tmp_path, api, "audit", "--since", "1h", "--until", "2099-01-01", "--json").stdout
    )
    assert len(since["records"]) == 3

    table = roster(tmp_path, api, "audit")
    assert table.returncode == 0, table.stdout + table.stderr
    assert "Audit trail (newest first)" in table.stdout
    assert "CHG-7: target maintenance" in table.stdout and "admin (account)" in table.stdout
    assert "refused: nothing is waiting for approval" in table.stdout
