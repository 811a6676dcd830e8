"""A first cycle against a SCIM app that already holds accounts links them by one listing of the
target (engine.pipeline.listing) instead of one search per object, against a real scim2-server.

Every test reads the whole target back and checks it object by object: each source person once, with
the mapped values; the accounts made out of band kept (linked, never recreated or duplicated).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.fault_proxy import FaultProxy
from tests.integration.pipeline import pipeline
from tests.integration.test_scim_groups import (
    assert_target_equals,
    config,
    expected_user,
    person,
    read_all,
    stored_user,
    write_sources,
)
from tests.scim_server import ScimServer

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def create_out_of_band(server: ScimServer, rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """POST users straight to the server, as another tool would; their ids by employee id. Their title
    differs from the source's, so linking them must also update them."""
    ids = {}
    async with aiohttp.ClientSession() as session:
        for row in rows:
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": row["login"],
                "externalId": row["employee_id"],
                "title": "Set elsewhere",
            }
            async with session.post(f"{server.url}/Users", json=body) as answer:
                assert answer.status == 201, await answer.text()
                ids[row["employee_id"]] = (await answer.json(content_type=None))["id"]
    return ids


def users_only(tmp_path: Path, url: str) -> dict[str, Any]:
    raw = config(tmp_path, url)
    raw["jobs"] = raw["jobs"][:1]
    return raw


def searches(proxy: FaultProxy) -> int:
    """The filtered GETs the proxy saw: one per matching attribute and object without a listing."""
    return sum(1 for hit in proxy.hits if hit.method == "GET" and "filter=" in hit.query)


async def test_a_first_cycle_links_existing_accounts_by_one_listing_and_creates_the_rest(
    tmp_path: Path, scim: ScimServer, proxy: FaultProxy
) -> None:
    people = [person(i) for i in range(300)]
    existing = await create_out_of_band(scim, people[::2])  # 150 in the target already
    strangers = [person(i) for i in range(5000, 5005)]  # in the target, not in the source
    await create_out_of_band(scim, strangers)
    write_sources(tmp_path, people, [])

    async with pipeline(tmp_path, users_only(tmp_path, proxy.url)) as p:
        summary = await p.runner.run_cycle(p.runner.config.jobs[0])

    assert (summary.created, summary.failed) == (300, 0)
    by_external: dict[str, dict[str, Any]] = {}
    for user in await read_all(scim, "Users"):
        assert user["externalId"] not in by_external, f"{user['externalId']} is in the target twice"
        by_external[user["externalId"]] = user
    stranger_ids = {row["employee_id"] for row in strangers}
    assert {k: stored_user(u) for k, u in by_external.items() if k not in stranger_ids} == {
        row["employee_id"]: expected_user(row) for row in people
    }
    for employee_id in stranger_ids:  # not in the source: left as they were
        assert by_external[employee_id]["title"] == "Set elsewhere"
    for employee_id, target_id in existing.items():
        assert by_external[employee_id]["id"] == target_id, f"{employee_id} was not linked to its account"
    assert searches(proxy) == 0
    listings = [h for h in proxy.hits if h.method == "GET" and "startIndex=" in h.query]
    assert len(listings) == 1
    # 150 POSTs, 150 reads by id and PATCHes of the linked ones, the one listing page:
    assert len(proxy.hits) / len(people) <= 1.51


async def test_a_user_created_between_the_listing_and_its_create_is_adopted_not_duplicated(
    tmp_path: Path, scim: ScimServer, proxy: FaultProxy
) -> None:
    people = [person(i) for i in range(120)]
    write_sources(tmp_path, people, [])
    racers = people[10:20]

    def late_writer(connector: Any) -> Any:
        return _CreatesAfterListing(connector, scim, racers)

    async with pipeline(tmp_path, users_only(tmp_path, proxy.url), wrap=late_writer) as p:
        summary = await p.runner.run_cycle(p.runner.config.jobs[0])

    assert (summary.created, summary.failed) == (120, 0)
    await assert_target_equals(scim, people, [])
    conflicts = [h for h in proxy.hits if h.method == "POST" and h.status == 409]
    assert len(conflicts) == len(racers)  # each racer's POST met the other writer's account, then adopted it


async def test_a_listing_that_fails_falls_back_to_searching_each_object(
    tmp_path: Path, scim: ScimServer, proxy: FaultProxy
) -> None:
    people = [person(i) for i in range(80)]
    await create_out_of_band(scim, people[:30])
    write_sources(tmp_path, people, [])
    proxy.force("503")  # the listing's first page

    async with pipeline(tmp_path, users_only(tmp_path, proxy.url)) as p:
        summary = await p.runner.run_cycle(p.runner.config.jobs[0])

    assert (summary.created, summary.failed) == (80, 0)
    await assert_target_equals(scim, people, [])
    assert searches(proxy) >= 80  # every create searched, as without a listing


class _CreatesAfterListing:
    """The real SCIM connector, with another writer that creates `racers` in the target as soon as a
    listing has been read (and before any create is sent)."""

    def __init__(self, inner: Any, server: ScimServer, racers: Sequence[dict[str, Any]]) -> None:
        self.inner = inner
        self.gate = inner.gate
        self._server = server
        self._racers = racers

    async def open(self) -> None:
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def apply(self, ops: Any) -> Any:
        return await self.inner.apply(ops)

    def listing_fields(self, object_type: str, attributes: Sequence[str]) -> list[str]:
        return self.inner.listing_fields(object_type, attributes)

    async def list_objects(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[list[Any]]]:
        async for page in self.inner.list_objects(object_type, fields):
            yield page
        await create_out_of_band(self._server, self._racers)


async def test_a_cycle_with_few_creates_searches_rather_than_listing_the_whole_target(
    tmp_path: Path, scim: ScimServer, proxy: FaultProxy
) -> None:
    people = [person(i) for i in range(49)]  # one short of listing_min_creates' default
    await create_out_of_band(scim, people[:10])
    write_sources(tmp_path, people, [])

    async with pipeline(tmp_path, users_only(tmp_path, proxy.url)) as p:
        summary = await p.runner.run_cycle(p.runner.config.jobs[0])

    assert (summary.created, summary.failed) == (49, 0)
    await assert_target_equals(scim, people, [])
    assert not [h for h in proxy.hits if "startIndex=" in h.query]
    assert searches(proxy) >= 49
