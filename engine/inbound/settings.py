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

from common.config.validation import as_list, as_mapping, check_keys, choice, integer, join, positive, string
from common.errors import ConfigError
from common.process.exposure import MIN_TOKEN_CHARS, WEAK_TOKENS
from common.process.status_server import parse_listen

_KEYS = ("listen", "base_path", "tokens", "respond", "apply_timeout_s", "max_body_bytes", "tls")
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


def parse_inbound(raw: Any, *, base_dir: Path, jobs: Sequence[str]) -> InboundSettings:
    """Validate the `inbound:` section; `jobs` are the names of the jobs that read from it."""
    path = "inbound"
    section = as_mapping(path, raw)
    check_keys(path, section, _KEYS, required=("listen", "tokens"))
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
        for i, item in enumerate(as_list(join(path, "tokens"), section["tokens"]))
    )
    if not tokens:
        raise ConfigError(join(path, "tokens"), "is empty", "give each client that pushes a token of its own")
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ConfigError(join(path, "tokens"), "names a token twice", "give each token its own name")
    cert_file = key_file = None
    if section.get("tls") is not None:
        tls = as_mapping(join(path, "tls"), section["tls"])
        check_keys(join(path, "tls"), tls, ("cert_file", "key_file"), required=("cert_file", "key_file"))
        cert_file = _file(join(join(path, "tls"), "cert_file"), tls["cert_file"], base_dir)
        key_file = _file(join(join(path, "tls"), "key_file"), tls["key_file"], base_dir)
    return InboundSettings(
        host=host,
        port=port,
        tokens=tokens,
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
    if ("token" in item) == ("token_file" in item):
        raise ConfigError(
            path, "needs token or token_file (one of them)", "token: ${ENV_VAR}, or token_file: PATH"
        )
    if "token" in item:
        token = string(join(path, "token"), item["token"]).strip()
    else:
        token = _read(join(path, "token_file"), item["token_file"], base_dir)
    if token.lower() in WEAK_TOKENS or len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            join(path, "token"),
            f"is a placeholder or shorter than {MIN_TOKEN_CHARS} characters",
            "set a long random token (openssl rand -hex 32)",
        )
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
    return InboundToken(string(join(path, "name"), item["name"]), token, frozenset(allowed))


def _read(path: str, raw: Any, base_dir: Path) -> str:
    file = _file(path, raw, base_dir)
    try:
        token = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(path, f"cannot read {file}: {exc.strerror}") from None
    if not token:
        raise ConfigError(path, f"{file} is empty", "put the token on its first line")
    return token


def _file(path: str, raw: Any, base_dir: Path) -> Path:
    file = Path(string(path, raw)).expanduser()
    return file if file.is_absolute() else base_dir / file
