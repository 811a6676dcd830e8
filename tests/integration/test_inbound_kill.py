"""Nothing acknowledged to a pushing client is lost: `roster run --serve` with the inbound service takes
Users over HTTP (answering once each is stored), is killed with SIGKILL while pushes are still being
planned, and the next run provisions every acknowledged User from the mirror, each exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.pipeline import sql_target, target_rows
from tests.integration.processes import REPO, free_port
from tests.integration.test_inbound import TOKEN, config, user

PUSHED = 300


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}


def _roster(*args: str, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "common.process.launcher", *args], cwd=REPO, env=_env(), **kw
    )


async def _push(url: str) -> list[str]:
    """Push the Users 16 at a time; the external ids of those answered 201 (stored)."""
    acknowledged: list[str] = []
    gate = asyncio.Semaphore(16)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}

    async def one(session: aiohttp.ClientSession, number: int) -> None:
        async with (
            gate,
            session.post(f"{url}/Users", data=json.dumps(user(number)), headers=headers) as answer,
        ):
            if answer.status == 201:
                acknowledged.append((await answer.json(content_type=None))["externalId"])

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, i) for i in range(PUSHED)), return_exceptions=True)
    return acknowledged


async def _answers(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{url}/ServiceProviderConfig", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as answer,
        ):
            return answer.status == 200
    except aiohttp.ClientError:
        return False


async def test_a_kill_after_the_answers_loses_no_acknowledged_user(tmp_path: Path) -> None:
    port = free_port()
    raw = config(tmp_path, respond="stored")
    raw["inbound"]["listen"] = f"127.0.0.1:{port}"
    raw["engine"]["state"] = str(tmp_path / "state.db")
    raw |= sql_target(f"sqlite:///{tmp_path / 'target.db'}")
    file = tmp_path / "jobs.yaml"
    file.write_text(json.dumps(raw))  # JSON is YAML
    url = f"http://127.0.0.1:{port}/scim/v2"
    serve_args = ["run", "--serve", str(file), "--api-listen", f"127.0.0.1:{free_port()}"]
    serve_args += ["--listen", f"127.0.0.1:{free_port()}", "--no-progress"]
    with (tmp_path / "serve.err").open("w") as err:
        process = _roster(*serve_args, stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while not await _answers(url):
            assert process.poll() is None, (tmp_path / "serve.err").read_text()
            assert time.monotonic() < deadline, "the inbound service did not start"
            await asyncio.sleep(0.2)
        acknowledged = await _push(url)
    finally:
        process.kill()  # SIGKILL: pushes still being planned are cut off
        process.wait(timeout=30)
    assert len(acknowledged) == PUSHED
    before = await target_rows(f"sqlite:///{tmp_path / 'target.db'}")

    again = _roster("run", str(file), "--no-progress", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out.decode()

    rows = await target_rows(f"sqlite:///{tmp_path / 'target.db'}")  # fails on a row held twice
    assert sorted(rows) == sorted(acknowledged)
    assert all(rows[k]["last_name"] == f"Müller {int(k[1:])}" for k in rows)
    print(f"provisioned before the kill: {len(before)} of {PUSHED}")  # shown with -s
