"""The connector against Roster's conformance kit, on the stand-in of the badge system (service.py).

The kit drives the connector through Roster's contract (create, match instead of duplicating, update
only what changed, disable, delete, redelivery, transient and permanent errors, hostile values) and
reads the result back through `ServiceProbe`, which asks the service itself. Point `target_yaml` and
the probe at a test instance of the real service to check the connector against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp
import pytest
from aiohttp import web
from roster.testing import Profile, Refusal, Sample
from roster.testing.plugin import ConnectorConformance

from badge_connector.service import BadgeService

TOKEN = "token-for-the-tests-0123456789"
PATH = "/badges"

PROFILE = Profile(
    samples={
        "user": Sample(
            match="employee_no",
            attributes={"employee_no": "{key}", "display_name": "Ada {key}"},
            changes={"display_name": "Ada Renamed {key}"},
            disabled={"active": False},
            unmapped={"email": "ada.{id}@example.com"},
        )
    },
    refusal=Refusal(attributes={"email": "not an address"}, message="is not an e-mail address"),
    patience_s=20.0,
)


class ServiceProbe:
    """Reads and writes the service directly, never through the connector."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url + PATH
        self.session = session

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        async with self.session.get(f"{self.url}/{target_id}") as answer:
            return await answer.json() if answer.status == 200 else None

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        async with self.session.get(self.url) as answer:
            held = (await answer.json())["badges"]
        return [item["id"] for item in held if item.get(attribute) == value]

    async def plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        async with self.session.post(self.url, json=dict(attributes)) as answer:
            assert answer.status == 201, await answer.text()
            return str((await answer.json())["id"])

    async def set(self, object_type: str, target_id: str, attributes: Mapping[str, Any]) -> None:
        async with self.session.patch(f"{self.url}/{target_id}", json=dict(attributes)) as answer:
            assert answer.status == 200, await answer.text()


@pytest.fixture
async def service_url() -> AsyncIterator[str]:
    runner = web.AppRunner(BadgeService(TOKEN).app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


class TestBadgeConnector(ConnectorConformance):
    object_types: ClassVar[tuple[str, ...]] = ("user",)
    not_applicable: ClassVar[Mapping[str, str]] = {
        "groups:members": "the badge system holds people only, no groups",
    }

    @pytest.fixture
    def target_yaml(self, service_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("BADGE_TOKEN", TOKEN)
        return {"name": "badge", "type": "badge", "url": service_url, "token_env": "BADGE_TOKEN"}

    @pytest.fixture
    async def probe(self, service_url: str) -> AsyncIterator[ServiceProbe]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            yield ServiceProbe(service_url, session)

    @pytest.fixture
    def profile(self) -> Profile:
        return PROFILE
