"""How an HTTP client proves who it is: a bearer token, HTTP basic, OAuth 2.0 client credentials, or
an API key in a header of the service's choosing.

The SCIM and REST targets and the SCIM source read `auth:` this way. Settings (under their `auth:`)::

    auth: {type: bearer, token: ${APP_TOKEN}}
    auth: {type: basic, username: roster, password: ${APP_PASSWORD}}
    auth: {type: api_key, header: X-Api-Key, key: ${APP_KEY}}
    auth: {type: oauth2, token_url: https://idp/oauth2/token, client_id: roster,
           client_secret: ${SECRET}, scope: scim, client_auth: basic}   # or client_auth: post

An OAuth token is fetched on first use (RFC 6749 §4.4), cached, and fetched again a little before it
expires (a fifth of its lifetime, at most a minute early), by one request however many calls need it.
A 401 from the peer drops the cached token, so one retry with a fresh token can follow. A token endpoint
that cannot be reached or refuses raises `AuthError`, which its caller turns into its own error (a
connector's `TransientError` or `PermanentError`, a source's retry or `SourceError`). Secrets never
appear in a repr, a log line or an error: `Credentials.secrets()` lists them for the caller to redact.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import aiohttp
import orjson

from common.config.validation import as_mapping, check_keys, choice, join, string
from common.errors import AuthError, ConfigError

AUTH_TYPES: Final = ("none", "bearer", "basic", "oauth2", "api_key")
_REQUIRED: Final = {
    "none": (),
    "bearer": ("token",),
    "basic": ("username", "password"),
    "api_key": ("header", "key"),
    "oauth2": ("token_url", "client_id", "client_secret"),
}
_OPTIONAL: Final = {"oauth2": ("scope", "client_auth")}
_EARLY_MAX_S: Final = 60.0
_DEFAULT_TTL_S: Final = 300.0  # when the token endpoint does not say how long a token lives


@dataclass(frozen=True, slots=True)
class NoAuth:
    """The peer needs no credentials (or a proxy in front of it adds them)."""


@dataclass(frozen=True, slots=True)
class BearerAuth:
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """A static key sent in `header` (such as `X-Api-Key`) with every request."""

    header: str
    key: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuth2Auth:
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    client_auth: Literal["basic", "post"] = "basic"
    """`basic`: client id and secret in an Authorization header (RFC 6749 §2.3.1); `post`: in the form."""


AuthSettings = NoAuth | BearerAuth | BasicAuth | OAuth2Auth | ApiKeyAuth


def parse_auth(path: str, raw: Any) -> AuthSettings:
    """Validate an `auth:` mapping (found at `path`), or raise `ConfigError` naming the key."""
    if raw is None:
        return NoAuth()
    raw = as_mapping(path, raw)
    kind = choice(join(path, "type"), raw.get("type"), AUTH_TYPES)
    required = _REQUIRED[kind]
    check_keys(path, raw, ("type", *required, *_OPTIONAL.get(kind, ())), required=required)

    def text(key: str) -> str:
        return string(join(path, key), raw.get(key))

    if kind == "bearer":
        return BearerAuth(text("token"))
    if kind == "basic":
        return BasicAuth(text("username"), text("password"))
    if kind == "api_key":
        header = text("header")
        if not header.isascii() or not all(c.isalnum() or c == "-" for c in header):
            raise ConfigError(join(path, "header"), f"{header!r} is not a header name", "e.g. X-Api-Key")
        return ApiKeyAuth(header, text("key"))
    if kind == "oauth2":
        token_url = text("token_url")
        if not token_url.startswith(("https://", "http://")):
            raise ConfigError(
                join(path, "token_url"), "must be an http(s) URL", "e.g. https://idp/oauth2/token"
            )
        return OAuth2Auth(
            token_url=token_url,
            client_id=text("client_id"),
            client_secret=text("client_secret"),
            scope=text("scope") if raw.get("scope") is not None else None,
            client_auth=choice(  # type: ignore[arg-type]
                join(path, "client_auth"), raw.get("client_auth", "basic"), ("basic", "post")
            ),
        )
    return NoAuth()


class Credentials:
    """The credentials header for each call (`header_name`: Authorization unless an API key names
    another), with the OAuth token cached and refreshed."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        timeout: aiohttp.ClientTimeout,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._timeout = timeout
        self._clock = clock
        self._static: str | None = None
        if isinstance(settings, BearerAuth):
            self._static = f"Bearer {settings.token}"
        elif isinstance(settings, BasicAuth):
            self._static = _basic(settings.username, settings.password)
        elif isinstance(settings, ApiKeyAuth):
            self._static = settings.key
        self.header_name = settings.header if isinstance(settings, ApiKeyAuth) else "Authorization"
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    @property
    def refreshable(self) -> bool:
        """Whether a 401 may be cured by fetching a new token."""
        return isinstance(self.settings, OAuth2Auth)

    def secrets(self) -> tuple[str, ...]:
        """Every value that must never be shown, for redaction."""
        s = self.settings
        values: list[str | None] = [self._static, self._token]
        if isinstance(s, BearerAuth):
            values.append(s.token)
        elif isinstance(s, BasicAuth):
            values.append(s.password)
        elif isinstance(s, ApiKeyAuth):
            values.append(s.key)
        elif isinstance(s, OAuth2Auth):
            values.append(s.client_secret)
        return tuple(v for v in values if v)

    async def header(self, session: aiohttp.ClientSession) -> str | None:
        if not isinstance(self.settings, OAuth2Auth):
            return self._static
        if self._token is None or self._clock() >= self._refresh_at:
            async with self._lock:  # one fetch, however many calls are waiting for it
                if self._token is None or self._clock() >= self._refresh_at:
                    await self._fetch(session, self.settings)
        return f"Bearer {self._token}"

    def invalidate(self, header: str | None) -> None:
        """Forget the token that `header` carried (not one fetched meanwhile by another call)."""
        if header is not None and header == f"Bearer {self._token}":
            self._token = None

    async def _fetch(self, session: aiohttp.ClientSession, s: OAuth2Auth) -> None:
        form = {"grant_type": "client_credentials"}
        if s.scope:
            form["scope"] = s.scope
        headers = {"Accept": "application/json"}
        if s.client_auth == "basic":
            headers["Authorization"] = _basic(s.client_id, s.client_secret)
        else:
            form.update(client_id=s.client_id, client_secret=s.client_secret)
        where = f"the OAuth token endpoint {s.token_url}"
        try:
            async with session.post(s.token_url, data=form, headers=headers, timeout=self._timeout) as answer:
                status, body = answer.status, await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthError(f"cannot reach {where}: {type(exc).__name__} {exc}", transient=True) from None
        document = _json(body)
        if status >= 500 or status == 429:
            raise AuthError(f"{where} answered HTTP {status}", transient=True, code=str(status))
        if status != 200:
            error = document.get("error", "no error code") if document else "no error code"
            described = document.get("error_description") if document else None
            detail = f"{error}: {described}" if described else str(error)
            message = f"{where} refused the client credentials: HTTP {status} {detail}"
            raise AuthError(message, transient=False, code=str(status))
        token = document.get("access_token") if document else None
        if not isinstance(token, str) or not token:
            raise AuthError(f"{where} answered without an access_token", transient=False, code=str(status))
        ttl = document.get("expires_in") if document else None
        ttl_s = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else _DEFAULT_TTL_S
        self._token = token
        self._refresh_at = self._clock() + ttl_s - min(_EARLY_MAX_S, ttl_s / 5)
        self.tokens_fetched += 1


def _basic(user: str, password: str) -> str:
    """An HTTP basic header (RFC 7617), UTF-8 encoded; aiohttp's own helper moves between versions."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _json(body: bytes) -> Mapping[str, Any] | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None
