"""How Roster reaches an HTTP service it reads or writes: URL, credentials, timeouts, TLS and proxy.

The SCIM target and the SCIM source read these keys alike, with the same checks and messages. Each
reads its own keys beside them and checks the whole mapping for unknown keys with `HTTP_KEYS` plus its
own. Settings::

    url: https://app.example.com/scim/v2        # required; no query, no credentials
    auth: {type: bearer, token: ${TOKEN}}        # see http_auth.py; none by default
    timeout_s: 30                                # per request
    connect_timeout_s: 10
    max_pause_s: 300                             # ceiling on a Retry-After
    verify_tls: true
    ca_file: certs/app-ca.pem                    # relative to the file that holds it
    proxy: http://proxy:3128                     # else HTTP(S)_PROXY / NO_PROXY when trust_env
    trust_env: true

`parse_retry_after` reads the `Retry-After` header both callers honour.
"""

from __future__ import annotations

import email.utils
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
from yarl import URL

from common.config.validation import boolean, check_keys, join, number, positive, string
from common.errors import ConfigError
from common.peers.http_auth import AuthSettings, NoAuth, parse_auth

HTTP_KEYS: Final = (
    "url",
    "auth",
    "timeout_s",
    "connect_timeout_s",
    "max_pause_s",
    "verify_tls",
    "ca_file",
    "proxy",
    "trust_env",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """A validated HTTP service (see the module docstring for each key); its repr hides the secrets."""

    url: str
    auth: AuthSettings = field(default_factory=NoAuth)
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_pause_s: float = 300.0
    verify_tls: bool = True
    ca_file: Path | None = None
    proxy: str | None = field(default=None, repr=False)
    trust_env: bool = True

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.timeout_s, connect=self.connect_timeout_s)

    @property
    def proxy_secret(self) -> str | None:
        """The proxy URL's password, for redaction."""
        return URL(self.proxy).password if self.proxy else None

    def session(self, *, limit: int, headers: Mapping[str, str]) -> aiohttp.ClientSession:
        """A session with at most `limit` connections, this TLS, timeout and proxy environment."""
        tls: ssl.SSLContext | bool = self.verify_tls
        if self.verify_tls and self.ca_file is not None:
            tls = ssl.create_default_context(cafile=str(self.ca_file))
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ssl=tls),
            timeout=self.timeout,
            trust_env=self.trust_env,
            headers=dict(headers),
        )


def parse_http_settings(path: str, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> HttpSettings:
    """Read the `HTTP_KEYS` of `raw` (found at `path`), or raise `ConfigError` naming the key and the fix.

    Other keys are the caller's: it checks for unknown ones itself, with `HTTP_KEYS` and its own.
    """
    defaults = HttpSettings(url="")

    def at(key: str) -> str:
        return join(path, key)

    check_keys(path, {key: raw[key] for key in HTTP_KEYS if key in raw}, HTTP_KEYS, required=("url",))
    url = string(at("url"), raw["url"]).rstrip("/")
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(at("url"), "must be an http(s) URL", "e.g. https://app.example.com/scim/v2")
    if parsed.query_string or parsed.user:
        raise ConfigError(at("url"), "must hold no query and no credentials", "put credentials under auth:")

    ca_file = None
    if raw.get("ca_file") is not None:
        ca_file = (base_dir or Path.cwd()) / string(at("ca_file"), raw["ca_file"])
        if not ca_file.is_file():
            raise ConfigError(at("ca_file"), f"no file at {ca_file}", "name a PEM file of CA certificates")
    proxy = None
    if raw.get("proxy") is not None:
        proxy = string(at("proxy"), raw["proxy"])
        if URL(proxy).scheme not in ("http", "https") or not URL(proxy).host:
            raise ConfigError(at("proxy"), "must be an http(s) URL", "e.g. http://proxy.example.com:3128")
    verify_tls = boolean(at("verify_tls"), raw.get("verify_tls", True))
    if ca_file is not None and not verify_tls:
        raise ConfigError(at("ca_file"), "is unused when verify_tls is false", "remove one of the two")

    return HttpSettings(
        url=url,
        auth=parse_auth(at("auth"), raw.get("auth")),
        timeout_s=positive(at("timeout_s"), raw.get("timeout_s", defaults.timeout_s)),
        connect_timeout_s=positive(
            at("connect_timeout_s"), raw.get("connect_timeout_s", defaults.connect_timeout_s)
        ),
        max_pause_s=number(at("max_pause_s"), raw.get("max_pause_s", defaults.max_pause_s), minimum=0),
        verify_tls=verify_tls,
        ca_file=ca_file,
        proxy=proxy,
        trust_env=boolean(at("trust_env"), raw.get("trust_env", True)),
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Decimal seconds are accepted too, as some services send them. Unreadable values give None, so
    that the caller falls back to its default rather than trusting a guess.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
