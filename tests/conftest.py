"""Fixtures shared by every test package: the real services, which must answer, never skip."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from tests.slapd import Slapd, SlapdError, make_slapd

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def require_service(name: str, port: int, how: str) -> None:
    """Fail (never skip) the test when a service it needs is not answering."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return
    except OSError as exc:
        pytest.fail(f"{name} is not answering on 127.0.0.1:{port} ({exc}); {how}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require_service("PostgreSQL", 5432, "start it with `bash tests/services.sh postgresql`")
    return POSTGRES_URL


@pytest.fixture
def slapd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Slapd]]:
    """Start private slapd instances with `slapd_factory(refint=False)`; all stop after the test. A missing
    slapd fails the test, naming the packages to install."""
    started: list[Slapd] = []

    def start(*, refint: bool = False) -> Slapd:
        try:
            server = make_slapd(tmp_path_factory.mktemp("slapd"), refint=refint)
        except SlapdError as exc:
            pytest.fail(str(exc), pytrace=False)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def slapd(slapd_factory: Callable[..., Slapd]) -> Slapd:
    """A fresh private slapd holding the base entries: ou=people, ou=groups and ou=disabled under SUFFIX."""
    return slapd_factory()
