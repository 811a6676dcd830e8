"""The inbound SCIM service end to end: a client pushes Users over HTTP, the service stores them in the
mirror and plans each at once in the job over it, into a real SQLite table; GET and list answer from
the mirror. Refusals come in SCIM's error shape and store nothing."""

from __future__ import annotations

import asyncio
import base64
import io
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from common.errors import ConfigError
from common.peers.scim_schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA
from engine.api.app import ApiGate
from engine.config import parse_engine_config
from engine.inbound.server import InboundServer
from engine.store.mirror import Mirror
from tests.integration.pipeline import pipeline, sql_target, target_rows
from tests.integration.test_ldap_cycle import groups_by_cn
from tests.integration.test_ldap_cycle import people as ldap_people
from tests.integration.test_ldap_cycle import target as ldap_target
from tests.slapd import Slapd

TOKEN = "t0ken-for-the-inbound-tests-0123456789"
READER = "r3ader-token-of-another-job-0123456789"


def config(tmp_path: Path, *, respond: str = "applied") -> dict[str, Any]:
    raw: dict[str, Any] = {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "inbound": {
            "listen": "127.0.0.1:0",
            "respond": respond,
            "apply_timeout_s": 10,
            "tokens": [
                {"name": "idp", "token": TOKEN, "jobs": ["people"]},
                {"name": "other", "token": READER, "jobs": []},
            ],
        },
        "jobs": [
            {
                "name": "people",
                "source": {"type": "scim_inbound"},
                "target": "db",
                "deletion_guard": False,
                "source_max_drop_percent": 100,
                "mappings": [
                    {"target": "employee_id", "source": "externalId", "match": True},
                    {"target": "first_name", "source": "name.givenName"},
                    {"target": "last_name", "source": "name.familyName"},
                    {"target": "email", "source": 'emails[type eq "work"].value'},
                    {"target": "department", "source": "enterprise.department", "default": "Unassigned"},
                    {"target": "company", "constant": "Example Corp"},
                ],
            }
        ],
    }
    return raw | sql_target(f"sqlite:///{tmp_path / 'target.db'}")


def user(number: int, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "userName": f"user{number}@example.org",
        "externalId": f"E{number:05d}",
        "name": {"givenName": "Zoë", "familyName": f"Müller {number}"},
        "emails": [{"type": "work", "value": f"user{number}@example.org", "primary": True}],
        ENTERPRISE_SCHEMA: {"department": "Sales"},
        "active": True,
        **extra,
    }


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str = TOKEN) -> None:
        self.session, self.url, self.token = session, url, token

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", **headers}
        data: Any = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
        if isinstance(data, bytes) and len(data) > 1_000_000:
            data = io.BytesIO(data)  # aiohttp warns of a large body given as bytes
        async with self.session.request(
            method,
            f"{self.url}{path}",
            data=data,
            headers={**headers, "Content-Type": "application/scim+json"},
        ) as answer:
            text = await answer.read()
            return answer.status, (orjson.loads(text) if text else None)


@asynccontextmanager
async def served(
    tmp_path: Path, raw: dict[str, Any]
) -> AsyncIterator[tuple[Any, Client, aiohttp.ClientSession]]:
    async with pipeline(tmp_path, raw) as p, aiohttp.ClientSession() as session:
        config = p.runner.config
        assert config.inbound is not None
        server = InboundServer(config.inbound, p.runner, config.jobs)
        await server.start()
        try:
            yield p, Client(session, server.url), session
        finally:
            await server.aclose()


async def test_pushed_users_reach_the_target_at_once_and_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):
        created = [await client.call("POST", "/Users", user(i)) for i in range(5)]
        assert [status for status, _ in created] == [201] * 5
        ids = [body["id"] for _, body in created]
        rows = await target_rows(url)  # respond: applied, so written before the answer
        assert sorted(rows) == [f"E{i:05d}" for i in range(5)]
        assert rows["E00003"]["last_name"] == "Müller 3" and rows["E00003"]["department"] == "Sales"

        # PATCH as Entra sends it (capital op, no path, a value object keyed by paths)
        patch = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {
                    "op": "Replace",
                    "value": {"name.familyName": "Nuñez", f"{ENTERPRISE_SCHEMA}:department": "R&D"},
                }
            ],
        }
        status, patched = await client.call("PATCH", f"/Users/{ids[3]}", patch)
        assert status == 200 and patched["name"]["familyName"] == "Nuñez"
        assert patched["meta"]["version"] == 'W/"2"'
        rows = await target_rows(url)
        assert (rows["E00003"]["last_name"], rows["E00003"]["department"]) == ("Nuñez", "R&D")

        # a read answers from the mirror; a filter on userName is answered by its index
        status, one = await client.call("GET", f"/Users/{ids[1]}")
        assert status == 200 and one["userName"] == "user1@example.org" and one["id"] == ids[1]
        status, listed = await client.call("GET", "/Users?filter=userName%20eq%20%22USER2@example.org%22")
        assert status == 200 and [r["id"] for r in listed["Resources"]] == [ids[2]]
        status, page = await client.call("GET", "/Users?startIndex=2&count=2")
        assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 2, 2)

        # a DELETE is a leaver: the job's deprovision policy (disable) applies at once
        status, _ = await client.call("DELETE", f"/Users/{ids[0]}")
        assert status == 204
        rows = await target_rows(url)
        assert rows["E00000"]["active"] in (0, False) and rows["E00001"]["active"] in (1, True)
        assert await Mirror(p.state).count("User") == 4


async def test_a_read_returns_what_it_asks_for_and_never_a_password(tmp_path: Path) -> None:
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):
        status, created = await client.call("POST", "/Users", user(1, password="Sup3r-secret!"))
        assert status == 201 and "password" not in created
        _, only = await client.call("GET", f"/Users/{created['id']}?attributes=userName")
        assert set(only) == {"schemas", "id", "userName"}
        _, without = await client.call("GET", f"/Users/{created['id']}?excludedAttributes=emails,name")
        assert "emails" not in without and "name" not in without and without["userName"]
        stored = await Mirror(p.state).get("User", created["id"])
        assert stored is not None and "password" not in stored.body
        for stored_file in tmp_path.glob("state.db*"):  # the WAL too
            assert b"Sup3r-secret!" not in stored_file.read_bytes(), stored_file


async def test_a_retried_post_is_the_same_user_and_a_second_name_is_a_conflict(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):
        first = await client.call("POST", "/Users", user(1))
        again = await client.call("POST", "/Users", user(1))  # the answer was lost; the client retries
        other = await client.call("POST", "/Users", user(2, userName="USER1@example.org"))
        assert first[0] == 201 and again[0] == 201 and again[1]["id"] == first[1]["id"]
        assert other[0] == 409 and other[1]["scimType"] == "uniqueness"
        assert await Mirror(p.state).count("User") == 1
        assert sorted(await target_rows(url)) == ["E00001"]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "scim_type"),
    [
        ("POST", "/Users", b"{not json", {}, 400, "invalidSyntax"),
        ("POST", "/Users", [1, 2], {}, 400, "invalidSyntax"),
        ("POST", "/Users", {"schemas": ["urn:example:Nothing"], "userName": "x"}, {}, 400, "invalidValue"),
        ("POST", "/Users", {"schemas": [USER_SCHEMA]}, {}, 400, "invalidValue"),
        ("GET", "/Users?filter=userName%20xx%20%22a%22", None, {}, 400, "invalidFilter"),
        ("GET", "/Users/nobody", None, {}, 404, None),
        ("POST", "/Users", user(9), {"Authorization": "Bearer wrong"}, 401, None),
        ("POST", "/Users", user(9), {"Authorization": "Basic abc"}, 401, None),
        ("POST", "/Users", b"x" * 2_000_000, {}, 413, None),
        ("DELETE", "/Users", None, {}, 405, None),
    ],
)
async def test_a_refused_request_gets_scims_error_and_stores_nothing(
    tmp_path: Path,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    scim_type: str | None,
) -> None:
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):
        answer_status, answer = await client.call(method, path, body, **headers)
        assert answer_status == status, answer
        assert answer["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert answer["status"] == str(status) and answer.get("scimType") == scim_type
        assert await Mirror(p.state).count("User") == 0


async def test_a_token_that_does_not_name_the_job_may_read_but_not_write(tmp_path: Path) -> None:
    async with served(tmp_path, config(tmp_path)) as (p, client, session):
        status, created = await client.call("POST", "/Users", user(1))
        reader = Client(session, client.url, READER)
        assert (await reader.call("GET", f"/Users/{created['id']}"))[0] == 200
        status, refused = await reader.call("POST", "/Users", user(2))
        assert status == 403 and "people" in refused["detail"]
        assert await Mirror(p.state).count("User") == 1


async def test_the_stored_answer_comes_first_and_the_target_follows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    async with served(tmp_path, config(tmp_path, respond="stored")) as (_p, client, _session):
        statuses = [(await client.call("POST", "/Users", user(i)))[0] for i in range(20)]
        assert statuses == [201] * 20
        for _ in range(200):
            if len(await target_rows(url)) == 20:
                break
            await asyncio.sleep(0.05)
        assert sorted(await target_rows(url)) == [f"E{i:05d}" for i in range(20)]


def test_a_job_over_the_inbound_service_needs_its_section_and_a_real_token(tmp_path: Path) -> None:
    raw = config(tmp_path)
    without = {k: v for k, v in raw.items() if k != "inbound"}
    with pytest.raises(ConfigError) as missing:
        parse_engine_config(without, base_dir=tmp_path)
    assert missing.value.path == "jobs[0].source.type" and "inbound:" in str(missing.value)
    weak = raw | {
        "inbound": {**raw["inbound"], "tokens": [{"name": "x", "token": "secret", "jobs": ["people"]}]}
    }
    with pytest.raises(ConfigError) as placeholder:
        parse_engine_config(weak, base_dir=tmp_path)
    assert placeholder.value.path == "inbound.tokens[0].token"
    assert "secret" not in str(placeholder.value)
    stranger = raw | {
        "inbound": {**raw["inbound"], "tokens": [{"name": "x", "token": TOKEN, "jobs": ["nope"]}]}
    }
    with pytest.raises(ConfigError) as unknown:
        parse_engine_config(stranger, base_dir=tmp_path)
    assert unknown.value.path == "inbound.tokens[0].jobs[0]"


def directory_config(server: Slapd) -> dict[str, Any]:
    """Users and Groups pushed to the inbound service, provisioned into a private slapd."""
    return {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "inbound": {
            "listen": "127.0.0.1:0",
            "respond": "applied",
            "apply_timeout_s": 10,
            "tokens": [{"name": "idp", "token": TOKEN, "jobs": ["people", "teams"]}],
        },
        "jobs": [
            {
                "name": "people",
                "source": {"type": "scim_inbound"},
                "target": "directory",
                "mappings": [
                    {"target": "employeeNumber", "source": "externalId", "match": True},
                    {"target": "userName", "source": "userName"},
                    {"target": "givenName", "source": "name.givenName"},
                    {"target": "familyName", "source": "name.familyName"},
                    {"target": "displayName", "expression": 'Join(" ", [name.givenName], [name.familyName])'},
                    {"target": "email", "source": 'emails[type eq "work"].value'},
                ],
            },
            {
                "name": "teams",
                "object_type": "group",
                "source": {"type": "scim_inbound"},
                "target": "directory",
                "members": {"source": "members", "job": "people"},
                "mappings": [{"target": "displayName", "source": "displayName", "match": True}],
            },
        ],
        "targets": [ldap_target(server)],
    }


async def test_users_groups_and_memberships_pushed_land_in_the_directory(
    tmp_path: Path, slapd: Slapd
) -> None:
    async with served(tmp_path, directory_config(slapd)) as (_p, client, _session):
        ids = [(await client.call("POST", "/Users", user(i)))[1]["id"] for i in range(4)]
        group = {"schemas": [GROUP_SCHEMA], "displayName": "App Helix", "members": [{"value": ids[0]}]}
        status, created = await client.call("POST", "/Groups", group)
        assert status == 201
        add = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": ids[1]}, {"value": ids[2]}]}],
        }
        assert (await client.call("PATCH", f"/Groups/{created['id']}", add))[0] == 204
        # Entra's removal: the member's value in a value list rather than a filter path
        remove = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"value": ids[0]}]}],
        }
        assert (await client.call("PATCH", f"/Groups/{created['id']}", remove))[0] == 204
        # Okta's deactivation: a replace without a path
        deactivate = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        }
        assert (await client.call("PATCH", f"/Users/{ids[3]}", deactivate))[0] == 200

    held = ldap_people(slapd)
    assert sorted(held) == [f"E{i:05d}" for i in range(4)]
    assert held["E00002"]["uid"] == ["user2@example.org"] and held["E00002"]["sn"] == ["Müller 2"]
    assert groups_by_cn(slapd, "employeeNumber") == {"App Helix": ["E00001", "E00002"]}


async def test_a_group_and_reports_pushed_right_after_their_users_get_them_without_waiting_for_a_cycle(
    tmp_path: Path, slapd: Slapd
) -> None:
    """Answered once stored, a provider sends the next request at once: a group naming users whose own
    pushes are still being applied, a report naming a manager who is. Each is planned after them, so
    the directory holds every member and manager with no cycle to resolve them later."""
    raw = directory_config(slapd) | {"inbound": {**directory_config(slapd)["inbound"], "respond": "stored"}}
    manager = {"target": "manager", "reference": {"source": "enterprise.manager.value", "job": "people"}}
    raw["jobs"][0]["mappings"].append(manager)
    async with served(tmp_path, raw) as (_p, client, _session):
        ids: list[str] = []
        for i in range(40):
            extra = {ENTERPRISE_SCHEMA: {"manager": {"value": ids[i - 1]}}} if i else {}
            status, created = await client.call("POST", "/Users", user(i, **extra))
            assert status == 201
            ids.append(created["id"])
        group = {
            "schemas": [GROUP_SCHEMA],
            "displayName": "App Helix",
            "members": [{"value": i} for i in ids],
        }
        assert (await client.call("POST", "/Groups", group))[0] == 201
        numbers = [f"E{i:05d}" for i in range(40)]
        deadline = asyncio.get_running_loop().time() + 20
        while (held_members := groups_by_cn(slapd, "employeeNumber").get("App Helix", [])) != numbers:
            missing = sorted(set(numbers) - set(held_members))
            assert asyncio.get_running_loop().time() < deadline, f"never added: {missing}"
            await asyncio.sleep(0.1)
        held = ldap_people(slapd)
        dn_of = {number: entry["dn"][0] for number, entry in held.items()}
        managers = {number: entry.get("manager", [None])[0] for number, entry in held.items()}
        assert managers == {n: dn_of[numbers[i - 1]] if i else None for i, n in enumerate(numbers)}


async def test_a_standby_answers_503_with_retry_after_and_stores_nothing_until_it_is_active(
    tmp_path: Path,
) -> None:
    async with pipeline(tmp_path, config(tmp_path)) as p, aiohttp.ClientSession() as session:
        settings = p.runner.config.inbound
        assert settings is not None
        gate = ApiGate("standby", lambda: "standby: the active engine is engine-a")
        server = InboundServer(settings, p.runner, p.runner.config.jobs, gate=gate)
        await server.start()
        try:
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
            async with session.post(
                f"{server.url}/Users", data=orjson.dumps(user(1)), headers=headers
            ) as answer:
                refused = (
                    answer.status,
                    answer.headers.get("Retry-After"),
                    await answer.json(content_type=None),
                )
            assert refused[:2] == (503, "5") and "engine-a" in refused[2]["detail"]
            assert await Mirror(p.state).count("User") == 0
            async with gate.opened():  # taken over: the same listener now serves
                async with session.post(
                    f"{server.url}/Users", data=orjson.dumps(user(1)), headers=headers
                ) as answer:
                    assert answer.status == 201
        finally:
            await server.aclose()
        assert await Mirror(p.state).count("User") == 1


SECRET = "0kta-client-secret-0123456789abcdef"


async def test_an_oauth_client_gets_a_token_that_writes_what_the_client_may_until_it_expires(
    tmp_path: Path,
) -> None:
    raw = config(tmp_path)
    raw["inbound"]["clients"] = [{"client_id": "okta", "client_secret": SECRET, "jobs": ["people"]}]
    raw["inbound"]["token_lifetime_s"] = 1
    async with served(tmp_path, raw) as (p, client, session):
        token_url = f"{client.url}/oauth/token"
        form = {"grant_type": "client_credentials"}
        basic = {"Authorization": "Basic " + base64.b64encode(f"okta:{SECRET}".encode()).decode()}
        async with session.post(token_url, data=form, headers=basic) as answer:
            issued = await answer.json()
            assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
        assert issued["token_type"] == "Bearer" and issued["expires_in"] == 1
        with_token = Client(session, client.url, issued["access_token"])
        assert (await with_token.call("POST", "/Users", user(1)))[0] == 201
        # the form may carry the credentials instead; a wrong secret or grant is refused in OAuth's words
        wrong = {**form, "client_id": "okta", "client_secret": SECRET + "x"}
        async with session.post(token_url, data=wrong) as answer:
            assert (answer.status, (await answer.json())["error"]) == (401, "invalid_client")
        password = {"grant_type": "password", "client_id": "okta", "client_secret": SECRET}
        async with session.post(token_url, data=password) as answer:
            assert (answer.status, (await answer.json())["error"]) == (400, "unsupported_grant_type")
        await asyncio.sleep(1.1)
        expired = await with_token.call("POST", "/Users", user(2))
        assert expired[0] == 401 and expired[1]["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert await Mirror(p.state).count("User") == 1


def test_a_service_needs_tokens_or_clients_and_a_client_a_real_secret(tmp_path: Path) -> None:
    raw = config(tmp_path)
    only_clients = raw | {
        "inbound": {
            **{k: v for k, v in raw["inbound"].items() if k != "tokens"},
            "clients": [{"client_id": "okta", "client_secret": SECRET, "jobs": ["people"]}],
        }
    }
    assert parse_engine_config(only_clients, base_dir=tmp_path).inbound is not None
    neither = raw | {"inbound": {k: v for k, v in raw["inbound"].items() if k != "tokens"}}
    with pytest.raises(ConfigError) as missing:
        parse_engine_config(neither, base_dir=tmp_path)
    assert missing.value.path == "inbound.tokens" and "clients" in str(missing.value)
    weak = raw | {
        "inbound": {
            **raw["inbound"],
            "clients": [{"client_id": "x", "client_secret": "password", "jobs": []}],
        }
    }
    with pytest.raises(ConfigError) as placeholder:
        parse_engine_config(weak, base_dir=tmp_path)
    assert placeholder.value.path == "inbound.clients[0].client_secret"


async def test_schemathesis_over_the_services_own_document_finds_no_server_error(tmp_path: Path) -> None:
    raw = config(tmp_path, respond="stored")
    raw["inbound"]["clients"] = [{"client_id": "okta", "client_secret": SECRET, "jobs": ["people"]}]
    async with served(tmp_path, raw) as (_p, client, _session):
        status, document = await client.call("GET", "/openapi.json")
        assert status == 200 and "/Users/{id}" in document["paths"] and "/oauth/token" in document["paths"]
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{client.url}/openapi.json",
            "--url",
            client.url,
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "10",
            "--seed",
            "20261207",
            "--no-color",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 240)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "Tested: 22" in text, text[-2000:]  # every route of the document, the token endpoint too
    assert TOKEN not in text and SECRET not in text
