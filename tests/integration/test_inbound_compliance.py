"""The inbound SCIM service against a check suite we did not write: scim2-tester (PyPI) runs every one
of its checks (discovery, create, read, replace, PATCH, delete, filters, paging, attributes, search) on
Users and Groups through scim2-client, and every check must succeed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.integration.test_inbound import TOKEN, config, served


async def test_scim2_tester_finds_nothing_wrong(tmp_path: Path) -> None:
    raw = config(tmp_path, respond="stored")
    raw["inbound"]["tokens"][0]["jobs"] = ["people"]  # the job over Users; no job reads Groups
    async with served(tmp_path, raw) as (_p, client, _session):
        http = httpx2.Client(base_url=client.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        try:
            # scim2-client is synchronous: it runs in a thread while the service answers on the loop
            results = await asyncio.to_thread(check_server, SyncSCIMClient(http))
        finally:
            http.close()
    failed = [f"{r.title}: {r.reason}" for r in results if r.status != Status.SUCCESS]
    assert len(results) > 100 and failed == [], failed
