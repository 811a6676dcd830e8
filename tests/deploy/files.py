"""Reading the deploy files as the tools that run them do: the compose file through `docker-compose
config`, the Dockerfile's stages, the Kubernetes manifests and the dashboard's queries."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests import needs

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONFIG_DIR = DEPLOY / "roster"  # mounted at the image's WORKDIR, /etc/roster
COMPOSE_FILE = REPO / "docker-compose.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "roster.json"
ROSTER_SERVICES = ("scim", "engine", "worker")  # the services whose command is ours


def tool(name: str) -> str:
    """The path of a checking tool: from the venv first, then PATH; skips the test without it, saying
    how to install it (tests/needs.py)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else needs.program(name)


@functools.cache
def compose_variables() -> dict[str, str]:
    """Values for the variables that docker-compose.yml requires (`${NAME:?...}`), as `make env`
    writes them: random, so a test can find each in the resolved file."""
    return make_env().values()


def make_env() -> ModuleType:
    """deploy/make_env.py (a script, not a package module), loaded as a module."""
    spec = importlib.util.spec_from_file_location("make_env", DEPLOY / "make_env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with exactly `env` for its variables: the process environment without
    those of `compose_variables()`, then `env`; an empty env file, so that no .env counts."""
    required = set(compose_variables())
    base = {k: v for k, v in os.environ.items() if k not in required and k != "ROSTER_UI_ADDRESS"}
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:
        return subprocess.run(
            [tool("docker-compose"), "-f", str(COMPOSE_FILE), "--env-file", empty.name, "config"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**base, **env},
            check=False,
        )


def compose_config(**env: str) -> dict[str, Any]:
    """The compose file as `docker-compose config` resolves it (variables, anchors, merges), with the
    secrets of `compose_variables()` unless `env` gives others."""
    result = run_compose_config({**compose_variables(), **env})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def published(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host address, container port) of each port the service publishes; short or long syntax."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), int(port["target"])))
        else:
            parts = str(port).split("/")[0].split(":")
            found.append((parts[0] if len(parts) == 3 else "", int(parts[-1])))
    return found


def dockerfile_stages() -> dict[str, dict[str, list[str]]]:
    """Per stage of deploy/Dockerfile, its exec-form ENTRYPOINT and CMD (inherited from its base)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split(maxsplit=1)
        if not words or words[0].startswith("#"):
            continue
        instruction, rest = words[0].upper(), (words[1] if len(words) > 1 else "")
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert match is not None, line
            current = dict(stages.get(match.group(1), {}))
            stages[match.group(2) or match.group(1)] = current
        elif instruction in ("ENTRYPOINT", "CMD"):
            current[instruction] = json.loads(rest)
    return stages


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variable queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\broster_[a-z_]+[a-z]\b", expression))
