"""What `roster engine` and `roster worker` say when they cannot start: no broker given, a broker
that refuses the login or the vhost, an address that is taken. One line each, naming the setting and
the fix, with an exit code that is not 0, and never the password of the broker URL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from common.process.cli import ENGINE_LISTEN, WORKER_LISTEN
from tests import needs
from tests.integration.processes import REPO, free_port
from tests.rabbit import vhost_of

ROSTER = [sys.executable, "-m", "common.process.launcher"]
SECRET = "s3cret-pw-never-printed"


def _roster(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    return subprocess.run(
        [*ROSTER, *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """The one line the process printed about its failure (log lines of libraries aside)."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "level=" not in line]
    assert "Traceback" not in result.stdout + result.stderr
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


@pytest.fixture
def worker_file(tmp_path: Path) -> Path:
    file = tmp_path / "workers.yaml"
    file.write_text(yaml.safe_dump({"targets": [{"name": "t1", "type": "noop"}]}), encoding="utf-8")
    return file


@pytest.fixture
def engine_file(tmp_path: Path) -> Path:
    (tmp_path / "people.csv").write_text("id,mail\n1,a@example.org\n", encoding="utf-8")
    job = {
        "name": "people",
        "target": "t1",
        "source": {"type": "csv", "path": "people.csv", "id_column": "id"},
        "mappings": [{"source": "mail", "target": "mail", "match": True}],
    }
    file = tmp_path / "jobs.yaml"
    file.write_text(yaml.safe_dump({"jobs": [job], "engine": {"state": "state.db"}}), encoding="utf-8")
    return file


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_worker_and_engine_without_a_broker_url_name_the_three_ways_to_give_one(
    worker_file: Path, engine_file: Path
) -> None:
    for args in (["worker", str(worker_file)], ["engine", str(engine_file)]):
        result = _roster(*args)
        assert result.returncode == 2
        line = _said(result)
        assert "--broker" in line and "ROSTER_BROKER" in line and "`broker:`" in line, line
        assert "guest" not in line
    renamed = _roster("worker", str(worker_file), env={"ROSTER_BROKER_URL": "amqp://u:p@127.0.0.1/"})
    assert renamed.returncode == 2
    assert "ROSTER_BROKER_URL is read no more: rename it" in _said(renamed)


@pytest.mark.rabbitmq
@pytest.mark.parametrize("how", ["flag", "env", "file"])
def test_a_wrong_password_is_one_line_naming_user_vhost_and_setting_without_the_password(
    worker_file: Path, how: str, rabbitmq_url: str
) -> None:
    vhost = vhost_of(rabbitmq_url)
    url = f"amqp://guest:{SECRET}@127.0.0.1:5672/{vhost}"
    args, env = ["worker", str(worker_file), "--listen", f"127.0.0.1:{free_port()}"], {}
    if how == "flag":
        args += ["--broker", url]
    elif how == "env":
        env["ROSTER_BROKER"] = url
    else:
        worker_file.write_text(yaml.safe_dump({**yaml.safe_load(worker_file.read_text()), "broker": url}))
    result = _roster(*args, env=env)
    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    line = _said(result)
    assert f"refused the login for user 'guest' on vhost {vhost!r}" in line, line
    assert "ROSTER_BROKER" in line and "check the user, password and vhost" in line


@pytest.mark.rabbitmq
def test_a_missing_vhost_is_one_line_saying_how_to_create_it(worker_file: Path, engine_file: Path) -> None:
    needs.rabbitmq()
    url = f"amqp://guest:guest@127.0.0.1:5672/roster-no-such-vhost-{free_port()}"
    for args in (
        ["worker", str(worker_file), "--listen", f"127.0.0.1:{free_port()}"],
        ["engine", str(engine_file), "--listen", f"127.0.0.1:{free_port()}", "--api-listen", "127.0.0.1:0"],
    ):
        result = _roster(*args, "--broker", url)
        assert result.returncode == 1
        line = _said(result)
        vhost = url.rpartition("/")[2]
        assert f"refused vhost {vhost!r} to user 'guest'" in line, line
        assert f"rabbitmqctl add_vhost {vhost}" in line


@pytest.mark.rabbitmq
def test_a_taken_metrics_or_api_port_is_one_line_naming_the_setting(
    worker_file: Path, engine_file: Path, taken_port: int, rabbitmq_url: str
) -> None:
    env = {"ROSTER_BROKER": rabbitmq_url}
    taken = f"127.0.0.1:{taken_port}"
    cases = [
        (["worker", str(worker_file), "--listen", taken], "--listen / ROSTER_LISTEN", "/metrics"),
        (
            ["engine", str(engine_file), "--listen", taken, "--api-listen", "127.0.0.1:0"],
            "--listen",
            "/metrics",
        ),
        (
            ["engine", str(engine_file), "--listen", f"127.0.0.1:{free_port()}", "--api-listen", taken],
            "--api-listen / ROSTER_API_LISTEN",
            "the admin API",
        ),
    ]
    for args, setting, what in cases:
        result = _roster(*args, env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        line = _said(result) if args[0] == "worker" else result.stdout.strip().splitlines()[-1]
        assert "Traceback" not in result.stdout + result.stderr
        assert line.startswith(f"config error {setting}"), line
        assert f"cannot serve {what} on {taken}: address already in use" in line
        assert "pick a free port" in line


def test_default_metrics_ports_stay_clear_of_the_exporters_range() -> None:
    """9100-9999 is allocated to exporters on the Prometheus wiki (9100 node, 9101 HAProxy)."""
    for listen in (ENGINE_LISTEN, WORKER_LISTEN):
        host, _, port = listen.rpartition(":")
        assert host == "127.0.0.1" and not 9100 <= int(port) <= 9999
    assert ENGINE_LISTEN != WORKER_LISTEN  # one engine and one worker on one machine
    help_text = _roster("worker", "--help").stdout + _roster("engine", "--help").stdout
    assert f"default {WORKER_LISTEN}" in help_text and f"default {ENGINE_LISTEN}" in help_text


def _embedded_file(tmp_path: Path, *, verify_tls: bool) -> Path:
    """A job from a CSV into a SCIM target that nobody serves (its cycle fails at once, which does
    not matter here) and whose certificate is checked or not."""
    (tmp_path / "people.csv").write_text("id,mail\n1,a@example.org\n", encoding="utf-8")
    raw = {
        "engine": {"state": "state.db"},
        "jobs": [
            {
                "name": "people",
                "target": "app",
                "source": {"type": "csv", "path": "people.csv", "id_column": "id"},
                "mappings": [{"source": "mail", "target": "userName", "match": True}],
                "schedule": {"interval": "1h"},  # so that `run --serve` keeps serving
            }
        ],
        "targets": [
            {
                "name": "app",
                "type": "scim",
                "url": f"https://127.0.0.1:{free_port()}/scim/v2",
                "verify_tls": verify_tls,
                "retry": {"tiers": 0},
            }
        ],
    }
    file = tmp_path / "roster.yaml"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return file


def test_an_api_beyond_the_loopback_with_the_placeholder_token_is_refused_in_one_line(tmp_path: Path) -> None:
    file = _embedded_file(tmp_path, verify_tls=True)
    result = _roster(
        "run",
        str(file),
        "--serve",
        "--api-listen",
        f"0.0.0.0:{free_port()}",
        env={"ROSTER_API_TOKEN": "change-me"},
    )
    assert result.returncode == 2
    line = _said(result)
    assert line.startswith("config error ROSTER_API_TOKEN / --api-token-file: the admin API on 0.0.0.0:")
    assert "placeholder token" in line and "change-me" not in line
    assert not (tmp_path / "state.db").exists()  # refused before anything started


def test_plain_http_beyond_the_loopback_and_unchecked_tls_are_warned_of_at_start_and_in_jobs(
    tmp_path: Path,
) -> None:
    file = _embedded_file(tmp_path, verify_tls=False)
    port, token = free_port(), "t-" + "9" * 30
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    with subprocess.Popen(
        [*ROSTER, "run", str(file), "--serve", "--no-progress", "--api-listen", f"0.0.0.0:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**clean, "COLUMNS": "200", "ROSTER_API_TOKEN": token},
    ) as process:
        try:
            assert process.stdout is not None
            said = [process.stdout.readline() for _ in range(3)]
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/jobs", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                warnings = json.loads(answer.read())["warnings"]
            status = _roster("status", "--api", f"http://127.0.0.1:{port}", env={"ROSTER_API_TOKEN": token})
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    assert said[0].startswith(f"warning the admin API serves plain HTTP on 0.0.0.0:{port} (--api-listen")
    assert said[1].startswith("warning targets[0] (app): verify_tls is false")
    assert said[2].startswith(f"admin API on http://0.0.0.0:{port} (token from ROSTER_API_TOKEN)")
    assert [w.split(":")[0] for w in warnings] == [
        "the admin API serves plain HTTP on 0.0.0.0",
        "targets[0] (app)",
    ]
    assert token not in "".join(said) + "".join(warnings)
    assert status.returncode == 0, status.stdout + status.stderr
    shown = [line for line in status.stdout.splitlines() if line.startswith("warning")]
    assert shown == [f"warning {w}" for w in warnings]


def test_a_worker_warns_of_unchecked_tls_to_its_targets_and_its_broker(tmp_path: Path) -> None:
    file = tmp_path / "workers.yaml"
    target = {"name": "app", "type": "scim", "url": "https://scim.example.org/v2", "verify_tls": False}
    file.write_text(yaml.safe_dump({"targets": [target]}), encoding="utf-8")
    url = f"amqps://guest:{SECRET}@127.0.0.1:{free_port()}/?no_verify_ssl=1"
    result = _roster("worker", str(file), "--broker", url, "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("warning")]
    assert len(lines) == 2, result.stdout
    assert "the broker's TLS certificate is not verified" in lines[0]
    assert lines[1].startswith("warning target 'app': verify_tls is false")
    assert SECRET not in result.stdout + result.stderr
