"""The SCIM connector passes the conformance kit against scim2-server, read back with plain GETs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import pytest

from roster.testing import Profile, Refusal, Sample
from roster.testing.plugin import ConnectorConformance
from tests.scim_server import ScimServer

ENDPOINTS = {"user": "Users", "group": "Groups"}
SCHEMAS = {
    "user": "urn:ietf:params:scim:schemas:core:2.0:User",
    "group": "urn:ietf:params:scim:schemas:core:2.0:Group",
}
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class ScimProbe:
    """Reads the service with its own HTTP session: a GET by id, a GET with an `eq` filter."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        async with self.session.get(f"{self.url}/{ENDPOINTS[object_type]}/{quote(target_id)}") as answer:
            if answer.status == 404:
                return None
            assert answer.status == 200, await answer.text()
            resource = await answer.json(content_type=None)
        found = {key: value for key, value in resource.items() if not isinstance(value, dict | list)}
        for key, value in (resource.get("name") or {}).items():
            found[f"name.{key}"] = value
        if object_type == "group":
            found["members"] = [member["value"] for member in resource.get("members") or []]
        return found

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        query = f"{attribute} eq {json.dumps(value, ensure_ascii=False)}"
        url = f"{self.url}/{ENDPOINTS[object_type]}?filter={quote(query, safe='')}"
        async with self.session.get(url) as answer:
            assert answer.status == 200, await answer.text()
            body = await answer.json(content_type=None)
        return [resource["id"] for resource in body.get("Resources") or []]

    async def plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        body: dict[str, Any] = {"schemas": [SCHEMAS[object_type]]}
        for name, value in attributes.items():
            head, _, tail = name.partition(".")
            if tail:
                body.setdefault(head, {})[tail] = value
            else:
                body[name] = value
        async with self.session.post(f"{self.url}/{ENDPOINTS[object_type]}", json=body) as answer:
            assert answer.status == 201, await answer.text()
            return str((await answer.json(content_type=None))["id"])

    async def set(self, object_type: str, target_id: str, attributes: Mapping[str, Any]) -> None:
        operations = [{"op": "replace", "path": name, "value": value} for name, value in attributes.items()]
        body = {"schemas": [PATCH], "Operations": operations}
        url = f"{self.url}/{ENDPOINTS[object_type]}/{quote(target_id)}"
        async with self.session.patch(url, json=body) as answer:
            assert answer.status in (200, 204), await answer.text()


PROFILE = Profile(
    samples={
        "user": Sample(
            match="userName",
            attributes={
                "userName": "{key}",
                "displayName": "Ada {key}",
                "name.givenName": "Ada",
                "name.familyName": "{key}",
                "externalId": "{id}",
            },
            changes={"displayName": "Ada Renamed {key}"},
            disabled={"active": False},
            unmapped={"title": "set outside Roster"},
        ),
        "group": Sample(
            match="displayName",
            attributes={"displayName": "{key}", "externalId": "{id}"},
            changes={"displayName": "{key} renamed"},
        ),
    },
    refusal=Refusal(attributes={"profileUrl": "not a url"}, message="Invalid URI"),
    members=True,
    folded=frozenset({"userName"}),
    patience_s=20.0,
)


class TestScim(ConnectorConformance):
    not_applicable: ClassVar[Mapping[str, str]] = {
        "group/crud:disable": "a group has no active flag to disable: it is deleted instead",
        "group/crud:create-disabled": "the same: a group is never disabled (such an operation fails)",
        "group/crud:update-disabled": "the same: a group is never disabled (such an operation fails)",
        "group/batch:isolation": "the refused value is a user's; groups take the same per-operation path",
        "group/crud:update-unmapped": "scim2-server's groups have no attribute but displayName and members",
    }

    @pytest.fixture
    def target_yaml(self, scim_server: ScimServer) -> dict[str, Any]:
        return {
            "name": "kit-scim",
            "type": "scim",
            "url": scim_server.url,
            "timeout_s": 5,
            "connect_timeout_s": 2,
        }

    @pytest.fixture
    async def probe(self, scim_server: ScimServer) -> AsyncIterator[ScimProbe]:
        async with aiohttp.ClientSession() as session:
            yield ScimProbe(scim_server.url, session)

    @pytest.fixture
    def profile(self) -> Profile:
        return PROFILE
