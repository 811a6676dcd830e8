"""The commands of docker-compose.yml, run for real: the SCIM demo target, two workers and the
engine, with the environment variables the compose file sets, against this machine's RabbitMQ (a
vhost of the test's own) and PostgreSQL (a database of its own).

One cycle of the demo job provisions its 300 people; the Prometheus metrics that the engine and the
workers serve move by exactly that many operations, and every metric that the Grafana dashboard
queries is one that they export.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import needs
from tests.databases import private_database
from tests.deploy.files import CONFIG_DIR, REPO, compose_config, dashboard_queries, metric_names
from tests.integration.processes import Process, free_port, wait_until
from tests.rabbit import vhost

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

PEOPLE = list(csv.DictReader((CONFIG_DIR / "people.csv").read_text(encoding="utf-8").splitlines()))
BIN = Path(sys.executable).parent


@dataclass
class Command(Process):
    """A process started from a compose service's command line, exactly as the container runs it."""

    argv: tuple[str, ...] = ()
    cwd: Path = CONFIG_DIR

    def start(self) -> Command:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(self.argv),
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                # PYTHONPATH: the `roster` script runs this checkout's code, wherever the package is installed
                env={
                    **os.environ,
                    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": str(REPO),
                    **self.env,
                },
            )
        return self


@dataclass
class Fleet:
    tmp_path: Path
    processes: list[Command]

    def start(self, service: dict, name: str, port: int, env: dict[str, str]) -> Command:
        argv = ["roster", *service["command"]] if name != "scim" else service["command"]
        command = Command(name, [], port, self.tmp_path / f"{name}.log", env=env, argv=tuple(argv))
        self.processes.append(command.start())
        return command

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()}" for p in self.processes)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, [])
    try:
        yield fleet
    finally:
        for process in fleet.processes:
            process.stop()


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _total(samples: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def _scim_users(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/Users?count=1000", timeout=10) as response:
        return json.load(response)["Resources"]


def test_the_compose_commands_provision_the_demo_and_the_metrics_count_each_operation_exactly(
    fleet: Fleet,
) -> None:
    needs.rabbitmq()
    needs.postgres()
    scim_port = free_port()
    services = compose_config(SCIM_PORT=str(scim_port))["services"]
    with vhost() as broker_url, private_database("roster_deploy") as state_url:
        scim = fleet.start(services["scim"], "scim", scim_port, {})
        wait_until(lambda: _answers(scim_port), 30, "the SCIM demo target", None)

        env = {"ROSTER_BROKER": broker_url, "SCIM_URL": f"http://127.0.0.1:{scim_port}"}
        assert set(env) == set(services["worker"]["environment"]) - {"ROSTER_LISTEN"}
        workers = []
        for i in range(2):
            port = free_port()
            workers.append(
                fleet.start(
                    services["worker"], f"worker-{i}", port, {**env, "ROSTER_LISTEN": f"127.0.0.1:{port}"}
                )
            )
        for worker in workers:
            worker.wait_healthy()
        engine_port, api_port = free_port(), free_port()
        sources = fleet.tmp_path / "sources"  # as the Kubernetes volume of sources is: not beside jobs.yaml
        sources.mkdir()
        shutil.copy(CONFIG_DIR / "people.csv", sources / "people.csv")
        engine_env = {
            "ROSTER_BROKER": broker_url,
            "ROSTER_STATE": state_url,
            "ROSTER_API_TOKEN": "compose-test-token",
            "ROSTER_SOURCES": str(sources),
        }
        local = {"ROSTER_LISTEN", "ROSTER_API_LISTEN"}
        assert set(engine_env) == set(services["engine"]["environment"]) - local
        engine = fleet.start(
            services["engine"],
            "engine",
            engine_port,
            {
                **engine_env,
                "ROSTER_LISTEN": f"127.0.0.1:{engine_port}",
                "ROSTER_API_LISTEN": f"127.0.0.1:{api_port}",
            },
        )
        engine.wait_healthy()
        wait_until(
            lambda: engine.metric("roster_cycles_total", status="succeeded") >= 1, 60, "the first cycle", None
        )

        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/jobs/people-to-scim",
            headers={"Authorization": "Bearer compose-test-token"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["state"] == "active"  # the admin API answers under the compose env

        users = _scim_users(scim_port)
        assert sorted(u["userName"] for u in users) == sorted(p["email"] for p in PEOPLE)
        assert sorted(u["externalId"] for u in users) == sorted(p["employee_id"] for p in PEOPLE)

        n = len(PEOPLE)
        seen = _metrics(engine_port)
        job = {"job": "people-to-scim"}
        assert _total(seen, "roster_operations_published_total", **job, action="create") == n
        assert _total(seen, "roster_operations_published_total") == n
        assert (
            _total(seen, "roster_operations_completed_total", **job, action="create", status="succeeded") == n
        )
        assert _total(seen, "roster_operations_completed_total") == n
        assert _total(seen, "roster_operation_latency_seconds_count", target="scim-demo") == n
        assert _total(seen, "roster_operation_latency_seconds_bucket", le="+Inf") == n
        assert _total(seen, "roster_operation_latency_seconds_bucket", le="60.0") == n
        assert _total(seen, "roster_operation_latency_seconds_bucket", le="0.001") < n
        assert _total(seen, "roster_cycle_objects_total", phase="read") == n
        assert _total(seen, "roster_cycle_objects_total", phase="created") == n
        assert _total(seen, "roster_cycles_total") == 1
        assert _total(seen, "roster_operations_awaiting_result") == 0
        assert _total(seen, "roster_job_interval_seconds", **job) == 60
        assert time.time() - _total(seen, "roster_cycle_last_success_timestamp_seconds", **job) < 60
        assert _total(seen, "roster_engine_active") == 1
        assert ("roster_queue_depth", frozenset({("target", "scim-demo")})) in seen

        per_worker = [_metrics(w.port) for w in workers]
        handled = [
            _total(s, "roster_worker_operations_total", status="succeeded", action="create")
            for s in per_worker
        ]
        assert sum(handled) == n and sum(_total(s, "roster_worker_operations_total") for s in per_worker) == n
        batches = sum(_total(s, "roster_worker_batches_total", target="scim-demo") for s in per_worker)
        assert sum(_total(s, "roster_connector_call_seconds_count") for s in per_worker) == batches >= n / 100
        assert (
            sum(_total(s, "roster_connector_call_seconds_bucket", le="+Inf") for s in per_worker) == batches
        )
        for s in per_worker:
            assert _total(s, "roster_operations_in_flight") == 0
            assert _total(s, "roster_retries_total") == _total(s, "roster_dead_letters_total") == 0
            assert _total(s, "roster_build_info", role="worker") == 1

        exported = _exported_names([seen, *per_worker])
        queried = set().union(*(metric_names(q) for q in dashboard_queries()))
        assert queried <= exported, sorted(queried - exported)

        for process in (engine, *workers):
            process.signal(signal.SIGTERM)
        assert [p.wait(30) for p in (engine, *workers)] == [0, 0, 0], fleet.logs()
        scim.stop()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ServiceProviderConfig", timeout=1):
            return True
    except OSError:
        return False


def _exported_names(scrapes: list[dict]) -> set[str]:
    """Sample names, plus the `_total` names of counters whose families have no sample yet."""
    names = {name for samples in scrapes for name, _ in samples}
    return names | {f"{name}_total" for name in names}
