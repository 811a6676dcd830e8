"""Fixtures of the whole-flow tests: a fresh scim2-server per test, and a fault proxy in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import running_scim_server
from tests.fault_proxy import FaultProxy, Faults
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
