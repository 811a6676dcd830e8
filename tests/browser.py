"""A real headless browser for the console's tests: Playwright (its synchronous API) driving Debian's
/usr/bin/chromium through `executable_path`, so Playwright's own browser download is never needed.

The synchronous API because Playwright's objects belong to the event loop that made them, and the
project's async tests each get a loop of their own (pytest-asyncio's function scope): a browser made on
one could not serve the next. The sync API runs on a private loop, so one browser serves every test
that drives it, while the servers under test run in threads or processes of their own.

The browser stays on loopback: host names other than localhost do not resolve, and every context
aborts requests to any other address (`new_page`).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

INSTALL_HINT = (
    "install it with `DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium`"
)
CHROMIUM = Path("/usr/bin/chromium")
# Any URL but a loopback one (or data:/about:): matched by the browser's side, so loopback requests are
# never paused for the test's process.
ELSEWHERE = re.compile(r"^(?!(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)|data:|about:)")
ARGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
    "--disable-dev-shm-usage",  # containers often have a small /dev/shm
)
TIMEOUT_MS = 15_000


class BrowserError(RuntimeError):
    """Chromium is missing or did not start."""


def executable() -> Path:
    found = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if found is None:
        raise BrowserError(
            f"chromium is not installed: the console tests drive a real browser; {INSTALL_HINT}"
        )
    return Path(found)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the `with` block, closed with its Playwright driver after it."""
    path = executable()
    playwright: Playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=list(ARGS))
    except Exception as exc:
        playwright.stop()
        raise BrowserError(f"{path} did not start under Playwright: {exc}") from exc
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context (no cookies from another test) that reaches loopback addresses only."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)

    def refuse(route: Route) -> None:
        route.abort("blockedbyclient")

    context.route(ELSEWHERE, refuse)
    try:
        yield context.new_page()
    finally:
        context.close()
