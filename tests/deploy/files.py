"""Reading the deploy files as the tools that run them do: the compose file through `docker-compose
config`, the Dockerfile's stages, the Kubernetes manifests and the dashboard's queries."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
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


def compose_config(**env: str) -> dict[str, Any]:
    """The compose file as `docker-compose config` resolves it (variables, anchors, merges)."""
    result = subprocess.run(
        [tool("docker-compose"), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


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
