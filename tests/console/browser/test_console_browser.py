"""The console in a real browser, against a real embedded engine (CSV source, SQLite target) whose API
serves it, signing people in through a real OpenID Connect provider (glewlwyd): Ada (an administrator:
viewer, operator, approver) signs in with her password on the provider's page, starts a cycle and
watches it progress and finish, finds a person, provisions one on demand after the diff, and approves
held deletions with a comment; Grace (a viewer) sees no button and is refused when she posts a form
anyway; a wrong password signs nobody in. Each outcome is checked in the target's rows and the audit
trail, and every page visited passes axe-core at a desktop and a phone width with nothing serious.

The tests share one engine (module scope) and run in order; each signs in afresh in a page of its own.
With ROSTER_CONSOLE_SCREENSHOTS=1, the pages' screenshots are written to docs/screenshots/ (README's
"Console" section shows them); otherwise to a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from engine.api.accounts import Role
from engine.api.console.settings import OidcSettings
from tests.console.browser.accessibility import DESKTOP, Accessibility
from tests.console.browser.conftest import CONSOLE_CALLBACK_PATH
from tests.console.browser.engine_thread import Engine, running_engine
from tests.integration.pipeline import job_config, person, sql_target, write_csv
from tests.oidc import SCOPE, Provider, User, open_login

PEOPLE = 30
TOKEN = "browser-test-token-" + secrets.token_hex(8)
ROLES: dict[str, frozenset[Role]] = {
    "roster-admins": frozenset({"viewer", "operator", "approver"}),
    "roster-viewers": frozenset({"viewer"}),
}
DOCS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
STALL_S = 0.8  # each batch of a watched cycle: six batches, so about five seconds of progress
LIVE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: Provider, console_port: int
) -> Iterator[Engine]:
    tmp_path = tmp_path_factory.mktemp("console-engine")
    raw = {
        **job_config(tmp_path, batch_size=5, deletion_guard={"count": 5, "percent": 10}),
        **sql_target(f"sqlite:///{tmp_path / 'target.db'}", max_inflight=1),
    }
    oidc = OidcSettings(
        issuer=oidc_provider.issuer,
        client_id=oidc_provider.client.client_id,
        client_secret=oidc_provider.client.secret,
        redirect_url=f"http://127.0.0.1:{console_port}{CONSOLE_CALLBACK_PATH}",
        scopes=("openid", SCOPE),
        roles=ROLES,
    )
    source(tmp_path / "people.csv", range(PEOPLE))
    with running_engine(tmp_path, raw, port=console_port, token=TOKEN, oidc=oidc) as running:
        yield running


@pytest.fixture(scope="module")
def a11y() -> Iterator[Accessibility]:
    checks = Accessibility()
    yield checks
    for violation in checks.minor():
        print(f"axe (not failing): {violation}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("ROSTER_CONSOLE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path_factory.mktemp("screenshots")


def source(path: Path, ids: range, **departments: str) -> None:
    """The CSV holds people `ids`, with the departments given by source id changed."""
    rows = [person(i) for i in ids]
    for row in rows:
        row["department"] = departments.get(row["employee_id"], row["department"])
    write_csv(path, rows)


def looked_at(
    page: Page, a11y: Accessibility, name: str, shots: Path | None = None, *, showing: Locator | None = None
) -> None:
    """axe finds nothing serious on the page as it is (desktop and phone); a screenshot of its viewport
    at 1280 px when `shots` is given, scrolled to `showing` if given."""
    serious = a11y.check(page, name)
    assert not serious, "\n".join(map(str, serious))
    if shots is not None:
        page.set_viewport_size(DESKTOP)
        if showing is not None:
            showing.scroll_into_view_if_needed()
        page.screenshot(path=shots / f"console-{name}.png")


def sign_in(page: Page, engine: Engine, user: User, path: str = "/ui/") -> None:
    """Through the console's sign-in page and the provider's own login page, back at `path`."""
    page.goto(engine.url + path)
    page.get_by_role("link", name="Sign in").click()
    page.locator("#username").fill(user.username)
    page.locator("#password").fill(user.password)
    with page.expect_response(lambda r: "/api/auth/" in r.url and r.request.method == "POST") as answer:
        page.locator("#loginbut").click()
    assert answer.value.status == 200, f"the provider refused {user.username}'s password"
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(engine.url + path)


def audit(engine: Engine, **query: str) -> list[dict[str, Any]]:
    """The audit trail's entries, newest first, as `GET /audit` answers with the API token."""
    url = f"{engine.url}/audit?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        found: list[dict[str, Any]] = json.load(answer)["records"]
        return found


def as_oidc_user(entry: dict[str, Any], provider: Provider, user: User) -> bool:
    return (entry["actor_kind"], entry["actor_name"], entry["actor_issuer"], entry["actor_subject"]) == (
        "oidc_user",
        user.name,
        provider.issuer,
        user.subject(),
    )


def test_ada_signs_in_at_the_provider_and_lands_on_the_overview(
    page: Page, engine: Engine, oidc_provider: Provider, a11y: Accessibility, shots: Path
) -> None:
    ada = oidc_provider.user("ada")
    page.goto(engine.url + "/ui/")
    assert page.url.startswith(engine.url + "/ui/signin")
    looked_at(page, a11y, "signin")
    sign_in(page, engine, ada)
    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    expect(page.locator("header")).to_contain_text("Ada Lovelace (approver, operator, viewer)")
    expect(page.get_by_role("row", name=re.compile(r"^people"))).to_contain_text("succeeded")
    looked_at(page, a11y, "overview", shots)
    [entry] = audit(engine, action="sign_in", actor="Ada Lovelace", limit="1")
    assert as_oidc_user(entry, oidc_provider, ada) and entry["outcome"] == "done"


def test_a_wrong_password_at_the_provider_signs_nobody_in(
    page: Page, engine: Engine, oidc_provider: Provider
) -> None:
    ada = oidc_provider.user("ada")
    signed_in = len(audit(engine, action="sign_in", actor=ada.name))
    page.goto(engine.url + "/ui/signin")
    login = page.get_by_role("link", name="Sign in").get_attribute("href")
    answer = open_login(page, f"{engine.url}{login}", ada.username, ada.password + "-wrong")
    assert answer.status == 401
    assert page.get_by_role("button", name="Continue").count() == 0
    page.goto(engine.url + "/ui/")
    assert page.url.startswith(engine.url + "/ui/signin")
    assert not [c for c in page.context.cookies() if c["name"] == "roster_console"]
    assert len(audit(engine, action="sign_in", actor=ada.name)) == signed_in


def test_a_cycle_started_from_the_job_page_shows_its_progress_live_and_finishes(
    page: Page, engine: Engine, oidc_provider: Provider, a11y: Accessibility, shots: Path
) -> None:
    source(engine.csv_path, range(PEOPLE), **{f"E{i:05d}": "Finance" for i in range(PEOPLE)})
    engine.stall(STALL_S)
    try:
        sign_in(page, engine, oidc_provider.user("ada"), "/ui/jobs/people")
        page.get_by_role("link", name="Run a cycle of people now").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Run a cycle of people now?")
        looked_at(page, a11y, "confirm")
        page.get_by_role("button", name="Run a cycle of people now").click()
        page.wait_for_url(engine.url + "/ui/jobs/people")
        expect(page.get_by_role("status").first).to_contain_text(re.compile("cycle started", re.I))
        live = page.locator("#running")
        # Every text the live part shows from now on, as console.js replaces it.
        page.evaluate(
            """() => { window.seen = [];
            new MutationObserver(() => window.seen.push(document.querySelector('#running').innerText))
              .observe(document.querySelector('#running'), {childList: true, subtree: true}); }"""
        )
        expect(live).to_contain_text("settled", timeout=LIVE_TIMEOUT_MS)
        expect(live.locator("progress")).to_be_visible()
        looked_at(page, a11y, "job", shots)
        expect(live).to_contain_text("No cycle is running", timeout=LIVE_TIMEOUT_MS)
    finally:
        engine.stall(0)
    seen: list[str] = page.evaluate("window.seen")
    settled = [int(m.group(1)) for text in seen if (m := re.search(r"settled (\d+)", text))]
    assert len(set(settled)) >= 2, f"the live part showed no progress while the cycle ran: {seen}"
    assert settled == sorted(settled) and max(settled) <= PEOPLE

    page.reload()
    [cycle] = engine.call(engine.admin.cycles("people", 1))
    row = page.get_by_role("row", name=re.compile(cycle.cycle_id))
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text(f"updated {PEOPLE}")
    row.get_by_role("link", name=cycle.cycle_id).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(cycle.cycle_id)
    expect(page.locator(".facts").first).to_contain_text("succeeded")
    expect(page.locator("#summary-heading + dl")).to_contain_text(re.compile(rf"updated\s*{PEOPLE}"))
    looked_at(page, a11y, "cycle", shots)
    assert {row["department"] for row in engine.rows().values()} == {"Finance"}
    [entry] = audit(engine, action="trigger", limit="1")
    assert as_oidc_user(entry, oidc_provider, oidc_provider.user("ada")) and entry["outcome"] == "done"


def test_a_persons_log_records_are_found_from_the_header_search(
    page: Page, engine: Engine, oidc_provider: Provider, a11y: Accessibility, shots: Path
) -> None:
    sign_in(page, engine, oidc_provider.user("ada"))
    page.get_by_role("searchbox", name="Find a person by source id").fill("E00003")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(engine.url + "/ui/people/E00003")
    expect(page.get_by_role("heading", level=1)).to_have_text("Person E00003")
    expect(page.locator("dd").first).to_contain_text("E00003 (")
    history = page.locator("h3:text('History') + .scroll tbody tr")
    cycles = {c.cycle_id for c in engine.call(engine.admin.cycles("people", 50))}
    shown = [
        (cells[1], cells[2], cells[3])
        for cells in (history.nth(i).locator("td").all_inner_texts() for i in range(history.count()))
    ]
    assert ("create", "succeeded") in {(action, status) for action, status, _ in shown}
    assert {cycle for _, _, cycle in shown} <= cycles
    looked_at(page, a11y, "person", shots)


def test_provisioning_on_demand_shows_the_diff_then_writes_the_target_row(
    page: Page, engine: Engine, oidc_provider: Provider, a11y: Accessibility, shots: Path
) -> None:
    before = engine.rows()["E00003"]["department"]
    source(engine.csv_path, range(PEOPLE), E00003="Legal")
    sign_in(page, engine, oidc_provider.user("ada"), "/ui/people/E00003")
    page.get_by_role("link", name="Preview people for E00003").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What people would do for E00003")
    expect(page.locator(".card").first).to_contain_text("update")
    change = page.get_by_role("row", name=re.compile(r"^department"))
    expect(change.locator("td")).to_have_text([before, "Legal"])
    looked_at(page, a11y, "preview", shots)
    assert engine.rows()["E00003"]["department"] == before  # a preview writes nothing

    page.get_by_role("button", name="Provision now").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("E00003 provisioned through people")
    expect(page.locator("tbody tr").first).to_contain_text("update")
    expect(page.locator("tbody tr").first).to_contain_text("succeeded")
    looked_at(page, a11y, "provisioned")
    assert engine.rows()["E00003"]["department"] == "Legal"
    [entry] = audit(engine, action="provision", limit="1")
    assert as_oidc_user(entry, oidc_provider, oidc_provider.user("ada"))
    assert (entry["job"], entry["object"], entry["outcome"]) == ("people", "E00003", "done")


def test_held_deletions_are_approved_only_with_a_comment_and_then_disabled(
    page: Page, engine: Engine, oidc_provider: Provider, a11y: Accessibility, shots: Path
) -> None:
    kept = 10
    source(engine.csv_path, range(kept))
    held = engine.run_cycle()
    assert held.staged == PEOPLE - kept
    sign_in(page, engine, oidc_provider.user("ada"))
    page.get_by_role("link", name="Approvals").click()
    expect(page.get_by_role("listitem").filter(has_text="people")).to_contain_text(f"{PEOPLE - kept} held")
    looked_at(page, a11y, "approvals")
    page.get_by_role("link", name="people", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(PEOPLE - kept)
    approve = page.get_by_role("button", name=f"Approve all {PEOPLE - kept}")
    comment = page.get_by_label("Comment")
    looked_at(page, a11y, "approval", shots, showing=approve)

    approve.click()  # no comment: the browser does not send the form
    assert comment.evaluate("e => e.validity.valueMissing") is True
    assert page.url.endswith("/ui/jobs/people/approval")
    comment.evaluate("e => { e.removeAttribute('required'); e.removeAttribute('minlength'); }")
    with page.expect_response(lambda r: r.url.endswith("/decide")) as refused:
        approve.click()  # the page's own form, sent without a comment after all
    assert refused.value.status == 400
    expect(page.get_by_role("alert")).to_contain_text("A comment is required")
    assert all(row["active"] for row in engine.rows().values())

    page.goto(engine.url + "/ui/jobs/people/approval")
    words = "leavers of November, ticket 4711"
    page.get_by_label("Comment").fill(words)
    page.get_by_role("button", name=f"Approve all {PEOPLE - kept}").click()
    page.wait_for_url(engine.url + "/ui/jobs/people")
    expect(page.get_by_role("status").first).to_contain_text(f"Approved {PEOPLE - kept} held operations")
    rows = engine.rows()
    for i in range(PEOPLE):
        assert rows[f"E{i:05d}"]["active"] == (1 if i < kept else 0), f"E{i:05d}"
    [entry] = audit(engine, action="approve", limit="1")
    assert as_oidc_user(entry, oidc_provider, oidc_provider.user("ada"))
    assert (entry["comment"], entry["outcome"], entry["job"]) == (words, "done", "people")
    [applied] = engine.call(engine.admin.cycles("people", 1))
    assert (entry["object"], applied.trigger) == (applied.cycle_id, "approval")


def test_a_viewer_sees_no_buttons_and_a_forged_approval_is_refused(
    page: Page, engine: Engine, oidc_provider: Provider, a11y: Accessibility
) -> None:
    source(engine.csv_path, range(4))
    assert engine.run_cycle().staged > 0
    waiting = engine.call(engine.admin.held("people"))
    rows_before = engine.rows()
    grace = oidc_provider.user("grace")
    sign_in(page, engine, grace)
    expect(page.locator("header")).to_contain_text("Grace Hopper (viewer)")
    looked_at(page, a11y, "overview-viewer")
    page.goto(engine.url + "/ui/jobs/people")
    expect(page.get_by_role("heading", name="Running now")).to_be_visible()
    for label in ("Run a cycle of people now", "Pause people", "Resume people", "Restart people"):
        assert page.get_by_role("link", name=label).count() == 0, label
    looked_at(page, a11y, "job-viewer")
    page.goto(engine.url + "/ui/jobs/people/approval")
    expect(page.get_by_text("Only an approver can approve or reject these.")).to_be_visible()
    assert page.get_by_role("button", name=re.compile("Approve|Reject")).count() == 0
    looked_at(page, a11y, "approval-viewer")
    page.goto(engine.url + "/ui/jobs/people/provision/E00001")
    expect(page.get_by_role("heading", level=1)).to_contain_text("E00001")
    assert page.get_by_role("button", name="Provision now").count() == 0

    # Ada's approval form, made in Grace's page with Grace's own session and CSRF token, and sent.
    page.goto(engine.url + "/ui/jobs/people/approval")
    with page.expect_response(lambda r: r.url.endswith("/decide")) as forged:
        page.evaluate(
            """() => {
            const form = document.createElement('form');
            form.method = 'post'; form.action = '/ui/jobs/people/decide';
            const fields = {csrf: document.querySelector('input[name=csrf]').value,
                            decision: 'approve', comment: 'I should not be able to'};
            for (const [name, value] of Object.entries(fields)) {
              const input = document.createElement('input');
              input.type = 'hidden'; input.name = name; input.value = value; form.append(input);
            }
            document.body.append(form); form.submit(); }"""
        )
    assert forged.value.status == 403
    expect(page.get_by_role("alert")).to_contain_text("needs the approver role")
    csrf = page.locator("input[name=csrf]").first.input_value()
    answer = page.request.post(engine.url + "/ui/jobs/people/provision/E00001", form={"csrf": csrf})
    assert answer.status == 403

    status = engine.call(engine.admin.status("people"))
    assert status.state == "waiting_for_approval"
    assert engine.call(engine.admin.held("people")) == waiting
    assert engine.rows() == rows_before
    refused = audit(engine, actor="Grace Hopper")
    assert sorted((e["action"], e["outcome"]) for e in refused if e["action"] != "sign_in") == [
        ("approve", "refused"),
        ("provision", "refused"),
    ]
    assert all(as_oidc_user(e, oidc_provider, grace) for e in refused)


def test_the_log_and_the_audit_trail_answer_who_did_what_in_the_browser(
    page: Page, engine: Engine, oidc_provider: Provider, a11y: Accessibility, shots: Path
) -> None:
    ada = oidc_provider.user("ada")
    sign_in(page, engine, ada, "/ui/logs")
    page.get_by_label("Person", exact=True).fill("user3@example.org")
    page.get_by_role("button", name="Search").click()
    records = page.locator("ol.records > li")
    expect(records.first).to_contain_text("E00003")
    assert all("E00003" in text for text in records.all_inner_texts())
    records.first.locator("summary").click()
    expect(records.first.get_by_role("table")).to_contain_text("user3@example.org")  # the attributes sent
    looked_at(page, a11y, "logs", shots, showing=records.first)

    page.get_by_role("link", name="Audit").click()
    page.wait_for_url(engine.url + "/ui/audit")
    rows = page.locator("table tbody tr")
    texts = rows.all_inner_texts()
    for action in ("trigger", "provision", "approve", "sign in"):
        assert any(action in text and "Ada Lovelace" in text and "sub-ada" in text for text in texts), action
    assert any("approve" in text and "Grace Hopper" in text and "refused" in text for text in texts)
    page.get_by_label("Who", exact=True).fill("Grace Hopper")
    page.get_by_role("button", name="Search").click()
    assert all("Grace Hopper" in text for text in rows.all_inner_texts())
    looked_at(page, a11y, "audit", shots)
