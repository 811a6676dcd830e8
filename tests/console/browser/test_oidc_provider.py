"""The console's sign-in can be tested for real: a browser signs in through a real OpenID Connect provider
(glewlwyd) to a relying party that validates the ID token (tests/console/browser/relying_party.py, standing in
for the console until it exists), and the token carries what a role mapping needs. A wrong password
signs nobody in, nor does a request without PKCE; the provider starts and stops within the budget and
leaves nothing behind."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from tests import needs
from tests.console.browser.conftest import USERS
from tests.console.browser.relying_party import RelyingParty, make_app, serving
from tests.oidc import Client, Provider, User, make_provider, open_login, sign_in

START_BUDGET_S = {"provider": 5.0, "browser": 15.0}


@pytest.fixture(scope="module")
def relying_party(oidc_provider: Provider, console_port: int) -> Iterator[tuple[RelyingParty, str]]:
    rp = RelyingParty(
        discovery_url=oidc_provider.discovery_url,
        client_id=oidc_provider.client.client_id,
        client_secret=oidc_provider.client.secret,
        redirect_uri=oidc_provider.client.redirect_uris[0],
    )
    with serving(make_app(rp), console_port) as url:
        yield rp, url


def _claims(page: Page) -> dict[str, object]:
    claims: dict[str, object] = json.loads(page.locator("#claims").inner_text())
    return claims


@pytest.mark.parametrize("user", USERS, ids=[user.username for user in USERS])
def test_a_user_signs_in_through_the_provider_and_the_app_gets_a_validated_id_token(
    user: User, page: Page, relying_party: tuple[RelyingParty, str], oidc_provider: Provider
) -> None:
    rp, url = relying_party
    sign_in(page, f"{url}/", user.username, user.password)
    page.wait_for_url(f"{url}/**")  # back at the app: signed in, or its callback saying why not
    assert not rp.failures and page.url == f"{url}/", page.inner_text("body")
    claims = _claims(page)
    assert claims["iss"] == oidc_provider.issuer and claims["aud"] == oidc_provider.client.client_id
    assert claims["sub"] == user.subject() and claims["preferred_username"] == user.username
    assert claims["name"] == user.name and claims["email"] == user.email
    assert claims["groups"] == list(user.groups)
    assert claims["amr"] == ["password"]


def test_a_wrong_password_signs_nobody_in(page: Page, relying_party: tuple[RelyingParty, str]) -> None:
    rp, url = relying_party
    sessions = len(rp.sessions)
    answer = open_login(page, f"{url}/", USERS[0].username, USERS[0].password + "-wrong")
    assert answer.status == 401
    assert page.get_by_role("button", name="Continue").count() == 0
    assert "/login.html" in page.url and page.locator("#password").is_visible()
    page.goto(f"{url}/")  # still not signed in: the app sends the browser to the provider again
    page.locator("#username").wait_for()
    assert len(rp.sessions) == sessions and page.locator("#claims").count() == 0


def test_the_browser_reaches_only_loopback(page: Page, relying_party: tuple[RelyingParty, str]) -> None:
    _, url = relying_party
    page.goto(f"{url}/")  # a real page first, so a failure below is the guard's
    for elsewhere in ("http://192.0.2.1/", "http://example.com/"):
        with pytest.raises(PlaywrightError, match=r"ERR_BLOCKED_BY_CLIENT|ERR_NAME_NOT_RESOLVED"):
            page.goto(elsewhere, timeout=5_000)


def test_the_peers_start_within_budget(
    oidc_provider: Provider, page: Page, startup_s: dict[str, float]
) -> None:
    # pytest -rP shows it
    print("start-up:", ", ".join(f"{name} {seconds:.2f} s" for name, seconds in startup_s.items()))
    assert set(startup_s) == set(START_BUDGET_S)
    slow = {name: seconds for name, seconds in startup_s.items() if seconds > START_BUDGET_S[name]}
    assert not slow, f"started slower than {START_BUDGET_S}: {startup_s}"


def test_a_provider_stops_cleanly_and_leaves_nothing_behind(tmp_path: Path) -> None:
    needs.program("glewlwyd")
    directory = tmp_path / "glewlwyd"
    directory.mkdir()
    client = Client(client_id="c", secret="s", redirect_uris=("http://127.0.0.1:1/cb",))
    provider = make_provider(directory, users=USERS[:1], client=client)
    process = provider.process
    assert process is not None
    provider.stop()
    assert process.returncode is not None and provider.process is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", provider.port), timeout=1).close()
    # Everything it wrote is in its directory: the database, config, key, login pages and log.
    assert {entry.name for entry in directory.iterdir()} <= {
        "glewlwyd.db",
        "glewlwyd.db-journal",
        "glewlwyd.conf",
        "jwks.json",
        "webapp",
        "glewlwyd.log",
    }


def test_the_provider_refuses_an_authorization_request_without_pkce(
    page: Page, relying_party: tuple[RelyingParty, str], oidc_provider: Provider
) -> None:
    rp, url = relying_party
    request = prepare_grant_uri(
        f"{oidc_provider.issuer}/auth",
        oidc_provider.client.client_id,
        "code",
        redirect_uri=oidc_provider.client.redirect_uris[0],
        scope="openid roster",
        state="no-pkce",
        nonce="n",
    )
    page.goto(request)  # refused before any login page: back at the app's callback with the error
    page.wait_for_url(f"{url}/auth/callback?**")
    assert "error=invalid_request" in page.url and rp.failures[-1] == "invalid_request"
