"""Presence with real processes: `roster worker`s announce themselves over the real RabbitMQ, the engine
lists them (`roster agents`, `GET /agents`, `roster_agents`), marks a killed one gone after its missed
heartbeats and a stopped one gone at once, and `roster status` warns of a target nobody serves. The
embedded pipeline (`roster run --serve`) lists its in-process worker the same way.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from queues.versions import SPOKEN
from tests.integration.pipeline import job_config, person, write_csv
from tests.integration.processes import REPO, Fleet, Process, free_port, wait_until

INTERVAL_S = 0.5
MISSED = 3
TOKEN = "t-" + secrets.token_hex(16)


def _config(tmp_path: Path) -> Path:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(5)])
    raw: dict[str, Any] = job_config(tmp_path, target="app", schedule={"interval_s": 3600})
    unserved = {**raw["jobs"][0], "name": "lonely-people", "target": "lonely"}
    raw["jobs"].append(unserved)
    raw["engine"].update(
        {"state": str(tmp_path / "state.db"), "presence": {"interval_s": INTERVAL_S, "missed": MISSED}}
    )
    raw["workers"] = {"presence": {"interval_s": INTERVAL_S}}
    raw["targets"] = [{"name": "app", "type": "noop"}, {"name": "lonely", "type": "noop"}]
    file = tmp_path / "roster.yaml"
    file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return file


def _roster(api: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    env.update(ROSTER_API_URL=api, ROSTER_API_TOKEN=TOKEN, COLUMNS="200", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "common.process.launcher", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _agents_cli(api: str) -> dict[str, Any]:
    done = _roster(api, "agents", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _agents_api(api: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{api}/agents", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def _listening(api: str) -> bool:
    """Whether the API answers yet: a process reports healthy before its API has bound its port."""
    try:
        with urllib.request.urlopen(f"{api}/healthz", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # it answers, if only to say the engine is not healthy yet
    except urllib.error.URLError:
        return False


def _workers(listed: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {a["pid"]: a for a in listed["agents"] if a["kind"] == "worker"}


def _engine(fleet: Fleet, config: Path) -> tuple[Process, str]:
    port = free_port()
    engine = fleet.engine(config, "--api-listen", f"127.0.0.1:{port}", env={"ROSTER_API_TOKEN": TOKEN})
    return engine, f"http://127.0.0.1:{port}"


def test_the_engine_lists_its_workers_and_marks_a_killed_one_gone_and_a_stopped_one_gone_at_once(
    tmp_path: Path, fleet: Fleet
) -> None:
    config = _config(tmp_path)
    engine, api = _engine(fleet, config)
    workers = [fleet.worker(config, "--target", "app") for _ in range(2)]
    for process in (engine, *workers):
        process.wait_healthy()
    wait_until(lambda: _listening(api), 10, "the API to listen", fleet)
    started = time.monotonic()
    pids = {w.popen.pid for w in workers if w.popen is not None}
    wait_until(
        lambda: {p for p, a in _workers(_agents_cli(api)).items() if a["state"] == "running"} == pids,
        10,
        "roster agents to list both workers running",
        fleet,
    )
    print(f"both workers listed {time.monotonic() - started:.1f} s after they were healthy")
    listed = _agents_api(api)
    for agent in _workers(listed).values():
        assert agent["wire_versions"] == list(SPOKEN)
        assert agent["version"] and agent["interval_s"] == INTERVAL_S
        assert [(t["name"], t["concurrency"]) for t in agent["targets"]] == [("app", 4)]
        assert agent["id"].split("-")[-2] == str(agent["pid"])
    assert [a["kind"] for a in listed["agents"]].count("engine") == 1
    assert {t["target"]: t["workers"] for t in listed["targets"]} == {"app": 2, "lonely": 0}
    assert engine.metric("roster_agents", target="app", state="running") == 2
    assert engine.metric("roster_target_jobs", target="lonely") == 1

    status = _roster(api, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "target 'lonely' has jobs (lonely-people) and no live worker" in status.stdout
    assert "target 'app' has jobs" not in status.stdout

    killed, stopped = workers
    assert killed.popen is not None and stopped.popen is not None
    # Heard last this long ago (to 0.1 s): a worker slowed by a loaded machine may have sent its last
    # heartbeat late, so its heartbeats count as missed that much sooner after the kill.
    last_seen_s = _workers(_agents_api(api))[killed.popen.pid]["last_seen_s"]
    killed.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(
        lambda: _workers(_agents_api(api))[killed.popen.pid]["state"] == "gone",  # type: ignore[union-attr]
        MISSED * INTERVAL_S + 3,
        "the killed worker to be marked gone",
        fleet,
    )
    gone_after = time.monotonic() - killed_at
    assert gone_after >= MISSED * INTERVAL_S - last_seen_s - 0.1  # not before its heartbeats were missed
    assert _workers(_agents_api(api))[killed.popen.pid]["gone_reason"] == f"missed {MISSED} heartbeats"

    stopped.signal(signal.SIGTERM)
    assert stopped.wait(30) == 0
    agent = _workers(_agents_api(api))[stopped.popen.pid]
    assert (agent["state"], agent["gone_reason"]) == ("gone", "left")

    status = _roster(api, "status")
    assert "target 'app' has jobs (people) and no live worker" in status.stdout
    table = _roster(api, "agents")
    assert table.returncode == 0 and "missed 3 heartbeats" in table.stdout and "left" in table.stdout


def test_the_embedded_pipeline_lists_its_in_process_worker(tmp_path: Path) -> None:
    config = _config(tmp_path)
    port = free_port()
    served = Process(
        "embedded",
        ["run", str(config), "--serve", "--api-listen", f"127.0.0.1:{port}"],
        free_port(),
        tmp_path / "embedded.log",
        env={"ROSTER_API_TOKEN": TOKEN},
    ).start()
    try:
        served.wait_healthy()
        api = f"http://127.0.0.1:{port}"
        wait_until(lambda: _listening(api), 10, "the API to listen")
        wait_until(lambda: len(_workers(_agents_api(api))) == 1, 10, "the in-process worker")
        [worker] = _workers(_agents_api(api)).values()
        assert served.popen is not None and worker["pid"] == served.popen.pid
        assert worker["state"] == "running"
        assert sorted(t["name"] for t in worker["targets"]) == ["app", "lonely"]
        assert served.metric("roster_agents", target="lonely", state="running") == 1
    finally:
        served.signal(signal.SIGTERM)
        served.wait(30)
        served.stop()
