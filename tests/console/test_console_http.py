"""The console over HTTP against a real embedded engine (CSV source, SQLite target): sign-in, sessions,
CSRF, roles and the pages' actions, checked against the engine's state and the target's rows. (The
browser tests drive the same pages in Chromium.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from common.errors import PermanentError
from engine.api.admin import Admin
from engine.api.console.app import console_app
from engine.api.console.sessions import COOKIE, VIEWER, Person, Sessions
from engine.api.console.signin import TokenSignIn, local_path
from engine.api.server import ApiServer, ApiSettings, operated
from engine.cli.embedded import Embedded
from engine.store.audit import AuditFilter
from tests.integration.pipeline import (
    FaultInjector,
    job_config,
    person,
    pipeline,
    sql_target,
    target_rows,
    write_csv,
)

TOKEN = "console-test-token-0123456789"
PEOPLE = 30
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    url: str
    pipeline: Embedded
    admin: Admin
    tmp_path: Path

    def client(self) -> aiohttp.ClientSession:
        """A browser of its own: cookies kept per client, redirects not followed unless asked."""
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def signed_in(self, client: aiohttp.ClientSession, token: str = TOKEN) -> None:
        async with client.post(f"{self.url}/ui/signin", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303, await r.text()

    async def page(self, client: aiohttp.ClientSession, path: str) -> tuple[int, str]:
        async with client.get(self.url + path, allow_redirects=False) as answer:
            return answer.status, await answer.text()

    async def csrf(self, client: aiohttp.ClientSession, path: str = "/ui/") -> str:
        status, html = await self.page(client, path)
        assert status == 200, html
        found = CSRF.search(html)
        assert found is not None
        return found.group(1)

    async def post(self, client: aiohttp.ClientSession, path: str, **form: str) -> tuple[int, str, str]:
        async with client.post(self.url + path, data=form, allow_redirects=False) as answer:
            return answer.status, answer.headers.get("Location", ""), await answer.text()


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(PEOPLE)])
    raw = {
        **job_config(tmp_path, deletion_guard={"count": 5, "percent": 10}),
        **sql_target(f"sqlite:///{tmp_path / 'target.db'}"),
    }
    async with pipeline(tmp_path, raw) as p:
        await p.runner.run_cycle(p.runner.config.job("people"))
        admin = Admin(p.runner)
        async with operated(admin, ApiSettings(port=0, token=TOKEN), retention_days=30) as server:
            assert isinstance(server, ApiServer)
            yield Console(server.url, p, admin, tmp_path)


async def test_pages_want_a_session_and_signing_in_takes_the_api_token(console: Console) -> None:
    async with console.client() as client:
        assert (await console.page(client, "/ui"))[0] == 308
        async with client.get(f"{console.url}/ui/jobs/people", allow_redirects=False) as answer:
            assert answer.status == 303
            assert answer.headers["Location"] == "/ui/signin?next=/ui/jobs/people"
        async with client.post(f"{console.url}/ui/signin", data={"token": "wrong-token"}) as answer:
            assert answer.status == 401 and "not an API token" in await answer.text()
        assert not [c for c in client.cookie_jar if c.key == COOKIE]

        form = {"token": TOKEN, "next": "/ui/jobs/people"}
        async with client.post(f"{console.url}/ui/signin", data=form, allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/ui/jobs/people"
            cookie = answer.cookies[COOKIE]
            assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/ui"
        status, html = await console.page(client, "/ui/")
        assert status == 200 and "people" in html and "state-active" in html and "admin" in html
        status, html = await console.page(client, "/ui/jobs/people")
        assert status == 200 and "Pause people" in html and "succeeded" in html


async def test_every_page_carries_headers_that_keep_it_out_of_frames_and_caches(console: Console) -> None:
    async with console.client() as client:
        await console.signed_in(client)
        for path in ("/ui/", "/ui/jobs/people", "/ui/approvals", "/ui/signin"):
            async with client.get(console.url + path, allow_redirects=False) as answer:
                assert answer.status == 200, path
                assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
                assert answer.headers["X-Frame-Options"] == "DENY"
                assert answer.headers["Cache-Control"] == "no-store"


async def test_a_state_change_needs_the_sessions_csrf_token_and_the_consoles_origin(console: Console) -> None:
    async with console.client() as client:
        await console.signed_in(client)
        csrf = await console.csrf(client, "/ui/jobs/people/pause")

        assert (await console.post(client, "/ui/jobs/people/pause"))[0] == 403
        assert (await console.post(client, "/ui/jobs/people/pause", csrf="forged"))[0] == 403
        async with client.post(
            f"{console.url}/ui/jobs/people/pause",
            data={"csrf": csrf},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 403
        assert (await console.admin.status("people")).state == "active"

        status, location, _ = await console.post(client, "/ui/jobs/people/pause", csrf=csrf)
        assert (status, location) == (303, "/ui/jobs/people")
        assert (await console.admin.status("people")).state == "paused"
        status, html = await console.page(client, "/ui/jobs/people")
        assert "Paused people." in html and "Resume people" in html


async def test_a_cookie_from_before_sign_in_or_after_sign_out_is_never_a_session(console: Console) -> None:
    async with console.client() as attacker:
        await console.signed_in(attacker)
        [planted] = [c.value for c in attacker.cookie_jar if c.key == COOKIE]
        csrf = await console.csrf(attacker)
        assert (await console.post(attacker, "/ui/signout", csrf=csrf))[0] == 303
        assert (await console.page(attacker, "/ui/"))[0] == 303  # ended: back to the sign-in

    async with console.client() as victim:
        victim.cookie_jar.update_cookies({COOKIE: planted})  # a cookie fixed on the victim beforehand
        assert (await console.page(victim, "/ui/"))[0] == 303
        victim.cookie_jar.update_cookies({COOKIE: "made-up.value"})
        assert (await console.page(victim, "/ui/"))[0] == 303
        await console.signed_in(victim)
        [fresh] = [c.value for c in victim.cookie_jar if c.key == COOKIE and c["path"] == "/ui"]
        assert fresh not in (planted, "made-up.value")  # the planted one is still sent, and ignored
        assert (await console.page(victim, "/ui/"))[0] == 200


async def test_held_deletions_are_listed_and_approved_with_a_comment(console: Console) -> None:
    write_csv(console.tmp_path / "people.csv", [person(i) for i in range(10)])
    held = await console.pipeline.runner.run_cycle(console.pipeline.runner.config.job("people"))
    assert held.staged == PEOPLE - 10
    async with console.client() as client:
        await console.signed_in(client)
        status, html = await console.page(client, "/ui/approvals")
        assert status == 200 and f"{PEOPLE - 10} held" in html
        status, html = await console.page(client, "/ui/jobs/people/approval")
        assert status == 200 and all(f"E{i:05d}" in html for i in range(10, PEOPLE))
        csrf = CSRF.search(html).group(1)  # type: ignore[union-attr]

        status, _, html = await console.post(client, "/ui/jobs/people/decide", csrf=csrf, decision="approve")
        assert status == 400 and "comment is required" in html
        rows = await target_rows(f"sqlite:///{console.tmp_path / 'target.db'}")
        assert all(row["active"] for row in rows.values())

        form = {"csrf": csrf, "decision": "approve", "comment": "leavers of November, ticket 4711"}
        status, location, _ = await console.post(client, "/ui/jobs/people/decide", **form)
        assert (status, location) == (303, "/ui/jobs/people")
        assert f"Approved {PEOPLE - 10} held operations" in (await console.page(client, location))[1]
    [entry] = await console.admin.audit(AuditFilter(action="approve"))
    assert (entry.actor_name, entry.outcome, entry.comment) == ("admin", "done", form["comment"])
    [approval] = await console.admin.cycles("people", 1)
    assert (entry.object, approval.trigger) == (approval.cycle_id, "approval")  # the cycle that applied them
    rows = await target_rows(f"sqlite:///{console.tmp_path / 'target.db'}")
    assert {k for k, row in rows.items() if not row["active"]} == {f"E{i:05d}" for i in range(10, PEOPLE)}


async def test_a_viewer_sees_no_buttons_and_is_refused_when_posting_anyway(console: Console) -> None:
    viewer = Person(name="helpdesk", kind="service_account", roles=frozenset({VIEWER}))
    sign_in = TokenSignIn(lambda token: viewer if token == "view" else None)
    write_csv(console.tmp_path / "people.csv", [person(i) for i in range(10)])
    await console.pipeline.runner.run_cycle(console.pipeline.runner.config.job("people"))
    async with served_console(console.admin, sign_in) as url:
        as_viewer = Console(url, console.pipeline, console.admin, console.tmp_path)
        async with as_viewer.client() as client:
            await as_viewer.signed_in(client, "view")
            status, html = await as_viewer.page(client, "/ui/jobs/people")
            assert status == 200 and "Pause people" not in html and "Run a cycle" not in html
            status, html = await as_viewer.page(client, "/ui/jobs/people/approval")
            assert status == 200 and "Approve all" not in html and "Only an approver" in html
            csrf = CSRF.search(html).group(1)  # type: ignore[union-attr]
            form = {"csrf": csrf, "decision": "approve", "comment": "I should not be able to"}
            assert (await as_viewer.post(client, "/ui/jobs/people/decide", **form))[0] == 403
            assert (await as_viewer.post(client, "/ui/jobs/people/pause", csrf=csrf))[0] == 403
            assert (await as_viewer.page(client, "/ui/jobs/people/pause"))[0] == 403
            status, html = await as_viewer.page(client, "/ui/jobs/people/provision/E00001")
            assert status == 200 and "Provision now" not in html
            assert (await as_viewer.post(client, "/ui/jobs/people/provision/E00001", csrf=csrf))[0] == 403
    status = await console.admin.status("people")
    assert status.state == "waiting_for_approval" and not status.paused
    refused = await console.admin.audit(AuditFilter(actor="helpdesk"))
    assert sorted((e.action, e.outcome) for e in refused) == [
        ("approve", "refused"),
        ("pause", "refused"),
        ("provision", "refused"),
    ]
    assert all("needs the" in (e.reason or "") for e in refused)


async def test_a_cycles_page_groups_its_failures_by_error(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(PEOPLE)])
    raw = {**job_config(tmp_path, batch_size=10), **sql_target(f"sqlite:///{tmp_path / 'target.db'}")}
    refusal = PermanentError("the target refused the row: email is not unique", code="23505")

    def failing(connector: Any) -> FaultInjector:
        return FaultInjector(connector, failures=1, error=refusal)

    admin_person = Person(name="admin", kind="service_account", roles=frozenset({VIEWER}))
    async with pipeline(tmp_path, raw, wrap=failing) as p:
        summary = await p.runner.run_cycle(p.runner.config.job("people"))
        assert 0 < summary.failed < PEOPLE
        async with served_console(Admin(p.runner), TokenSignIn(lambda _: admin_person)) as url:
            console = Console(url, p, Admin(p.runner), tmp_path)
            async with console.client() as client:
                await console.signed_in(client, "any")
                status, html = await console.page(client, "/ui/jobs/people")
                assert f"/ui/jobs/people/cycles/{summary.cycle_id}" in html
                status, html = await console.page(client, f"/ui/jobs/people/cycles/{summary.cycle_id}")
                assert status == 200 and "email is not unique" in html and "23505" in html
                assert f"<td>{summary.failed}</td>" in html
                assert (await console.page(client, "/ui/jobs/people/cycles/no-such-cycle"))[0] == 404


@asynccontextmanager
async def served_console(admin: Admin, sign_in: TokenSignIn) -> AsyncIterator[str]:
    """The console alone on a free port of 127.0.0.1, with a sign-in of the test's choosing."""
    root = web.Application()
    root.add_subapp("/ui", console_app(admin, sign_in))
    runner = web.AppRunner(root)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield "http://{}:{}".format(*runner.addresses[0][:2])
    finally:
        await runner.cleanup()


def test_a_session_ends_when_idle_or_old_whatever_its_cookie_says() -> None:
    now = [1000.0]
    sessions = Sessions(idle_timeout_s=60, max_age_s=300, clock=lambda: now[0])
    someone = Person(name="a", kind="service_account", roles=frozenset({VIEWER}))
    _, cookie = sessions.start(someone)
    now[0] += 59
    assert sessions.find(cookie) is not None
    now[0] += 59  # used 59 s ago: still alive
    assert sessions.find(cookie) is not None
    now[0] += 61
    assert sessions.find(cookie) is None and len(sessions) == 0

    _, cookie = sessions.start(someone)
    for _ in range(7):  # used every 50 s, yet ends five minutes after sign-in
        now[0] += 50
        found = sessions.find(cookie)
    assert found is None
    sid, _, signature = cookie.partition(".")
    assert sessions.find(f"{sid}.{'0' * len(signature)}") is None


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/ui/jobs/people", "/ui/jobs/people"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("/logs", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_a_sign_in_only_ever_sends_people_to_a_console_page(given: str | None, kept: str) -> None:
    assert local_path(given) == kept


async def test_a_persons_page_answers_the_help_desk_and_provisions_on_demand_after_the_diff(
    console: Console,
) -> None:
    rows = [person(i, **({"department": "Legal"} if i == 3 else {})) for i in range(PEOPLE)]
    write_csv(console.tmp_path / "people.csv", rows)
    target = f"sqlite:///{console.tmp_path / 'target.db'}"
    async with console.client() as client:
        await console.signed_in(client)
        async with client.get(f"{console.url}/ui/people", params={"id": "E00003"}) as answer:
            assert answer.status == 200 and str(answer.url).endswith("/ui/people/E00003")
            html = await answer.text()
        assert "In job" in html and "<td>create</td>" in html and "status-succeeded" in html
        status, html = await console.page(client, "/ui/people/NOBODY")
        assert status == 200 and "No job has linked or logged" in html

        status, html = await console.page(client, "/ui/jobs/people/provision/E00003")
        assert status == 200 and "update" in html and "Legal" in html and "Provision now" in html
        assert (await target_rows(target))["E00003"]["department"] != "Legal"  # a preview changes nothing

        assert (await console.post(client, "/ui/jobs/people/provision/E00003"))[0] == 403
        csrf = CSRF.search(html).group(1)  # type: ignore[union-attr]
        status, _, html = await console.post(client, "/ui/jobs/people/provision/E00003", csrf=csrf)
        assert status == 200 and "succeeded" in html
    assert (await target_rows(target))["E00003"]["department"] == "Legal"
    [entry] = await console.admin.audit(AuditFilter(action="provision"))
    assert (entry.actor_kind, entry.actor_name, entry.address) == ("service_account", "admin", "127.0.0.1")
    assert (entry.job, entry.object, entry.outcome) == ("people", "E00003", "done")


async def test_the_log_page_finds_a_persons_records_pages_them_and_exports_what_matches(
    console: Console,
) -> None:
    async with console.client() as client:
        await console.signed_in(client)
        status, html = await console.page(client, "/ui/logs?person=user7%40example.org")
        assert status == 200 and html.count("<details>") == 1 and "E00007" in html
        assert "Attributes sent" in html and "user7@example.org" in html  # the record expands to them

        status, html = await console.page(client, "/ui/logs?job=people&action=create&status=succeeded")
        assert html.count("<details>") == 30 and "Older records" not in html  # all 30 fit a page

        write_csv(console.tmp_path / "people.csv", [person(i, department="Legal") for i in range(PEOPLE)])
        await console.pipeline.runner.run_cycle(console.pipeline.runner.config.job("people"))  # 30 updates
        status, html = await console.page(client, "/ui/logs?job=people")
        assert html.count("<details>") == 50 and "Older records" in html
        following = re.search(r'href="/ui/logs\?([^"]+)">Older records', html)
        assert following is not None
        status, html = await console.page(client, "/ui/logs?" + following.group(1).replace("&amp;", "&"))
        assert status == 200 and html.count("<details>") == 2 * PEOPLE - 50 and "Older records" not in html
        assert html.count(">create</strong>") == 2 * PEOPLE - 50  # the oldest: the first cycle's creates

        async with client.get(f"{console.url}/ui/logs/export?person=E00007&format=csv") as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/csv")
            lines = (await answer.text()).strip().splitlines()
        assert lines[0].startswith("id,") and len(lines) > 1 and all("E00007" in line for line in lines[1:])

        status, html = await console.page(client, "/ui/logs?since=yesterday")
        assert status == 200 and "From: &#39;yesterday&#39; is not a date" in html
        status, html = await console.page(client, "/ui/logs?status=exploded")
        assert "Status: &#39;exploded&#39; is not one of" in html


async def test_the_audit_page_shows_who_did_what_newest_first(console: Console) -> None:
    async with console.client() as client:
        await console.signed_in(client)
        csrf = await console.csrf(client, "/ui/jobs/people/pause")
        await console.post(client, "/ui/jobs/people/pause", csrf=csrf)
        await console.post(client, "/ui/jobs/people/resume", csrf=csrf)
        status, html = await console.page(client, "/ui/audit")
        assert status == 200 and html.index("resume") < html.index("pause")  # newest first
        assert html.count("admin <small>(service account)") == 2 and "127.0.0.1" in html
        status, html = await console.page(client, "/ui/audit?action=pause")
        assert html.count("<td>pause</td>") == 1 and "<td>resume</td>" not in html
