"""The `inbound:` section: where the inbound SCIM service listens and who may push to it.

    inbound:
      listen: 0.0.0.0:8444            # required: no default port on shared infrastructure
      base_path: /scim/v2
      tokens:                         # one per client; rotate by adding the new one, then removing the old
        - {name: entra, token: ${ENTRA_SCIM_TOKEN}, jobs: [people, teams]}
        - {name: okta, token_file: /run/secrets/okta, jobs: [people]}
      respond: stored                 # or applied: answer after the target confirmed (one target)
      apply_timeout_s: 30
      max_body_bytes: 1000000

A token may write a resource type only when it names every job that reads that type from the service
(a push changes what each of them provisions). Tokens are never logged nor shown in a repr.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.config.secrets import secret, settings_file
from common.config.validation import as_list, as_mapping, check_keys, choice, integer, join, positive, string
from common.errors import ConfigError
from common.process.status_server import parse_listen

_KEYS = (
    "listen",
    "base_path",
    "tokens",
    "clients",
    "token_lifetime_s",
    "respond",
    "apply_timeout_s",
    "max_body_bytes",
    "tls",
)
_CLIENT_KEYS = ("client_id", "client_secret", "client_secret_file", "jobs")
_TOKEN_KEYS = ("name", "token", "token_file", "jobs")

Respond = Literal["stored", "applied"]


@dataclass(frozen=True, slots=True)
class InboundToken:
    """One client's bearer token and the jobs it may write."""

    name: str
    token: str = field(repr=False)
    jobs: frozenset[str]

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(self.token.encode(), presented.encode())


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundSettings:
    host: str
    port: int
    tokens: tuple[InboundToken, ...]
    clients: tuple[InboundToken, ...] = ()
    """OAuth 2.0 clients (client credentials): `name` is the client_id, `token` its secret."""
    token_lifetime_s: float = 3600.0
    """How long a token issued to a client is good for."""
    base_path: str = "/scim/v2"
    respond: Respond = "stored"
    apply_timeout_s: float = 30.0
    max_body_bytes: int = 1_000_000
    cert_file: Path | None = None
    key_file: Path | None = None

    def token(self, presented: str) -> InboundToken | None:
        """The token presented, if it is one of ours (every one compared, in constant time each)."""
        found = None
        for token in self.tokens:
            if token.matches(presented):
                found = token
        return found

    def client(self, client_id: str, secret: str) -> InboundToken | None:
        """The OAuth client with these credentials, if one has them (every one compared)."""
        found = None
        for client in self.clients:
            same_id = hmac.compare_digest(client.name.encode(), client_id.encode())
            if client.matches(secret) and same_id:
                found = client
        return found


def parse_inbound(raw: Any, *, base_dir: Path, jobs: Sequence[str]) -> InboundSettings:
    """Validate the `inbound:` section; `jobs` are the names of the jobs that read from it."""
    path = "inbound"
    section = as_mapping(path, raw)
    check_keys(path, section, _KEYS, required=("listen",))
    listen = string(join(path, "listen"), section["listen"])
    try:
        host, port = parse_listen(listen)
    except ValueError:
        raise ConfigError(
            join(path, "listen"), f"expected HOST:PORT, got {listen!r}", "such as 0.0.0.0:8444"
        ) from None
    base_path = "/" + string(join(path, "base_path"), section.get("base_path", "/scim/v2")).strip("/")
    tokens = tuple(
        _token(join(join(path, "tokens"), i), item, base_dir, jobs)
        for i, item in enumerate(as_list(join(path, "tokens"), section.get("tokens") or []))
    )
    clients = tuple(
        _client(join(join(path, "clients"), i), item, base_dir, jobs)
        for i, item in enumerate(as_list(join(path, "clients"), section.get("clients") or []))
    )
    if not tokens and not clients:
        raise ConfigError(
            join(path, "tokens"),
            "is missing, and so is clients",
            "give each client that pushes a token of its own (tokens:), or OAuth credentials (clients:)",
        )
    for key, named in (("tokens", [t.name for t in tokens]), ("clients", [c.name for c in clients])):
        if len(set(named)) != len(named):
            raise ConfigError(join(path, key), "names one twice", "give each its own name or client_id")
    cert_file = key_file = None
    if section.get("tls") is not None:
        tls = as_mapping(join(path, "tls"), section["tls"])
        check_keys(join(path, "tls"), tls, ("cert_file", "key_file"), required=("cert_file", "key_file"))
        cert_file = settings_file(join(join(path, "tls"), "cert_file"), tls["cert_file"], base_dir)
        key_file = settings_file(join(join(path, "tls"), "key_file"), tls["key_file"], base_dir)
    return InboundSettings(
        host=host,
        port=port,
        tokens=tokens,
        clients=clients,
        token_lifetime_s=positive(join(path, "token_lifetime_s"), section.get("token_lifetime_s", 3600)),
        base_path="" if base_path == "/" else base_path,
        respond=choice(join(path, "respond"), section.get("respond", "stored"), ("stored", "applied")),  # type: ignore[arg-type]
        apply_timeout_s=positive(join(path, "apply_timeout_s"), section.get("apply_timeout_s", 30)),
        max_body_bytes=integer(
            join(path, "max_body_bytes"), section.get("max_body_bytes", 1_000_000), minimum=1024
        ),
        cert_file=cert_file,
        key_file=key_file,
    )


def _token(path: str, raw: Any, base_dir: Path, jobs: Sequence[str]) -> InboundToken:
    item = as_mapping(path, raw)
    check_keys(path, item, _TOKEN_KEYS, required=("name", "jobs"))
    token = secret(path, item, "token", base_dir)
    return InboundToken(string(join(path, "name"), item["name"]), token, _jobs(path, item, jobs))


def _client(path: str, raw: Any, base_dir: Path, jobs: Sequence[str]) -> InboundToken:
    item = as_mapping(path, raw)
    check_keys(path, item, _CLIENT_KEYS, required=("client_id", "jobs"))
    client_secret = secret(path, item, "client_secret", base_dir)
    name = string(join(path, "client_id"), item["client_id"])
    return InboundToken(name, client_secret, _jobs(path, item, jobs))


def _jobs(path: str, item: Any, jobs: Sequence[str]) -> frozenset[str]:
    """The jobs a token or client may write, each a job that reads the inbound service."""
    allowed = [
        string(join(join(path, "jobs"), i), j)
        for i, j in enumerate(as_list(join(path, "jobs"), item["jobs"]))
    ]
    for i, name in enumerate(allowed):
        if name not in jobs:
            known = ", ".join(jobs) or "none"
            raise ConfigError(
                join(join(path, "jobs"), i),
                f"is not a job that reads the inbound service: {name!r}",
                f"jobs over it: {known}",
            )
    return frozenset(allowed)
