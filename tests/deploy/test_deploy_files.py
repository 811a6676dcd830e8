"""The deploy files are valid for the tools that consume them, and agree with each other: one image,
one set of commands (those that tests/deploy/test_compose_services.py runs), one set of variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
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
    compose_variables,
    dashboard_queries,
    dockerfile_stages,
    k8s_documents,
    metric_names,
    published,
    run_compose_config,
    tool,
)


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_the_compose_file_is_valid_and_only_roster_services_set_a_command() -> None:
    services = compose_config()["services"]
    assert set(services) == {
        *("rabbitmq", "postgres", "scim", "engine", "worker", "prometheus", "alertmanager", "grafana")
    }
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
        assert {v.split(":")[1] for v in _volumes(services[name])} == {"/etc/roster"}
        assert mounts == {"/etc/roster"} | ({SOURCES_MOUNT} if name == "engine" else set())


SOURCES_MOUNT = "/var/lib/roster/sources"


def _volumes(service: dict[str, Any]) -> list[str]:
    return [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service["volumes"]]


def test_the_dockerfile_passes_hadolint_and_runs_as_a_non_root_user() -> None:
    _run(tool("hadolint"), str(DEPLOY / "Dockerfile"))
    users = [
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("USER")
    ]
    assert users[-1].split(":")[0] not in ("0", "root")
    ignore = (COMPOSE_FILE.parent / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*"  # the build context is the packages, not the working tree with its .venv


def test_promtool_accepts_the_scrape_config_and_the_alert_rules_and_their_unit_tests() -> None:
    promtool = tool("promtool")
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


def test_compose_takes_every_secret_from_the_env_file_and_refuses_to_start_without_them() -> None:
    variables = compose_variables()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE_FILE.read_text()))
    assert required == set(variables), "make env (deploy/make_env.py) writes every variable compose requires"
    refused = run_compose_config({})
    assert refused.returncode != 0 and "make env" in refused.stderr

    services = compose_config()["services"]
    rabbit, pg = variables["RABBITMQ_PASSWORD"], variables["POSTGRES_PASSWORD"]
    assert services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == rabbit
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == pg
    for name in ("engine", "worker"):
        assert services[name]["environment"]["ROSTER_BROKER"] == f"amqp://roster:{rabbit}@rabbitmq:5672/"
    assert (
        services["engine"]["environment"]["ROSTER_STATE"] == f"postgresql://roster:{pg}@postgres:5432/roster"
    )
    assert services["engine"]["environment"]["ROSTER_API_TOKEN"] == variables["ROSTER_API_TOKEN"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == variables["GRAFANA_ADMIN_PASSWORD"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"  # no anonymous viewer, no default admin/admin
    text = COMPOSE_FILE.read_text()
    assert "change-me" not in text and not re.search(r"(PASS|PASSWORD|TOKEN): [^$\s]", text)


def test_the_web_uis_and_the_admin_api_are_published_on_loopback_only_by_default() -> None:
    uis = {"grafana": 3000, "prometheus": 9090, "alertmanager": 9093, "rabbitmq": 15672}
    services = compose_config()["services"]
    ports = {name: published(service) for name, service in services.items() if published(service)}
    assert ports == {
        **{name: [("127.0.0.1", port)] for name, port in uis.items()},
        "engine": [("127.0.0.1", 8477)],
    }
    opened = compose_config(ROSTER_UI_ADDRESS="0.0.0.0")["services"]  # the documented way to open the UIs
    assert {name: published(opened[name]) for name in uis} == {
        name: [("0.0.0.0", p)] for name, p in uis.items()
    }
    assert published(opened["engine"]) == [("127.0.0.1", 8477)]  # the admin API stays on loopback


def _render_alertmanager(url: str, tmp_path: Path) -> Path:
    rendered = tmp_path / "alertmanager.yml"
    result = subprocess.run(
        ["sh", str(DEPLOY / "alertmanager" / "render.sh"), str(DEPLOY / "alertmanager" / "alertmanager.yml")],
        env={"PATH": os.environ["PATH"], "ALERT_WEBHOOK_URL": url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered.write_text(result.stdout)
    return rendered


WEBHOOK = "https://hooks.example.com/roster?token=a|b&x=1"  # | and & are special to sed


def test_prometheus_sends_the_alerts_to_alertmanager_which_posts_them_to_the_webhook(tmp_path: Path) -> None:
    services = compose_config(ALERT_WEBHOOK_URL=WEBHOOK)["services"]
    alertmanager = services["alertmanager"]
    assert alertmanager["environment"]["ALERT_WEBHOOK_URL"] == WEBHOOK
    assert "alertmanager" in services["prometheus"]["depends_on"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in _volumes(alertmanager)}
    assert Path(mounted["/etc/alertmanager"]) == DEPLOY / "alertmanager"
    assert (
        "render.sh" in " ".join(alertmanager["entrypoint"])
        and "--config.file=" in alertmanager["entrypoint"][-1]
    )

    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t
        for am in prometheus["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert targets == ["alertmanager:9093"] and published(alertmanager) == [("127.0.0.1", 9093)]
    assert prometheus["rule_files"] == ["alerts.yml"]

    config = yaml.safe_load(_render_alertmanager(WEBHOOK, tmp_path).read_text())
    (receiver,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    assert [w["url"] for w in receiver["webhook_configs"]] == [WEBHOOK]
    assert not config["route"].get("routes"), "every alert reaches the webhook"
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {rule["labels"]["severity"] for rule in rules} == {"critical", "warning"}  # the inhibit rule's


def test_amtool_accepts_the_rendered_alertmanager_config(tmp_path: Path) -> None:
    amtool = tool("amtool")
    assert "SUCCESS" in _run(amtool, "check-config", str(_render_alertmanager(WEBHOOK, tmp_path)))


def test_kubernetes_runs_without_keda_and_reads_the_sources_from_a_volume_not_a_configmap() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    manifests = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests - {"keda.yaml"}  # KEDA is an optional extra
    base = [
        d for r in kustomization["resources"] for d in yaml.safe_load_all((DEPLOY / "k8s" / r).read_text())
    ]
    assert not [d["kind"] for d in base if d["apiVersion"].startswith("keda.sh/")]
    worker = next(d for d in base if d["kind"] == "Deployment" and d["metadata"]["name"] == "roster-worker")
    assert worker["spec"]["replicas"] >= 1

    engine = next(d for d in base if d["kind"] == "Deployment" and d["metadata"]["name"] == "roster-engine")
    pod = engine["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    (mount,) = [m for m in container["volumeMounts"] if m["name"] in claims]
    assert env["ROSTER_SOURCES"] == mount["mountPath"] == SOURCES_MOUNT
    (claim,) = [d for d in base if d["kind"] == "PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == claims[mount["name"]]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]  # two engine replicas, maybe on two nodes

    (job,) = yaml.safe_load((CONFIG_DIR / "jobs.yaml").read_text())["jobs"]
    assert job["source"]["path"].startswith("${ROSTER_SOURCES:-.}/")
    creation = " ".join((DEPLOY / "k8s" / "kustomization.yaml").read_text().split("\\\n"))
    configmap = next(line for line in creation.splitlines() if "create configmap roster-config" in line)
    assert "--from-file=deploy/roster/jobs.yaml" in configmap and ".csv" not in configmap
    assert "--from-file=deploy/roster/ " not in configmap + " "  # the whole directory would take the CSV


def test_the_deploy_guide_says_how_to_build_and_name_the_image_and_that_keda_is_optional() -> None:
    guide = (COMPOSE_FILE.parent / "docs" / "deploy.md").read_text()
    for needed in (
        "make image IMAGE=",
        "kustomize edit set image roster=",
        "kubectl apply -k deploy/k8s",
        "kubectl apply -f deploy/k8s/keda.yaml",
        "roster-sources",
        "make env",
        "ALERT_WEBHOOK_URL",
        "ROSTER_UI_ADDRESS",
    ):
        assert needed in guide, needed
    assert "docs/deploy.md" in (COMPOSE_FILE.parent / "README.md").read_text()
