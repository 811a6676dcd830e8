"""The admin API over a real embedded engine (CSV source, SQLite target), served on a free port.

Routes are taken from the engine's own `/openapi.json`, so a route added later is covered by the
token and bad-input checks without touching these tests. Schemathesis then fuzzes every operation.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import sqlalchemy as sa

from engine.api.accounts import ApiAccount
from engine.api.admin import Admin
from engine.api.server import ApiServer, ApiSettings, operated
from engine.cli.embedded import Embedded
from engine.store.history import iso_utc
from engine.store.schema import log
from tests.integration.pipeline import job_config, person, pipeline, sql_target, write_csv

TOKEN = "test-token-0123456789"
PEOPLE = 40
ACCOUNTS = (
    ApiAccount("grafana", "viewer-token-0123456789", frozenset({"viewer"})),
    ApiAccount("oncall", "operator-token-0123456789", frozenset({"viewer", "operator"})),
    ApiAccount("cab", "approver-token-0123456789", frozenset({"approver"})),
)


@dataclass
class Served:
    url: str
    pipeline: Embedded
    session: aiohttp.ClientSession
    document: dict[str, Any]
    source: Path

    async def call(self, method: str, path: str, *, token: str | None = TOKEN, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.request(method, self.url + path, headers=headers, **kw) as answer:
            body = await answer.read()
            kind = answer.headers.get("Content-Type", "")
            return answer.status, orjson.loads(body) if kind.startswith("application/json") else body


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(PEOPLE)])
    raw = {**job_config(tmp_path), **sql_target(f"sqlite:///{tmp_path / 'target.db'}")}
    async with pipeline(tmp_path, raw) as p:
        await p.runner.run_cycle(p.runner.config.job("people"))
        settings = ApiSettings(port=0, token=TOKEN, accounts=ACCOUNTS)
        async with operated(Admin(p.runner), settings, retention_days=30) as server:
            assert isinstance(server, ApiServer)
            async with aiohttp.ClientSession() as session:
                document = await _document(session, server.url)
                yield Served(server.url, p, session, document, tmp_path / "people.csv")


async def _document(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
        assert answer.status == 200
        return await answer.json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


def _filled(path: str, job: str = "people") -> str:
    return path.replace("{job}", job).replace("{source_id}", "E00001")


async def test_every_route_does_what_it_says(served: Served) -> None:
    call = served.call
    assert await call("GET", "/healthz", token=None) == (200, {"healthy": True, "cycles_past_deadline": []})
    status, jobs = await call("GET", "/jobs")
    assert status == 200 and [j["job"] for j in jobs["jobs"]] == ["people"]
    status, job = await call("GET", "/jobs/people")
    assert (status, job["state"], job["last_cycles"][0]["counts"]["created"]) == (200, "active", PEOPLE)
    status, cycles = await call("GET", "/jobs/people/cycles?limit=1")
    assert status == 200 and len(cycles["cycles"]) == 1
    status, shown = await call("GET", "/jobs/people/preview/E00001")
    assert (status, shown["found"], shown["action"]) == (200, True, "nothing")
    status, fleet = await call("GET", "/agents")
    assert status == 200 and [(t["target"], t["jobs"]) for t in fleet["targets"]] == [("db", ["people"])]

    write_csv(served.source, [person(0, department="Legal")])
    status, done = await call("POST", "/jobs/people/provision", json={"source_id": "E00000"})
    assert status == 200 and [(r["action"], r["status"]) for r in done["records"]] == [
        ("update", "succeeded")
    ]

    assert (await call("POST", "/jobs/people/pause"))[1]["state"] == "paused"
    status, refused = await call("POST", "/jobs/people/cycles")
    assert (status, refused["error"]) == (409, "job_paused")
    assert (await call("POST", "/jobs/people/resume"))[1]["state"] == "active"
    status, started = await call("POST", "/jobs/people/cycles")
    assert (status, started) == (
        202,
        {
            "job": "people",
            "started": True,
            "queued_behind": None,
            "running_s": None,
            "message": "a cycle started",
        },
    )
    for _ in range(200):  # the triggered cycle disables the 39 people no longer in the source
        latest = (await call("GET", "/jobs/people"))[1]["last_cycles"][0]
        if (latest["trigger"], latest["status"]) == ("api", "succeeded"):
            break
        await asyncio.sleep(0.05)
    status, cycles = await call("GET", "/jobs/people/cycles")
    assert cycles["cycles"][0]["trigger"] == "api" and cycles["cycles"][0]["counts"]["disabled"] == PEOPLE - 1

    assert (await call("POST", "/jobs/people/restart"))[1]["state"] == "active"
    status, nothing = await call("POST", "/jobs/people/approve", json={"comment": "CHG-1 signed off"})
    assert (status, nothing["error"]) == (409, "nothing_to_approve")
    assert await call("POST", "/jobs/people/reject", json={"comment": "not now"}) == (
        200,
        {"job": "people", "rejected": 0},
    )

    status, page = await call("GET", "/logs?job=people&action=disable&limit=10")
    assert status == 200 and len(page["records"]) == 10 and page["next_after_id"] == page["records"][-1]["id"]
    status, rest = await call("GET", f"/logs?job=people&action=disable&after_id={page['next_after_id']}")
    assert len(rest["records"]) == PEOPLE - 1 - 10 and rest["next_after_id"] is None
    status, lines = await call("GET", "/logs/export?action=disable")
    exported = [orjson.loads(line) for line in lines.splitlines()]
    assert exported == [{**r, "at": iso_utc(r["at"])} for r in page["records"] + rest["records"]]
    assert exported[0]["at"].endswith("Z")  # exports carry ISO 8601 times in UTC
    status, newest = await call("GET", "/logs?job=people&action=disable&limit=10&order=newest")
    assert [r["id"] for r in newest["records"]] == [r["id"] for r in (page["records"] + rest["records"])][
        ::-1
    ][:10]
    assert newest["next_after_id"] is None and newest["next_before_id"] == newest["records"][-1]["id"]
    status, older = await call(
        "GET", f"/logs?action=disable&order=newest&before_id={newest['next_before_id']}"
    )
    assert [r["id"] for r in older["records"]] == [r["id"] for r in page["records"] + rest["records"]][::-1][
        10:
    ]
    status, mine = await call("GET", "/logs?person=e00001&order=newest&limit=1")
    assert status == 200 and [r["source_id"] for r in mine["records"]] == ["E00001"] and mine["next_cursor"]
    status, earlier = await call(
        "GET", f"/logs?person=e00001&order=newest&limit=9&cursor={mine['next_cursor']}"
    )
    everything = [r for r in page["records"] + rest["records"] if r["source_id"] == "E00001"]
    assert {r["source_id"] for r in earlier["records"]} == {"E00001"} and earlier["next_cursor"] is None
    assert everything[-1]["id"] in {r["id"] for r in mine["records"] + earlier["records"]}
    status, text = await call("GET", "/logs/export?format=csv&action=update")
    assert text.decode().splitlines()[0].startswith("id,at,cycle_id") and len(text.splitlines()) == 2

    with sqlite3.connect(served.source.parent / "target.db") as conn:
        conn.execute("UPDATE accounts SET department = 'HACKED' WHERE employee_id = 'E00000'")
    status, reconciled = await call("POST", "/jobs/people/reconcile")
    assert (status, reconciled["situations"]) == (200, {"drifted": 1, "deprovisioned": PEOPLE - 1})
    assert reconciled["findings"] == ["E00000: drifted: department: expected 'Legal', found 'HACKED'"]
    assert reconciled["corrections"] == {"correct": 1} and reconciled["cycle"]["updated"] == 1
    status, job = await call("GET", "/jobs/people")
    assert job["last_reconciled"]["situations"]["drifted"] == 1

    assert (await call("POST", "/jobs/people/reset"))[1]["state"] == "active"
    assert await served.pipeline.state.entry("people", "E00000") is None  # the links are forgotten

    status, trail = await call("GET", "/audit")
    assert status == 200
    assert [(e["action"], e["outcome"], e["object"], e["comment"]) for e in trail["records"]] == [
        ("reset", "done", None, None),
        ("reconcile", "done", reconciled["cycle_id"], None),
        ("reject", "done", None, "not now"),
        ("approve", "refused", None, "CHG-1 signed off"),
        ("restart", "done", None, None),
        ("trigger", "done", None, None),
        ("resume", "done", None, None),
        ("trigger", "refused", None, None),
        ("pause", "done", None, None),
        ("provision", "done", "E00000", None),
    ]
    assert {(e["actor_kind"], e["actor_name"], e["address"], e["job"]) for e in trail["records"]} == {
        ("service_account", "admin", "127.0.0.1", "people")
    }
    assert trail["records"][3]["reason"] == "nothing is waiting for approval"
    assert trail["records"][7]["reason"] == "the job is paused: resume it first"
    assert all(trail["records"][i]["at"] >= trail["records"][i + 1]["at"] for i in range(9))
    status, narrowed = await call("GET", "/audit?action=trigger&limit=1")
    assert [(e["action"], e["outcome"]) for e in narrowed["records"]] == [("trigger", "done")]
    first = trail["records"][-1]["at"]
    status, early = await call("GET", f"/audit?until={first + 1e-6}&actor=admin&job=people")
    assert [e["action"] for e in early["records"]] == ["provision"]
    assert (await call("GET", "/audit?actor=nobody"))[1] == {"records": []}
    assert sorted(_operations(served.document)) == sorted(
        [
            ("GET", p)
            for p in ("/healthz", "/openapi.json", "/agents", "/jobs", "/jobs/{job}", "/jobs/{job}/cycles")
        ]
        + [("GET", p) for p in ("/jobs/{job}/preview/{source_id}", "/logs", "/logs/export", "/audit")]
        + [("POST", f"/jobs/{{job}}/{verb}") for verb in ("cycles", "provision", "pause", "resume")]
        + [
            ("POST", f"/jobs/{{job}}/{verb}")
            for verb in ("restart", "reset", "approve", "reject", "reconcile")
        ]
    ), "a route is not exercised above"


async def test_every_route_but_healthz_answers_401_without_the_right_token(served: Served) -> None:
    operations = _operations(served.document)
    assert len(operations) == 19
    for method, path in operations:
        for token in (None, "wrong", TOKEN[:-1], TOKEN + "x", ""):
            status, body = await served.call(method, _filled(path), token=token)
            if path == "/healthz":
                assert status == 200
                continue
            assert status == 401, f"{method} {path} with token {token!r} answered {status}"
            assert body["error"] == "unauthorized" and "token" in body["detail"]
            assert TOKEN not in str(body)
        async with served.session.request(
            method, served.url + _filled(path), headers={"Authorization": f"Basic {TOKEN}"}
        ) as answer:
            assert answer.status == (200 if path == "/healthz" else 401)
            if answer.status == 401:
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_each_account_may_do_what_its_roles_allow_and_a_refusal_is_recorded(served: Served) -> None:
    may = {
        "grafana": lambda method, path: method == "GET",
        "oncall": lambda method, path: method == "GET" or not path.endswith(("/approve", "/reject")),
        "cab": lambda method, path: path.endswith(("/approve", "/reject")),
    }
    refused = []
    for account in ACCOUNTS:
        for method, path in _operations(served.document):
            if path == "/healthz" or (method, path) == ("POST", "/jobs/{job}/provision"):
                continue  # public; provision is checked with a body below
            if method == "POST" and may[account.name](method, path):
                continue  # allowed, and done by the test above: here only the refusals act
            status, body = await served.call(method, _filled(path), token=account.token)
            if may[account.name](method, path):
                assert status != 403, (account.name, method, path, body)
                continue
            assert status == 403, (account.name, method, path, status, body)
            needed = (
                "viewer"
                if method == "GET"
                else "approver"
                if "/app" in path or "/rej" in path
                else "operator"
            )
            assert body == {
                "error": "forbidden",
                "detail": f"{method} {path} needs the role {needed}; the account {account.name!r} has: "
                + ", ".join(account.role_names),
                "role": needed,
                "account": account.name,
                "roles": account.role_names,
            }
            if method == "POST":
                refused.append((account.name, path.rsplit("/", 1)[-1]))
    status, body = await served.call(
        "POST", "/jobs/people/provision", token=ACCOUNTS[0].token, json={"source_id": "E00001"}
    )
    assert (status, body["role"]) == (403, "operator")
    refused.append(("grafana", "provision"))

    status, trail = await served.call("GET", "/audit?limit=1000", token=ACCOUNTS[0].token)
    assert status == 200
    recorded = [(e["actor_name"], e["action"], e["outcome"]) for e in trail["records"]][::-1]
    actions = {"cycles": "trigger"}
    assert recorded == [(name, actions.get(verb, verb), "refused") for name, verb in refused]
    assert all(
        e["reason"].startswith(("POST", "GET")) and "needs the role" in e["reason"] for e in trail["records"]
    )
    assert (await served.call("GET", "/jobs/people"))[1]["state"] == "active"  # nothing refused was done
    text = str(trail)
    assert not any(token in text for token in (TOKEN, *(a.token for a in ACCOUNTS)))

    status, done = await served.call("POST", "/jobs/people/pause", token=ACCOUNTS[1].token)
    assert (status, done["state"]) == (200, "paused")
    status, latest = await served.call("GET", "/audit?limit=1", token=ACCOUNTS[1].token)
    assert [(e["actor_name"], e["action"], e["outcome"]) for e in latest["records"]] == [
        ("oncall", "pause", "done")
    ]


async def test_a_comment_must_be_text_and_the_body_may_hold_nothing_else(served: Served) -> None:
    for body, named in (
        (b'{"comment": 7}', "comment: a non-empty string when given"),
        (b'{"comment": "   "}', "comment: a non-empty string when given"),
        (b'{"comment": "ok", "why": "x"}', "why: unknown field"),
        (b'{"comment": "' + b"x" * 2001 + b'"}', "comment: at most 2000 characters"),
        (b"[1]", "expected a JSON object"),
    ):
        status, answer = await served.call("POST", "/jobs/people/pause", data=body)
        assert (status, answer["error"]) in ((400, "invalid_body"), (400, "invalid_json")), answer
        assert named in answer["detail"], answer
    assert (await served.call("GET", "/jobs/people"))[1]["state"] == "active"
    assert (await served.call("GET", "/audit"))[1] == {"records": []}  # a bad request did nothing


async def test_bad_input_gets_a_4xx_that_names_the_problem(served: Served) -> None:
    call = served.call
    for body, named in (
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"", "a JSON object is required"),
        (b'{"source_id": 7}', "source_id: required, a non-empty string"),
        (b'{"source_id": "E00001", "extra": 1}', "extra: unknown field"),
    ):
        status, answer = await call("POST", "/jobs/people/provision", data=body)
        assert (status, answer["error"]) in ((400, "invalid_json"), (400, "invalid_body")), answer
        assert named in answer["detail"]
    for query, named in (
        ("/jobs/people/cycles?limit=ten", "limit: expected a whole number, got 'ten'"),
        ("/jobs/people/cycles?limit=-1", "limit: must be at least 1"),
        ("/logs?limit=0", "limit: must be at least 1 and at most 10000, got 0"),
        ("/logs?after_id=1.5", "after_id: expected a whole number"),
        ("/logs?after_id=99999999999999999999999", "after_id: must be at least 0 and at most"),
        ("/logs?since=yesterday", "since: expected Unix seconds"),
        ("/logs?cursor=abc", "cursor: 'abc' is not a cursor"),
        ("/logs?cursor=1~99999999999999999999999", "is not a cursor"),
        ("/logs?until=-5", "until: must be a finite number"),
        ("/logs?since=nan", "since: must be a finite number"),
        ("/logs?status=sucess", "status: 'sucess' is not one of deprovisioned, drifted, failed"),
        ("/logs?action=", "action: must not be empty"),
        ("/logs?limt=5", "limt: unknown query parameter"),
        ("/logs?limit=1&limit=2", "limit: given more than once"),
        ("/logs/export?format=xml", "format: 'xml' is not one of csv, jsonl"),
        ("/jobs?verbose=1", "verbose: unknown query parameter (known: none)"),
    ):
        status, answer = await call("GET", query)
        assert (status, answer["error"]) == (400, "invalid_parameter"), (query, answer)
        assert named in answer["detail"], (query, answer["detail"])
    for method, path in _operations(served.document):
        if "{job}" in path:
            status, answer = await call(method, _filled(path, job="nobody"), json={"source_id": "E00001"})
            assert (status, answer["error"]) == (404, "unknown_job"), (method, path, answer)
            assert answer["detail"] == "no job named 'nobody' (jobs: people)"
    for path in ("/logs?job=nobody", "/logs/export?job=nobody"):
        assert (await call("GET", path))[0] == 404
    status, answer = await call("POST", "/jobs/people/provision", json={"source_id": "E99999"})
    assert (status, answer["error"]) == (404, "unknown_object") and "E99999" in answer["detail"]
    assert (await call("GET", "/nowhere"))[1]["error"] == "not_found"
    async with served.session.delete(served.url + "/jobs", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert (r.status, r.headers["Allow"], (await r.json())["error"]) == (405, "GET", "method_not_allowed")


async def test_the_pruner_keeps_the_log_within_its_retention(served: Served) -> None:
    state = served.pipeline.state
    old = {"job": "people", "action": "create", "status": "succeeded", "at": time.time() - 31 * 86_400}
    async with state.engine.begin() as conn:
        await conn.execute(log.insert(), [old])
    async with operated(Admin(served.pipeline.runner), None, retention_days=30):
        for _ in range(100):
            async with state.engine.connect() as conn:
                oldest = (await conn.execute(sa.select(sa.func.min(log.c.at)))).scalar_one()
            if oldest > time.time() - 30 * 86_400:
                break
            await asyncio.sleep(0.02)
    status, page = await served.call("GET", "/logs?job=people")
    assert status == 200 and len(page["records"]) == PEOPLE  # the cycle's records stay, the old one went


async def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(
    served: Served, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{served.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance,ignored_auth",
        "--max-examples",
        "8",
        "--seed",
        "20240601",
        "--no-color",
        "--output-truncate",
        "false",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 90)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    # Every operation but GET /openapi.json, which schemathesis leaves out as the schema itself.
    assert re.search(r"\b18 selected / 18 total\b", text), text[-2000:]
    assert TOKEN not in text
