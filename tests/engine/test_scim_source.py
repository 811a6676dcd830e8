"""The SCIM source against a real SCIM server (scim2-server), directly and through a faulty proxy.

The module starts its own server, seeded once with `SEEDED` users (more than one page of 1,000), so
that counts are exact; the end-to-end test provisions them into the session's second server.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from common.config.yamlfile import load_yaml
from common.errors import ConfigError, SourceError
from common.peers.scim_schemas import ENTERPRISE_SCHEMA
from engine.cli.embedded import embedded
from engine.config import parse_engine_config
from engine.model import SourceObject
from engine.sources.registry import parse_source
from engine.sources.scim import ScimSource, parse_scim_source
from engine.sources.scim_flatten import flatten
from engine.store.state import state_url
from tests.conftest import SCIM_BASIC, SCIM_OAUTH_CLIENT, SCIM_TOKEN
from tests.fault_proxy import FaultProxy, Faults
from tests.scim_server import ScimServer, ScimServerError, start_scim_server
from workers.config import parse_targets

StartProxy = Callable[..., Awaitable[FaultProxy]]
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PREFIX = f"p{secrets.token_hex(2)}-"
SEEDED = 1_101  # 1,100 people and one whose externalId repeats another's


def person(i: int) -> dict[str, Any]:
    """The seeded user `i`: every third has the enterprise extension, every seventh is inactive."""
    user: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "userName": f"{PREFIX}{i:04d}",
        "name": {"givenName": ["José", "Zoë", "Siobhán", "Ana"][i % 4], "familyName": f"Nuñez {i}"},
        "emails": [
            {"type": "home", "value": f"home{i}@example.net"},
            {"type": "work", "value": f"user{i}@example.org", "primary": True},
        ],
        "title": ["Engineer", "Manager", "Clerk"][i % 3],
        "active": i % 7 != 0,
    }
    if i % 50 != 0:
        user["externalId"] = f"X{i}"
    if i % 3 == 0:
        user["schemas"].append(ENTERPRISE_SCHEMA)
        user[ENTERPRISE_SCHEMA] = {
            "department": ["Sales", "R&D"][i % 2],
            "employeeNumber": str(10_000 + i),
            "manager": {"value": "m-1"},
        }
    return user


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/scim+json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def source_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """A fresh scim2-server holding the seeded users (and a duplicate externalId)."""
    try:
        server = start_scim_server(tmp_path_factory.mktemp("scim-source"))
    except ScimServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        users = [person(i) for i in range(SEEDED - 1)]
        users.append({**person(SEEDED - 1), "externalId": "X1"})
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda body: _post(f"{server.url}/Users", body), users))
        yield server
    finally:
        server.stop()


def source(url: str, *, object_type: str = "user", **settings: Any) -> ScimSource:
    raw = {"type": "scim", "url": url, "retries": 3, **settings}
    return ScimSource(parse_scim_source("jobs[0].source", raw, base_dir=Path.cwd(), object_type=object_type))


async def read_all(scim: ScimSource, size: int = 1000) -> list[SourceObject]:
    objects = [obj async for batch in scim.batches(size) for obj in batch]
    ids = [obj.source_id for obj in objects]
    assert len(ids) == len(set(ids)), "a source id was yielded twice"
    return objects


async def listed(server: ScimServer, endpoint: str, query: str) -> list[dict[str, Any]]:
    """Every resource matching `query`, read directly from the server, page by page."""
    found: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        while True:
            url = f"{server.url}{endpoint}?filter={quote(query)}&startIndex={len(found) + 1}&count=1000"
            async with session.get(url) as answer:
                body = await answer.json(content_type=None)
            found += body.get("Resources", [])
            if not body.get("Resources") or len(found) >= body["totalResults"]:
                return found


# -- Settings and names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path", "says"),
    [
        ({"url": "http://h", "object_type": "user"}, "jobs[0].source.object_type", "beside `source:`"),
        ({}, "jobs[0].source.url", "is required"),
        ({"url": "ftp://h"}, "jobs[0].source.url", "http(s) URL"),
        ({"url": "http://h/v2/Users"}, "jobs[0].source.url", "base URL"),
        ({"url": "http://h", "page_size": 0}, "jobs[0].source.page_size", "at least 1"),
        ({"url": "http://h", "filtre": "x"}, "jobs[0].source.filtre", "'filter'"),
        ({"url": "http://h", "member_id_attribute": "id"}, "jobs[0].source.member_id_attribute", "groups"),
        ({"url": "http://h", "auth": {"type": "bearer"}}, "jobs[0].source.auth.token", "is required"),
    ],
)
def test_a_bad_setting_names_its_key_and_the_fix(raw: dict[str, Any], path: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_source("jobs[0].source", {"type": "scim", **raw}, base_dir=Path.cwd(), object_type="user")
    assert caught.value.path == path
    assert says in str(caught.value)


def test_settings_hide_the_credentials() -> None:
    raw = {"type": "scim", "url": "https://idp/scim/v2", "auth": {"type": "bearer", "token": "s3cr3t"}}
    settings = parse_source("s", raw, base_dir=Path.cwd(), object_type="group")
    assert settings.type == "scim"
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize("object_type", ["user", "group"])
def test_the_job_object_type_picks_the_endpoint(object_type: str) -> None:
    job = {
        "name": "idp",
        "object_type": object_type,
        "source": {"type": "scim", "url": "https://idp/scim/v2"},
        "target": "app",
        "mappings": [{"target": "displayName", "source": "displayName"}],
    }
    (parsed,) = parse_engine_config({"jobs": [job]}, base_dir=Path.cwd()).jobs
    assert parsed.source.settings.object_type == object_type
    endpoint = "/Users" if object_type == "user" else "/Groups"
    assert repr(parsed.source.open()) == f"ScimSource(https://idp/scim/v2{endpoint})"


def test_names_are_flattened_as_the_scim_connector_writes_them() -> None:
    flat = flatten(person(3))
    assert flat["userName"] == f"{PREFIX}0003"
    assert flat["name.givenName"] == "Ana"
    assert flat['emails[type eq "work"].value'] == "user3@example.org"
    assert flat['emails[type eq "home"].value'] == "home3@example.net"
    assert flat["emails.value"] == "user3@example.org"  # the primary entry
    assert flat[f"{ENTERPRISE_SCHEMA}:department"] == flat["enterprise.department"] == "R&D"
    assert flat[f"{ENTERPRISE_SCHEMA}:manager.value"] == flat["enterprise.manager.value"] == "m-1"
    assert flat["emails"] == person(3)["emails"]  # whole, for a SCIM-to-SCIM copy
    assert "schemas" not in flat


def test_a_type_spelled_with_capitals_is_found_under_its_canonical_lower_case() -> None:
    flat = flatten({"emails": [{"type": "Work", "value": "a@example.org"}]})
    assert flat['emails[type eq "work"].value'] == flat['emails[type eq "Work"].value'] == "a@example.org"


def test_the_example_job_file_is_valid_with_and_without_the_scim_source(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "scim.yaml"
    text = example.read_text()
    uncommented = re.sub(r"^  # (- name|  )", r"  \1", text, flags=re.M)
    environ = {"IDP_SCIM_URL": "https://idp/scim/v2", "IDP_TOKEN_URL": "https://idp/token", "IDP_SECRET": "x"}
    for variant, jobs in ((text, 2), (uncommented, 4)):
        (tmp_path / "jobs.yaml").write_text(variant)
        raw = load_yaml(tmp_path / "jobs.yaml", environ=environ)
        config = parse_engine_config(raw, base_dir=example.parent)
        assert len(config.jobs) == jobs
        assert {t.name for t in parse_targets(raw, base_dir=example.parent)} >= {
            j.target for j in config.jobs
        }


# -- Reading ---------------------------------------------------------------------------------------


async def test_reads_every_user_once_across_pages_capped_at_1000(
    source_server: ScimServer, fault_proxy: StartProxy
) -> None:
    proxy = await fault_proxy(source_server.root)
    scim = source(f"{proxy.url}/v2", filter=f'userName sw "{PREFIX}"', page_size=5000)
    objects = await read_all(scim, size=300)

    assert len(objects) == SEEDED
    assert {obj.attributes["userName"] for obj in objects} == {f"{PREFIX}{i:04d}" for i in range(SEEDED)}
    assert all(obj.source_id == obj.attributes["id"] for obj in objects)
    assert [hit.path for hit in proxy.hits] == ["/v2/Users", "/v2/Users"]  # 1,000 then the rest
    assert (scim.problems, scim.passes) == ([], 1)


async def test_enterprise_attributes_and_the_filter_reach_the_objects(source_server: ScimServer) -> None:
    query = f'userName sw "{PREFIX}" and {ENTERPRISE_SCHEMA}:department eq "R&D" and active eq true'
    objects = await read_all(
        source(source_server.url, filter=query, attributes=["userName", ENTERPRISE_SCHEMA])
    )

    expected = {f"{PREFIX}{i:04d}" for i in range(SEEDED - 1) if i % 6 == 3 and i % 7 != 0}
    assert {obj.attributes["userName"] for obj in objects} == expected
    one = next(obj.attributes for obj in objects if obj.attributes["userName"] == f"{PREFIX}0003")
    assert one["enterprise.employeeNumber"] == "10003"
    assert one[f"{ENTERPRISE_SCHEMA}:department"] == "R&D"
    assert "name.givenName" not in one  # not asked for


async def test_another_id_attribute_reports_missing_and_repeated_ids(source_server: ScimServer) -> None:
    scim = source(source_server.url, filter=f'userName sw "{PREFIX}"', id_attribute="externalId")
    objects = await read_all(scim)

    missing = {i for i in range(SEEDED - 1) if i % 50 == 0}
    assert len(objects) == SEEDED - len(missing) - 1  # and one of the two X1s
    assert all(obj.source_id == obj.attributes["externalId"] for obj in objects)
    messages = [str(p) for p in scim.problems]
    assert sum("has no externalId; skipped" in m for m in messages) == len(missing)
    assert sum("has the externalId 'X1' of" in m for m in messages) == 1


async def test_groups_list_their_members_as_the_users_source_ids(source_server: ScimServer) -> None:
    users = {
        u["userName"]: u["id"] for u in await listed(source_server, "/Users", f'userName sw "{PREFIX}00"')
    }
    names = sorted(users)[:3]
    async with aiohttp.ClientSession() as session:
        inner = f"{PREFIX}inner"
        body = {"schemas": [GROUP_SCHEMA], "displayName": inner}
        async with session.post(f"{source_server.url}/Groups", json=body) as answer:
            inner_id = (await answer.json(content_type=None))["id"]
        members = [{"value": users[n], "type": "User"} for n in names] + [
            {"value": inner_id, "type": "Group"}
        ]
        body = {"schemas": [GROUP_SCHEMA], "displayName": f"{PREFIX}team", "members": members}
        async with session.post(f"{source_server.url}/Groups", json=body) as answer:
            assert answer.status == 201

    query = f'displayName eq "{PREFIX}team"'
    (by_id,) = await read_all(source(source_server.url, object_type="group", filter=query))
    scim = source(source_server.url, object_type="group", filter=query, member_id_attribute="userName")
    (by_name,) = await read_all(scim)

    assert by_id.attributes["displayName"] == f"{PREFIX}team"
    assert sorted(by_id.attributes["members"]) == sorted(users[n] for n in names)
    assert sorted(by_name.attributes["members"]) == names
    assert [str(p) for p in scim.problems] == [
        f"line 1: group {by_name.source_id} has 1 members that are not users with a userName; left out"
    ]
    assert scim.skipped == 0  # a note: the group itself was read, so the read is complete


async def test_a_listing_that_moves_during_the_read_misses_no_one(source_server: ScimServer) -> None:
    prefix = f"m{secrets.token_hex(2)}-"
    async with aiohttp.ClientSession() as session:
        created = []
        for i in range(120):
            body = {"schemas": [USER_SCHEMA], "userName": f"{prefix}{i:03d}"}
            async with session.post(f"{source_server.url}/Users", json=body) as answer:
                created.append((await answer.json(content_type=None))["id"])

        added = iter(range(1_000))

        async def move(read: list[str]) -> None:
            """Delete five users already read (the rest shift back) and add three."""
            for user_id in read[:5]:
                async with session.delete(f"{source_server.url}/Users/{user_id}") as answer:
                    assert answer.status == 204
            for i in itertools.islice(added, 3):
                body = {"schemas": [USER_SCHEMA], "userName": f"{prefix}new{i}"}
                async with session.post(f"{source_server.url}/Users", json=body) as answer:
                    assert answer.status == 201

        scim = source(source_server.url, filter=f'userName sw "{prefix}"', page_size=20)
        seen: list[str] = []
        async for batch in scim.batches(20):
            seen += [obj.source_id for obj in batch]
            if len(seen) == 40:
                await move(seen)
        assert len(seen) == len(set(seen))
        assert set(created) - set(seen) == set(), "a user present all along was missed"
        assert scim.passes == 2

        strict = source(source_server.url, filter=f'userName sw "{prefix}"', page_size=20, max_passes=1)
        moved = False
        with pytest.raises(SourceError, match="kept changing"):
            async for batch in strict.batches(20):
                if not moved:
                    await move([obj.source_id for obj in batch])
                    moved = True


async def test_transient_errors_are_retried_and_the_read_completes(
    source_server: ScimServer, fault_proxy: StartProxy
) -> None:
    proxy = await fault_proxy(source_server.root, faults=Faults(retry_after="0.2"))
    proxy.force("503", "429", None, "drop", "slow")
    scim = source(f"{proxy.url}/v2", filter=f'userName sw "{PREFIX}"', page_size=400)
    objects = await read_all(scim)

    assert len(objects) == SEEDED
    assert [hit.fault for hit in proxy.hits[:5]] == ["503", "429", None, "drop", "slow"]
    throttled, after = proxy.hits[1], proxy.hits[2]
    assert after.at - throttled.at >= 0.19  # Retry-After was honoured


async def test_a_service_that_keeps_failing_is_a_source_error(
    source_server: ScimServer, fault_proxy: StartProxy
) -> None:
    proxy = await fault_proxy(source_server.root, faults=Faults(status_503=1.0))
    with pytest.raises(SourceError, match=r"still failing after 2 tries: HTTP 503"):
        await read_all(source(f"{proxy.url}/v2", retries=1))
    with pytest.raises(SourceError, match=r"HTTP 400 invalidFilter.*check the source's `filter:`"):
        await read_all(source(source_server.url, filter="userName eq"))


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "bearer", "token": SCIM_TOKEN},
        {"type": "basic", "username": SCIM_BASIC[0], "password": SCIM_BASIC[1]},
        {"type": "oauth2", "client_id": SCIM_OAUTH_CLIENT[0], "client_secret": SCIM_OAUTH_CLIENT[1]},
    ],
    ids=["bearer", "basic", "oauth2"],
)
async def test_each_auth_method_reads_and_refused_credentials_are_never_shown(
    scim_auth_server: ScimServer, auth: dict[str, str]
) -> None:
    if auth["type"] == "oauth2":
        auth = {**auth, "token_url": scim_auth_server.token_url}
    await read_all(source(scim_auth_server.url, auth=auth))

    wrong = {"type": "bearer", "token": "wrong-" + secrets.token_hex(8)}
    with pytest.raises(SourceError, match=r"HTTP 401.*check the source's `auth:`") as caught:
        await read_all(source(scim_auth_server.url, auth=wrong))
    assert wrong["token"] not in str(caught.value)


# -- End to end -----------------------------------------------------------------------------------


async def test_users_read_from_one_scim_service_are_provisioned_into_another_user_by_user(
    source_server: ScimServer, scim_server: ScimServer, tmp_path: Path
) -> None:
    query = f'userName sw "{PREFIX}" and title eq "Clerk"'  # a third of them, to keep the test short
    count = sum(1 for i in range(SEEDED) if i % 3 == 2)
    copied = (
        "userName",
        "name.givenName",
        "name.familyName",
        'emails[type eq "work"].value',
        "title",
        "active",
        f"{ENTERPRISE_SCHEMA}:department",
    )
    raw = {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "jobs": [
            {
                "name": "idp-to-app",
                "source": {
                    "type": "scim",
                    "url": source_server.url,
                    "filter": query,
                    "page_size": 100,
                },
                "target": "app",
                "mappings": [
                    *({"target": name, "source": name, "match": name == "userName"} for name in copied),
                    {"target": "externalId", "source": "id"},
                    {"target": "displayName", "expression": 'Join(" ", [name.givenName], [name.familyName])'},
                ],
            }
        ],
        "targets": [{"name": "app", "type": "scim", "url": scim_server.url, "max_concurrency": 8}],
    }
    config = parse_engine_config(raw, base_dir=tmp_path)
    async with embedded(
        config, parse_targets(raw, base_dir=tmp_path), state_url(str(tmp_path / "s.db"))
    ) as p:
        first = await p.runner.run_cycle(config.jobs[0])
        second = await p.runner.run_cycle(config.jobs[0])

    assert (first.created, first.failed, first.status) == (count, 0, "succeeded"), first.error
    assert (second.changed, second.unchanged) == (0, count)
    origin = {u["userName"]: flatten(u) for u in await listed(source_server, "/Users", query)}
    copied_in = await listed(scim_server, "/Users", f'userName sw "{PREFIX}"')
    copies = {u["userName"]: flatten(u) for u in copied_in}
    assert len(origin) == count
    assert sorted(copies) == sorted(origin)
    for user_name, want in origin.items():
        got = copies[user_name]
        assert {n: got.get(n) for n in copied} == {n: want.get(n) for n in copied}, user_name
        assert got["externalId"] == want["id"]
        assert got["displayName"] == f"{want['name.givenName']} {want['name.familyName']}"
