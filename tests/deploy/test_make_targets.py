"""The Makefile's deploy targets: `make env` (the .env of docker-compose.yml) and `make image`, read
through `make -n` where they would need a container engine."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.deploy.files import COMPOSE_FILE, DEPLOY, compose_variables, make_env

REPO = COMPOSE_FILE.parent


def _env(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _make_env(path: Path) -> str:
    result = subprocess.run(
        ["python3", str(DEPLOY / "make_env.py"), str(path)], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_make_env_writes_random_secrets_readable_by_the_owner_only(tmp_path: Path) -> None:
    first, second = tmp_path / "one.env", tmp_path / "two.env"
    _make_env(first)
    _make_env(second)
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    values, others = _env(first), _env(second)
    assert set(values) == set(compose_variables())
    for name in make_env().SECRETS:
        assert len(values[name]) >= 32 and values[name] != others[name], name


def test_make_env_keeps_what_is_there_adds_what_is_missing_and_tightens_the_mode(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# mine\nRABBITMQ_PASSWORD=chosen-by-me\nALERT_WEBHOOK_URL=https://hooks.example.com/x")
    os.chmod(path, 0o644)
    out = _make_env(path)
    values = _env(path)
    assert values["RABBITMQ_PASSWORD"] == "chosen-by-me"
    assert values["ALERT_WEBHOOK_URL"] == "https://hooks.example.com/x"
    assert set(values) == set(compose_variables()) and "POSTGRES_PASSWORD" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    assert "up to date" in _make_env(path) and path.read_text() == before


def test_the_env_file_is_ignored_by_git_and_docker_and_made_by_make_quickstart() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, ".env must be git-ignored"
    dry = _make_n("quickstart")
    assert "deploy/make_env.py .env" in dry


def _make_n(*args: str) -> str:
    # Under `make test` this make is a sub-make, which says "Entering directory" unless told not to.
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_image_builds_the_runtime_stage_under_the_image_name_and_pushes_on_request() -> None:
    tag = "registry.example.com/team/roster:1.2.3"
    build = f"docker build -f deploy/Dockerfile --target runtime -t {tag} ."
    assert _make_n("image", f"IMAGE={tag}").splitlines() == [build]
    assert _make_n("image", f"IMAGE={tag}", "PUSH=1").splitlines() == [build, f"docker push {tag}"]
    assert _make_n("image").splitlines() == [
        "docker build -f deploy/Dockerfile --target runtime -t roster:dev ."
    ]
