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
    """`roster run --serve` on a free API port, its first cycle done; yields the API's URL."""
    api = f"http://127.0.0.1:{free_port()}"
    listen = api.removeprefix("http://")
    args = ["--log-level", "info", "run", "--serve", str(_config(tmp_path)), "--api-listen", listen]
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
    api, process = serving
    token_file = tmp_path / ".roster" / "api-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()

    listed = roster(tmp_path, api, "status")
    assert listed.returncode == 0 and "people" in listed.stdout and "active" in listed.stdout, listed
    paused = roster(tmp_path, api, "pause", "people")
    assert (paused.returncode, paused.stdout.strip()) == (0, "people: paused; now paused")
    assert _status(tmp_path, api)["state"] == "paused"
    shown = roster(tmp_path, api, "status", "people")
    assert "paused" in shown.stdout and "Last cycles" in shown.stdout and "30 created" in shown.stdout
    refused = roster(tmp_path, api, "trigger", "people")
    assert refused.returncode == 1 and "the job is paused: resume it first" in refused.stdout

    assert roster(tmp_path, api, "resume", "people").stdout.strip() == "people: resumed; now active"
    assert roster(tmp_path, api, "trigger", "people").returncode == 0
    _wait_for("the triggered cycle", lambda: _status(tmp_path, api)["last_cycles"][0]["trigger"] == "api")  # type: ignore[index]

    exported = roster(tmp_path, api, "logs", "--job", "people", "--action", "create", "--export", "jsonl")
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted(r["source_id"] for r in records) == [f"E{i:05d}" for i in range(PEOPLE)]
    as_csv = list(csv.DictReader(io.StringIO(roster(tmp_path, api, "logs", "--export", "csv").stdout)))
    assert [r["op_id"] for r in as_csv] == [r["op_id"] for r in records]
    page = roster(tmp_path, api, "logs", "--job", "people", "--limit", "5", "--since", "1h")
    assert "E00004" in page.stdout and "E00005" not in page.stdout and "more: add --after-id" in page.stdout

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
