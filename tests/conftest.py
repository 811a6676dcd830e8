"""Fixtures shared by every test package: the real services, which must answer, never skip."""

from __future__ import annotations

import socket

import pytest

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
