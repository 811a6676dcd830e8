"""A test whose program or service is absent is skipped with the reason in pytest's summary, and fails
under ROSTER_TEST_STRICT=1 (tests/needs.py): run for real, on a test of the suite, with PATH stripped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import needs
from tests.integration.processes import free_port

REPO = Path(__file__).resolve().parents[1]
DEPLOY_TESTS = "tests/deploy/test_deploy_files.py"


def _pytest_without_promtool(**env: str) -> subprocess.CompletedProcess[str]:
    """Run one test of the suite that needs promtool, with a PATH that holds only the venv."""
    clean = {k: v for k, v in os.environ.items() if k != needs.STRICT_VARIABLE}
    clean["PATH"] = str(Path(sys.executable).parent)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", DEPLOY_TESTS, "-k", "promtool"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_missing_program_skips_its_test_with_the_reason_and_the_package_in_the_summary() -> None:
    run = _pytest_without_promtool()
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.split("short test summary info", 1)[1]
    assert "SKIPPED [1]" in summary
    assert (
        "promtool not found: " in summary
        and "apt-get install -y --no-install-recommends prometheus" in summary
    )
    assert run.stdout.rstrip().splitlines()[-1].count("1 skipped") == 1


def test_under_the_strict_variable_a_skip_is_a_failure_that_gives_the_reason() -> None:
    run = _pytest_without_promtool(**{needs.STRICT_VARIABLE: "1"})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "promtool not found: " in run.stdout and f"{needs.STRICT_VARIABLE}=1" in run.stdout
    last = run.stdout.rstrip().splitlines()[-1]
    assert "1 failed" in last and "skipped" not in last


def test_a_service_that_does_not_answer_skips_naming_its_address_and_how_to_start_it() -> None:
    port = free_port()
    with pytest.raises(pytest.skip.Exception) as skipped:
        needs.service("RabbitMQ", port)
    assert f"RabbitMQ is not answering on 127.0.0.1:{port}" in str(skipped.value)
    assert "bash tests/services.sh rabbitmq" in str(skipped.value)


def test_ci_sets_the_strict_variable() -> None:
    assert f"export {needs.STRICT_VARIABLE}=1" in (REPO / ".ci" / "run").read_text()
