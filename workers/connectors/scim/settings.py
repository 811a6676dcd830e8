"""A SCIM target's settings: `ScimSettings` and `parse_scim_settings`, which validates them.

Settings (beside `name`, `type: scim`, `max_inflight`, `retry`; url, auth, timeouts, TLS and proxy are
read by `common/peers/http_settings.py`, as a SCIM source reads them)::

    url: https://app.example.com/scim/v2        # required
    auth: {type: bearer, token: ${TOKEN}}        # see common/peers/http_auth.py; none by default
    matching: {user: [userName, externalId], group: [externalId, displayName]}
    update_method: patch                         # or put
    member_chunk_size: 100
    max_concurrency: 8                           # requests in flight to the target
    rate_per_s: 50                               # requests per second; unlimited by default
    timeout_s: 30                                # per request
    connect_timeout_s: 10
    max_pause_s: 300                             # ceiling on a Retry-After
    verify_tls: true
    ca_file: certs/app-ca.pem                    # relative to the config file
    proxy: http://proxy:3128                     # else HTTP(S)_PROXY / NO_PROXY when trust_env
    trust_env: true
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from common.config.validation import as_list, as_mapping, check_keys, choice, integer, join, positive, string
from common.errors import ConfigError
from common.peers.http_settings import HTTP_KEYS, HttpSettings, parse_http_settings
from common.peers.scim_schemas import ObjectType
from workers.connectors.scim.paths import parse_path

_KEYS: Final = (*HTTP_KEYS, "matching", "update_method", "member_chunk_size", "max_concurrency", "rate_per_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScimSettings:
    """A validated SCIM target (see the module docstring for each key); its repr hides the secrets."""

    http: HttpSettings
    user_matching: tuple[str, ...] = ("userName", "externalId")
    group_matching: tuple[str, ...] = ("externalId", "displayName")
    update_method: Literal["patch", "put"] = "patch"
    member_chunk_size: int = 100
    max_concurrency: int = 8
    rate_per_s: float | None = None
    path: str = field(default="", compare=False)

    @property
    def url(self) -> str:
        return self.http.url

    def matching(self, kind: ObjectType) -> tuple[str, ...]:
        return self.user_matching if kind == "user" else self.group_matching


def parse_scim_settings(path: str, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> ScimSettings:
    """Validate a SCIM target's own settings (found at `path`), or raise `ConfigError` naming the key."""
    raw = as_mapping(path, raw)
    check_keys(path, raw, _KEYS, required=("url",))
    http = parse_http_settings(path, raw, base_dir=base_dir)

    def at(key: str) -> str:
        return join(path, key)

    matching = as_mapping(at("matching"), raw.get("matching") or {})
    check_keys(at("matching"), matching, ("user", "group"))
    defaults = ScimSettings(http=http)
    user_matching = _matching(at("matching.user"), matching.get("user"), defaults.user_matching)
    group_matching = _matching(at("matching.group"), matching.get("group"), defaults.group_matching)
    rate = raw.get("rate_per_s")
    return ScimSettings(
        http=http,
        user_matching=user_matching,
        group_matching=group_matching,
        update_method=choice(at("update_method"), raw.get("update_method", "patch"), ("patch", "put")),  # type: ignore[arg-type]
        member_chunk_size=integer(at("member_chunk_size"), raw.get("member_chunk_size", 100), minimum=1),
        max_concurrency=integer(at("max_concurrency"), raw.get("max_concurrency", 8), minimum=1),
        rate_per_s=None if rate is None else positive(at("rate_per_s"), rate),
        path=path,
    )


def _matching(path: str, raw: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None:
        return default
    names = tuple(string(join(path, i), name) for i, name in enumerate(as_list(path, raw)))
    if not names:
        raise ConfigError(path, "is empty", "list at least one attribute, e.g. [userName]")
    for i, name in enumerate(names):
        try:
            parse_path(name)
        except ValueError as exc:
            raise ConfigError(join(path, i), str(exc)) from None
    return names
