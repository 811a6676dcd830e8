"""The console tests' peers: a private OpenID Connect provider (glewlwyd, tests/oidc.py) and a headless
Chromium (tests/browser.py), each started once for the package and stopped when its last test is done
(not at the end of the whole run, so neither idles through the rest of the suite; a package of their own,
so the console's asynchronous tests beside it never run while the browser is up). Either one missing
skips the tests, naming the package (tests/needs.py); one that is there but does not start fails them.

The tests here are synchronous: while Playwright's sync API is up, its loop is the running loop of the
main thread, so an app under test runs in a thread of its own (relying_party.serving) or a process.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests import needs
from tests.browser import BrowserError, chromium, new_page
from tests.oidc import Client, Provider, ProviderError, User, free_port, make_provider

USERS = (
    User(
        username="ada",
        password="pw-" + secrets.token_hex(8),
        name="Ada Lovelace",
        email="ada@roster.test",
        groups=("roster-admins", "payroll"),
    ),
    User(
        username="grace",
        password="pw-" + secrets.token_hex(8),
        name="Grace Hopper",
        email="grace@roster.test",
        groups=("roster-viewers",),
    ),
)
CALLBACK_PATH = "/auth/callback"  # the stand-in relying party's (relying_party.py)
CONSOLE_CALLBACK_PATH = "/ui/auth/callback"  # the console's (engine/api/console/settings.py)


@pytest.fixture(scope="package")
def startup_s() -> dict[str, float]:
    """How long each peer took to start, in seconds, by name ("provider", "browser")."""
    return {}


@pytest.fixture(scope="package")
def console_port() -> int:
    """The port the app under test listens on; its callback is registered with the provider."""
    return free_port()


@pytest.fixture(scope="package")
def oidc_provider(
    tmp_path_factory: pytest.TempPathFactory, console_port: int, startup_s: dict[str, float]
) -> Iterator[Provider]:
    """glewlwyd with USERS and a confidential client `roster-console` whose redirect URIs are
    http://127.0.0.1:`console_port`/auth/callback (the stand-in relying party's) and
    .../ui/auth/callback (the console's); its directory is removed after the package."""
    needs.program("glewlwyd")
    client = Client(
        client_id="roster-console",
        secret="cs-" + secrets.token_hex(12),
        redirect_uris=tuple(
            f"http://127.0.0.1:{console_port}{path}" for path in (CALLBACK_PATH, CONSOLE_CALLBACK_PATH)
        ),
    )
    directory = tmp_path_factory.mktemp("glewlwyd")
    try:
        provider = make_provider(directory, users=USERS, client=client)
    except ProviderError as exc:
        pytest.fail(str(exc), pytrace=False)
    startup_s["provider"] = provider.started_in_s
    try:
        yield provider
    finally:
        provider.stop()
        shutil.rmtree(directory)


@pytest.fixture(scope="package")
def browser(startup_s: dict[str, float]) -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright's sync API."""
    needs.program("chromium")
    began = time.monotonic()
    try:
        with chromium() as started:
            startup_s["browser"] = time.monotonic() - began
            yield started
    except BrowserError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page of this test's own: a fresh context, so no sign-in carries over from another test."""
    with new_page(browser) as fresh:
        yield fresh
