"""The console's settings (`engine.console`): how long a session may idle, and the OpenID Connect
provider people sign in with, with the claim whose values map to Roster's roles.

    engine:
      console:
        idle_timeout_minutes: 15
        oidc:
          issuer: https://login.example.com/realms/staff
          client_id: roster-console
          client_secret: ${ROSTER_OIDC_SECRET}
          redirect_url: https://roster.example.com/ui/auth/callback
          roles_claim: groups
          roles: {identity-team: [viewer, operator, approver], helpdesk: [viewer, operator]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.config.secrets import secret, settings_file
from common.config.validation import as_list, as_mapping, check_keys, join, positive, string
from common.errors import ConfigError
from engine.api.accounts import Role, parse_roles

CONSOLE_KEYS = ("idle_timeout_minutes", "oidc")
OIDC_KEYS = (
    "issuer",
    "client_id",
    "client_secret",
    "client_secret_file",
    "redirect_url",
    "scopes",
    "roles_claim",
    "name_claim",
    "roles",
    "ca_file",
)
CALLBACK = "/ui/auth/callback"


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_url: str
    """Where the provider sends people back: this engine's `/ui/auth/callback`, as registered there."""
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    roles_claim: str = "groups"
    name_claim: str = "name"
    roles: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    """A value of `roles_claim` -> the roles it gives."""
    ca_file: Path | None = None

    def roles_of(self, claims: Mapping[str, Any]) -> frozenset[Role]:
        held = claims.get(self.roles_claim)
        values = held if isinstance(held, list) else [held] if isinstance(held, str) else []
        return frozenset(role for value in values for role in self.roles.get(str(value), ()))


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSettings:
    idle_timeout_minutes: float = 15.0
    oidc: OidcSettings | None = None


def parse_console(raw: Any, *, base_dir: Path) -> ConsoleSettings:
    path = "engine.console"
    if raw is None:
        return ConsoleSettings()
    item = as_mapping(path, raw)
    check_keys(path, item, CONSOLE_KEYS)
    oidc = item.get("oidc")
    return ConsoleSettings(
        idle_timeout_minutes=positive(
            join(path, "idle_timeout_minutes"), item.get("idle_timeout_minutes", 15)
        ),
        oidc=_oidc(join(path, "oidc"), oidc, base_dir) if oidc is not None else None,
    )


def _oidc(path: str, raw: Any, base_dir: Path) -> OidcSettings:
    item = as_mapping(path, raw)
    check_keys(path, item, OIDC_KEYS, required=("issuer", "client_id", "redirect_url", "roles"))
    issuer = _https(join(path, "issuer"), item["issuer"])
    redirect = _https(join(path, "redirect_url"), item["redirect_url"])
    if urlsplit(redirect).path != CALLBACK:
        raise ConfigError(
            join(path, "redirect_url"),
            f"must end in {CALLBACK}, the console's callback, not {urlsplit(redirect).path or '/'}",
            f"such as https://roster.example.com{CALLBACK}, registered with the provider as is",
        )
    roles_path = join(path, "roles")
    mapping = as_mapping(roles_path, item["roles"])
    if not mapping:
        raise ConfigError(
            roles_path, "is empty", "map one value of the roles claim to roles, such as {admins: [viewer]}"
        )
    scopes = tuple(
        string(join(path, "scopes"), s)
        for s in as_list(join(path, "scopes"), item.get("scopes", ["openid", "profile", "email"]))
    )
    if "openid" not in scopes:
        raise ConfigError(join(path, "scopes"), "lacks openid", "add openid: without it there is no ID token")
    return OidcSettings(
        issuer=issuer,
        client_id=string(join(path, "client_id"), item["client_id"]),
        client_secret=secret(path, item, "client_secret", base_dir),
        redirect_url=redirect,
        scopes=scopes,
        roles_claim=string(join(path, "roles_claim"), item.get("roles_claim", "groups")),
        name_claim=string(join(path, "name_claim"), item.get("name_claim", "name")),
        roles={
            str(value): parse_roles(join(roles_path, str(value)), roles) for value, roles in mapping.items()
        },
        ca_file=settings_file(join(path, "ca_file"), item["ca_file"], base_dir)
        if "ca_file" in item
        else None,
    )


def _https(path: str, raw: Any) -> str:
    """A URL that is https, or http on a loopback host (a provider or console on this machine)."""
    url = string(path, raw)
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ConfigError(
            path,
            f"{url!r} is not an https:// URL",
            "sign-ins travel only over https (http on 127.0.0.1 alone)",
        )
    return url
