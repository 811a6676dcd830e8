"""Fixtures of the whole-flow tests: a fresh scim2-server per test, a fault proxy in front of it, and a fleet
of roster processes on a RabbitMQ virtual host of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import needs
from tests.conftest import running_scim_server
from tests.fault_proxy import FaultProxy, Faults
from tests.integration.processes import Fleet
from tests.rabbit import vhost
from tests.scim_server import ScimServer


@pytest.fixture
def scim(tmp_path: Path) -> Iterator[ScimServer]:
    """A fresh scim2-server per test, so its whole contents can be compared with the source."""
    with running_scim_server(tmp_path) as server:
        yield server


@pytest.fixture
async def proxy(scim: ScimServer) -> AsyncIterator[FaultProxy]:
    started = await FaultProxy(scim.root, seed=11, faults=Faults()).start()
    try:
        yield started
    finally:
        await started.aclose()


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this test's own (amqp:// URL), deleted after it."""
    needs.rabbitmq()
    with vhost() as url:
        yield url


@pytest.fixture
def fleet(tmp_path: Path, broker_url: str) -> Iterator[Fleet]:
    """Engine and worker processes on `broker_url`, every one stopped after the test."""
    fleet = Fleet(tmp_path, broker_url)
    try:
        yield fleet
    finally:
        fleet.stop_all()
