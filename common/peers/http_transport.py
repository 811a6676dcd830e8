"""The HTTP transport to one JSON service: its session, its credentials, one request at a time.

`HttpTransport.send` signs a request with the header of `http_auth.Credentials`, sends it, and answers
an `HttpAnswer`: the status, the JSON body, the `Retry-After` header and the `Link: rel=next` URL.
Under OAuth, a 401 drops the token and the request is sent once more with a fresh one. A request that
gets no answer raises `Unanswered` (the TLS certificate refused, a timeout, a network error); a token
endpoint that fails raises `AuthError`. The transport judges no answer: each caller maps statuses and
these two errors to its own (a connector's `TransientError`/`PermanentError`, a source's
retry/`SourceError`), passing every text it shows through `redact`. The SCIM service's flavour (its
media type, its error document) is `scim_transport.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from yarl import URL

from common.errors import RosterError
from common.peers.http_auth import Credentials
from common.peers.http_settings import HttpSettings, parse_retry_after

JSON: Final = "application/json"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAnswer:
    """What a service answered to one request."""

    status: int
    body: Any  # the JSON document; None when the body is empty or not JSON
    malformed: bool = False  # a body came that is not JSON
    retry_after: str | None = None  # the header as sent
    what: str  # "PATCH /Users/123", to name the call in errors
    next_url: str | None = None  # the `Link` header's rel="next" target, made absolute

    @property
    def retry_after_s(self) -> float | None:
        """The `Retry-After` header in seconds; None when absent or unreadable."""
        return parse_retry_after(self.retry_after)


class Unanswered(RosterError):
    """A request that got no answer: `detail` says why (pass it through `redact` before showing it),
    `transient` whether another try may work, `code` which failure it was: tls, timeout or network."""

    def __init__(self, detail: str, *, transient: bool, code: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient
        self.code = code


class HttpTransport:
    """Sends requests to one service over one aiohttp session, opened and closed by its owner.

    `slot`, when given, is entered around each request sent (not around a token fetch): a caller's
    concurrency and rate limits. The session's pool holds `max_connections`. `media_type` is what
    bodies are sent as and what is asked for (JSON is always accepted too).
    """

    def __init__(
        self,
        http: HttpSettings,
        *,
        max_connections: int,
        slot: Callable[[], AbstractAsyncContextManager[object]] | None = None,
        media_type: str = JSON,
    ) -> None:
        self.http = http
        self.media_type = media_type
        self.credentials = Credentials(http.auth, timeout=http.timeout)
        self.requests_sent = 0
        self._max_connections = max_connections
        self._slot = slot or nullcontext
        self._session: aiohttp.ClientSession | None = None

    @property
    def is_open(self) -> bool:
        return self._session is not None

    async def open(self) -> None:
        """Build the session and its bounded pool (the first request connects); again after `aclose`."""
        if self._session is None:
            accept = self.media_type if self.media_type == JSON else f"{self.media_type}, {JSON}"
            self._session = self.http.session(limit=self._max_connections, headers={"Accept": accept})

    async def aclose(self) -> None:
        """Close the session; safe to call twice."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> HttpTransport:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def send(self, method: str, path: str, *, query: str = "", body: Any = None) -> HttpAnswer:
        """One request to `path` below the service URL (`query` already encoded), `body` sent as JSON."""
        session = self._session
        if session is None:
            raise RuntimeError(f"the transport to {self.http.url} is not open")
        what = f"{method} {path}"
        url = URL(f"{self.http.url}{path}{'?' + query if query else ''}", encoded=True)
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": self.media_type} if data is not None else {}
        for attempt in (1, 2):
            authorization = await self.credentials.header(session)
            if authorization:
                headers[self.credentials.header_name] = authorization
            async with self._slot():
                self.requests_sent += 1
                status, payload, retry_after, next_url = await self._exchange(
                    session, method, url, data, headers
                )
            if status == 401:
                self.credentials.invalidate(authorization)
                if attempt == 1 and self.credentials.refreshable:
                    continue
            break
        document, malformed = parse_json(payload)
        return HttpAnswer(
            status=status,
            body=document,
            malformed=malformed,
            retry_after=retry_after,
            what=what,
            next_url=next_url,
        )

    def redact(self, text: str) -> str:
        """`text` with every credential and the proxy's password replaced by `***`."""
        for secret in (*self.credentials.secrets(), self.http.proxy_secret):
            if secret:
                text = text.replace(secret, "***")
        return text

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        data: bytes | None,
        headers: dict[str, str],
    ) -> tuple[int, bytes, str | None, str | None]:
        try:
            async with session.request(
                method, url, data=data, headers=headers, proxy=self.http.proxy
            ) as response:
                link = response.links.get("next")
                next_url = str(url.join(URL(str(link["url"])))) if link else None
                payload = await response.read()
                return response.status, payload, response.headers.get("Retry-After"), next_url
        except aiohttp.ClientConnectorCertificateError as exc:
            raise Unanswered(f"TLS certificate refused: {exc}", transient=False, code="tls") from None
        except TimeoutError:
            detail = f"no answer within {self.http.timeout_s:g} s"
            raise Unanswered(detail, transient=True, code="timeout") from None
        except aiohttp.ClientError as exc:
            raise Unanswered(f"{type(exc).__name__}: {exc}", transient=True, code="network") from None


def parse_json(payload: bytes) -> tuple[Any, bool]:
    """The document in `payload` (None when empty), and whether a body came that is not JSON."""
    if not payload:
        return None, False
    try:
        return orjson.loads(payload), False
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            return None, True
    # orjson refuses a lone surrogate escape ("\ud800") in the whole document; the standard library
    # reads it, so that one resource's value is refused where it is used (the engine refuses to send
    # it on, naming the attribute), not the whole page.
    try:
        return json.loads(payload), False
    except ValueError:
        return None, True
