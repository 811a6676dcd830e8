"""The REST connector passes the conformance kit against the in-house style service of the tests
(tests/rest_service.py), read back from the service's own state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp
import pytest
import yaml

from roster.testing import Profile, Refusal, Sample
from roster.testing.plugin import ConnectorConformance
from tests.rest_service import KEY, RestService, serving
from tests.workers.test_rest_connector import TARGET

NAME_PARTS = {"given": "given", "family": "family"}


class RestProbe:
    """Reads the service's state directly; plants and sets through its API, as another client would."""

    def __init__(self, service: RestService, session: aiohttp.ClientSession) -> None:
        self.service = service
        self.session = session

    def _store(self, object_type: str) -> dict[str, dict[str, Any]]:
        return self.service.users if object_type == "user" else self.service.groups

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        held = self._store(object_type).get(target_id)
        if held is None:
            return None
        if object_type == "group":
            return dict(held)
        found = {key: value for key, value in held.items() if key != "name"}
        for part, value in (held.get("name") or {}).items():
            found[NAME_PARTS[part]] = value
        return found

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        found = []
        for target_id in list(self._store(object_type)):
            held = await self.read(object_type, target_id)
            if held is not None and held.get(attribute) == value:
                found.append(target_id)
        return found

    async def plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        body = dict(attributes)
        if object_type == "user":
            name = {part: body.pop(part) for part in NAME_PARTS if part in body}
            body = {**body, "name": name} if name else body
        url = f"{self.service.url}/{object_type}s"
        async with self.session.post(url, json=body) as answer:
            assert answer.status == 201, await answer.text()
            return str((await answer.json())["data"]["id"])

    async def set(self, object_type: str, target_id: str, attributes: Mapping[str, Any]) -> None:
        url = f"{self.service.url}/{object_type}s/{target_id}"
        async with self.session.patch(url, json=dict(attributes)) as answer:
            assert answer.status == 200, await answer.text()


PROFILE = Profile(
    samples={
        "user": Sample(
            match="login",
            attributes={"login": "{key}", "email": "{id}@example.org", "given": "Ada", "family": "{key}"},
            changes={"family": "{key} Renamed"},
            disabled={"active": False},
            unmapped={"department": "set outside Roster"},
        ),
        "group": Sample(
            match="name",
            attributes={"name": "{key}"},
            changes={"name": "{key} renamed"},
            unmapped={"description": "set outside Roster"},
        ),
    },
    refusal=Refusal(attributes={"email": "not an address"}, message="is not an address"),
    members=True,
    folded=frozenset({"login", "name"}),
    patience_s=20.0,
)


class TestRest(ConnectorConformance):
    not_applicable: ClassVar[Mapping[str, str]] = {
        "group/crud:disable": "the service's groups have no disable: they are deleted instead",
        "group/crud:create-disabled": "the same: a group is never disabled (such an operation fails)",
        "group/crud:update-disabled": "the same: a group is never disabled (such an operation fails)",
        "group/batch:isolation": "the refused value is a user's; groups take the same per-operation path",
    }

    @pytest.fixture
    async def service(self) -> AsyncIterator[RestService]:
        async with serving() as service:
            yield service

    @pytest.fixture
    def target_yaml(self, service: RestService) -> dict[str, Any]:
        settings = yaml.safe_load(TARGET % {"key": KEY})
        return {"name": "kit-rest", "type": "rest", "url": service.url, "timeout_s": 5, **settings}

    @pytest.fixture
    async def probe(self, service: RestService) -> AsyncIterator[RestProbe]:
        async with aiohttp.ClientSession(headers={"X-Api-Key": KEY}) as session:
            yield RestProbe(service, session)

    @pytest.fixture
    def profile(self) -> Profile:
        return PROFILE
