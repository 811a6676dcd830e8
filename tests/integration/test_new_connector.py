"""`roster new-connector NAME`: the package it writes installs with pip, is found as `type: NAME`, and its
own tests (the conformance kit against its stand-in service) pass; examples/badge-connector is exactly
what it writes for `badge`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from roster.scaffold import render

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "badge-connector"
GENERATED_ELSEWHERE = ("__pycache__", ".ruff_cache", ".pytest_cache", "build")


def _roster(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "common.process.launcher", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_badge_example_is_exactly_what_new_connector_writes_for_badge() -> None:
    held = {
        path.relative_to(EXAMPLE)
        for path in EXAMPLE.rglob("*")
        if path.is_file()
        and not any(part in GENERATED_ELSEWHERE or part.endswith(".egg-info") for part in path.parts)
    }
    written = render("badge")
    assert held == set(written), "regenerate the example: roster new-connector badge --into …"
    for relative, text in written.items():
        assert (EXAMPLE / relative).read_text(encoding="utf-8") == text, relative


def test_a_new_connector_package_installs_is_found_and_passes_its_own_tests(tmp_path: Path) -> None:
    package = tmp_path / "roster-payroll-connector"
    done = _roster("new-connector", "payroll", "--into", str(package), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pip install -e '.[test]' && pytest" in done.stdout

    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(package)], check=True, cwd=tmp_path)
    env = {"PYTHONPATH": os.pathsep.join((str(site), str(REPO)))}

    listed = _roster("plugins", "--json", cwd=tmp_path, env=env)
    assert '"type":"payroll","loaded":true,"distribution":"roster-payroll-connector"' in listed.stdout

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    summary = tests.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary

    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=package, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("sql", "'sql' is a connector type already installed"),
        ("Badge-System", "'Badge-System' cannot name a connector type"),
        ("badge", "exists already; nothing was written"),
    ],
)
def test_new_connector_refuses_and_writes_nothing(tmp_path: Path, name: str, problem: str) -> None:
    (tmp_path / "roster-badge-connector").mkdir()
    (tmp_path / "roster-badge-connector" / "mine.txt").write_text("kept")

    done = _roster("new-connector", name, cwd=tmp_path)

    assert done.returncode == 2, done.stdout + done.stderr
    assert problem in " ".join(done.stdout.split())
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine.txt", "roster-badge-connector"]
