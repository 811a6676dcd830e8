"""How Roster reaches an LDAP server: URL, TLS, bind DN and password, timeouts, and the ldap3 `Server`.

The LDAP target and the LDAP source read these keys alike, with the same checks and messages. Each
reads its own keys beside them and checks the whole mapping for unknown keys with `LINK_KEYS` plus its
own. Settings::

    url: ldaps://ldap.example.org                 # required; ldap:// or ldaps://
    start_tls: false                              # upgrade ldap:// with StartTLS (not with ldaps://)
    ca_file: certs/ldap-ca.pem                    # relative to the file that holds it
    verify_tls: true
    bind_dn: cn=roster,ou=services,dc=example,dc=org   # required (simple bind)
    bind_password: ${LDAP_PASSWORD}               # required
    timeout_s: 30                                 # per call
    connect_timeout_s: 10

The bind password appears in no message and no repr.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import ldap3

from common.config.validation import boolean, check_keys, join, positive, string
from common.errors import ConfigError
from common.peers.ldap_names import DnError, split_dn

LINK_KEYS: Final = (
    "url",
    "start_tls",
    "ca_file",
    "verify_tls",
    "bind_dn",
    "bind_password",
    "timeout_s",
    "connect_timeout_s",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSettings:
    """How to reach and bind to the server. `url` is ldap:// or ldaps://; StartTLS upgrades ldap://."""

    url: str
    bind_dn: str
    bind_password: str = field(repr=False)
    start_tls: bool = False
    verify_tls: bool = True
    ca_file: Path | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0

    @property
    def ldaps(self) -> bool:
        return self.url.lower().startswith("ldaps://")

    @property
    def tls(self) -> bool:
        return self.ldaps or self.start_tls

    @property
    def receive_timeout(self) -> int:
        """`timeout_s` in whole seconds, at least 1: ldap3 packs it as a C int."""
        return max(1, math.ceil(self.timeout_s))


def parse_link(path: str, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> LinkSettings:
    """Read the `LINK_KEYS` of `raw` (found at `path`), or raise `ConfigError` naming the key and the fix.

    Other keys are the caller's: it checks for unknown ones itself, with `LINK_KEYS` and its own.
    """

    def at(key: str) -> str:
        return join(path, key)

    link_keys = {key: raw[key] for key in LINK_KEYS if key in raw}
    check_keys(path, link_keys, LINK_KEYS, required=("url", "bind_dn", "bind_password"))
    url = string(at("url"), raw["url"])
    if not url.lower().startswith(("ldap://", "ldaps://")):
        raise ConfigError(at("url"), "must be an ldap:// or ldaps:// URL", "e.g. ldaps://ldap.example.org")
    start_tls = boolean(at("start_tls"), raw.get("start_tls", False))
    if start_tls and url.lower().startswith("ldaps://"):
        raise ConfigError(at("start_tls"), "is for ldap:// URLs; ldaps:// is TLS already", "remove one")
    ca_file = None
    if raw.get("ca_file") is not None:
        ca_file = (base_dir or Path.cwd()) / string(at("ca_file"), raw["ca_file"])
        if not ca_file.is_file():
            raise ConfigError(at("ca_file"), f"no file at {ca_file}", "name a PEM file of CA certificates")
    bind_dn = parse_dn(at("bind_dn"), raw["bind_dn"])
    password = raw["bind_password"]
    if not isinstance(password, str) or not password:  # not `string()`: its message would show a number
        raise ConfigError(at("bind_password"), "expected a non-empty string", "e.g. ${LDAP_PASSWORD}")
    return LinkSettings(
        url=url,
        bind_dn=bind_dn,
        bind_password=password,
        start_tls=start_tls,
        verify_tls=boolean(at("verify_tls"), raw.get("verify_tls", True)),
        ca_file=ca_file,
        timeout_s=positive(at("timeout_s"), raw.get("timeout_s", 30.0)),
        connect_timeout_s=positive(at("connect_timeout_s"), raw.get("connect_timeout_s", 10.0)),
    )


def parse_dn(path: str, raw: Any) -> str:
    """A DN setting as written, once it reads as a DN (RFC 4514)."""
    text = string(path, raw)
    try:
        split_dn(text)
    except DnError as exc:
        raise ConfigError(path, str(exc), "write a DN such as ou=people,dc=example,dc=org") from None
    return text


def ldap_server(link: LinkSettings) -> ldap3.Server:
    """An ldap3 `Server` for `link`, with TLS (ldaps:// or StartTLS) checked as it says.

    Build one per connection: ldap3 would shun an address that failed once, for minutes.
    """
    tls = None
    if link.tls:
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED if link.verify_tls else ssl.CERT_NONE,
            ca_certs_file=str(link.ca_file) if link.ca_file else None,
        )
    return ldap3.Server(
        link.url,
        use_ssl=link.ldaps,
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=link.connect_timeout_s,
    )
