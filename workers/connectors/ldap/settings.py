"""The LDAP target's settings: how to reach the server, where users and groups live, and their parsing.

Settings (beside `name`, `type: ldap`, `max_inflight`, `retry`); all but `base_dn`, `pool_size`, `users`
and `groups` say how to reach the server, read as the LDAP source reads them (common/peers/ldap_link.py)::

    url: ldaps://ldap.example.org                 # required; ldap:// or ldaps://
    start_tls: false                              # upgrade ldap:// with StartTLS (not with ldaps://)
    ca_file: certs/ldap-ca.pem                    # relative to the config file
    verify_tls: true
    bind_dn: cn=roster,ou=services,dc=example,dc=org   # required (simple bind)
    bind_password: ${LDAP_PASSWORD}               # required
    base_dn: dc=example,dc=org                    # required: where matching searches
    pool_size: 4                                  # connections (and threads) to the server
    timeout_s: 30                                 # per call
    connect_timeout_s: 10
    users:
      dn: uid={userName},ou=people,dc=example,dc=org
      object_classes: [inetOrgPerson]
      attributes: {userName: uid, givenName: givenName, familyName: sn, displayName: cn, email: mail}
      match: uid                                  # default: the template's RDN attribute
      base: ou=people,dc=example,dc=org           # default: base_dn
      disable: {attribute: employeeType, value: disabled, move_to: ou=disabled,dc=example,dc=org}
    groups:
      dn: cn={displayName},ou=groups,dc=example,dc=org
      object_classes: [groupOfNames]              # or [groupOfUniqueNames]
      attributes: {displayName: cn}
      member_chunk_size: 500
      empty_member: cn=roster,ou=services,dc=example,dc=org   # default: bind_dn

`flavor: active_directory` writes to Active Directory (workers/connectors/ldap/ad.py says what it adds:
`users.password`, `users.must_change_password`, `groups.group_type`, `groups.group_scope`). Its defaults
differ: users are `[user, organizationalPerson, person, top]`, enabled and disabled through
`userAccountControl` (no `disable:` needed; `disable: {move_to: ...}` moves leavers too), groups are
`[group, top]` (that may be empty: no `empty_member`), members go in modifies of at most 1,000,
SelectUniqueValue searches the whole domain (`base_dn`), and an entry's target id is its `objectGUID`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from common.config.validation import as_list, as_mapping, check_keys, integer, join, string
from common.errors import ConfigError
from common.peers.ldap_link import LINK_KEYS, LinkSettings, parse_dn, parse_link
from common.peers.ldap_names import DnError, DnTemplate, split_dn
from workers.connectors.ldap import ad

_KEYS: Final = (*LINK_KEYS, "flavor", "base_dn", "pool_size", "users", "groups")
_FLAVORS: Final = ("openldap", "active_directory")
_KIND_KEYS: Final = ("dn", "object_classes", "attributes", "match", "base", "disable")
_GROUP_KEYS: Final = (
    "dn",
    "object_classes",
    "attributes",
    "match",
    "base",
    "member_chunk_size",
    "empty_member",
)
_DISABLE_KEYS: Final = ("attribute", "value", "enabled_value", "move_to")
_MEMBER_ATTRIBUTES: Final = {
    "groupofnames": "member",
    "groupofuniquenames": "uniqueMember",
    "group": "member",  # Active Directory's
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Disable:
    """How a disabled user looks: an attribute set to a value, a move under another OU, or both."""

    attribute: str | None = None
    value: str | None = None
    enabled_value: str | None = None
    move_to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KindSettings:
    """Users or groups: where their entries live and how operation attributes become LDAP attributes."""

    kind: str
    dn: DnTemplate
    object_classes: tuple[str, ...]
    attributes: Mapping[str, str]
    match: str
    base: str
    disable: Disable | None = None
    member_attribute: str | None = None
    member_chunk_size: int = 500
    empty_member: str = ""
    unique_base: str = ""
    """Where SelectUniqueValue looks for a value's holders: `base`, or the whole domain in AD."""

    def ldap_name(self, name: str) -> str:
        return self.attributes.get(name, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class LdapSettings:
    """A validated LDAP target; its repr hides the bind password."""

    link: LinkSettings
    base_dn: str
    pool_size: int = 4
    users: KindSettings | None = None
    groups: KindSettings | None = None
    active_directory: ad.AdSettings | None = None
    """Set by `flavor: active_directory`."""
    path: str = field(default="", compare=False)


def parse_ldap_settings(path: str, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> LdapSettings:
    """Validate an LDAP target's own settings (found at `path`), or raise `ConfigError` naming the key."""
    raw = as_mapping(path, raw)
    check_keys(path, raw, _KEYS, required=("url", "bind_dn", "bind_password", "base_dn"))

    def at(key: str) -> str:
        return join(path, key)

    link = parse_link(path, raw, base_dir=base_dir)
    base_dn = parse_dn(at("base_dn"), raw["base_dn"])
    if raw.get("users") is None and raw.get("groups") is None:
        raise ConfigError(path, "has neither `users:` nor `groups:`", "add `users:` with at least `dn:`")
    flavor = string(at("flavor"), raw.get("flavor", "openldap"))
    if flavor not in _FLAVORS:
        raise ConfigError(at("flavor"), f"is {flavor!r}", "openldap (the default) or active_directory")
    active = flavor == "active_directory"
    raw_users = as_mapping(at("users"), raw["users"]) if raw.get("users") is not None else None
    raw_groups = as_mapping(at("groups"), raw["groups"]) if raw.get("groups") is not None else None
    users = _kind(at("users"), raw_users, "user", base_dn, link.bind_dn, active)
    groups = _kind(at("groups"), raw_groups, "group", base_dn, link.bind_dn, active)
    return LdapSettings(
        link=link,
        base_dn=base_dn,
        pool_size=integer(at("pool_size"), raw.get("pool_size", 4), minimum=1),
        users=users,
        groups=groups,
        active_directory=ad.parse_ad(path, raw_users, raw_groups, link) if active else None,
        path=path,
    )


def _kind(path: str, raw: Any, kind: str, base_dn: str, bind_dn: str, active: bool) -> KindSettings | None:
    if raw is None:
        return None
    raw = as_mapping(path, raw)
    keys: tuple[str, ...] = _KIND_KEYS if kind == "user" else _GROUP_KEYS
    if active:
        keys = (*keys, *(ad.USER_KEYS if kind == "user" else ad.GROUP_KEYS))
        keys = tuple(k for k in keys if k != "empty_member")
    check_keys(path, raw, keys, required=("dn",))
    try:
        template = DnTemplate(string(join(path, "dn"), raw["dn"]))
    except DnError as exc:
        raise ConfigError(
            join(path, "dn"), str(exc), "e.g. uid={userName},ou=people,dc=example,dc=org"
        ) from None
    default_classes = ["inetOrgPerson"] if kind == "user" else ["groupOfNames"]
    if active:
        default_classes = list(ad.USER_CLASSES if kind == "user" else ad.GROUP_CLASSES)
    classes = tuple(
        string(join(join(path, "object_classes"), i), c)
        for i, c in enumerate(
            as_list(join(path, "object_classes"), raw.get("object_classes", default_classes))
        )
    )
    if not classes:
        raise ConfigError(join(path, "object_classes"), "is empty", f"e.g. [{default_classes[0]}]")
    attributes = as_mapping(join(path, "attributes"), raw.get("attributes") or {})
    mapped = {str(k): string(join(join(path, "attributes"), str(k)), v) for k, v in attributes.items()}
    rdn_type = split_dn(template.text.replace("{", "").replace("}", ""))[0][0][0]
    member = None
    if kind == "group":
        found = [_MEMBER_ATTRIBUTES[c.lower()] for c in classes if c.lower() in _MEMBER_ATTRIBUTES]
        if len(found) != 1:
            raise ConfigError(
                join(path, "object_classes"),
                "must hold exactly one of groupOfNames, groupOfUniqueNames and group",
                "e.g. [groupOfNames]",
            )
        member = found[0]
    chunk = integer(
        join(path, "member_chunk_size"),
        raw.get("member_chunk_size", ad.MEMBER_CHUNK_MAX if active else 500),
        minimum=1,
    )
    if active and chunk > ad.MEMBER_CHUNK_MAX:
        raise ConfigError(
            join(path, "member_chunk_size"), f"is {chunk}", f"at most {ad.MEMBER_CHUNK_MAX} for AD"
        )
    base = parse_dn(join(path, "base"), raw.get("base", base_dn))
    return KindSettings(
        kind=kind,
        dn=template,
        object_classes=classes,
        attributes=mapped,
        match=string(join(path, "match"), raw.get("match", rdn_type)),
        base=base,
        disable=_disable(join(path, "disable"), raw.get("disable"), active) if kind == "user" else None,
        member_attribute=member,
        member_chunk_size=chunk,
        empty_member="" if active else parse_dn(join(path, "empty_member"), raw.get("empty_member", bind_dn)),
        unique_base=base_dn if active else base,
    )


def _disable(path: str, raw: Any, active: bool) -> Disable | None:
    if raw is None:
        return Disable() if active else None  # AD: userAccountControl's bit, always
    raw = as_mapping(path, raw)
    check_keys(path, raw, ("move_to",) if active else _DISABLE_KEYS)
    attribute = string(join(path, "attribute"), raw["attribute"]) if "attribute" in raw else None
    move_to = parse_dn(join(path, "move_to"), raw["move_to"]) if "move_to" in raw else None
    if attribute is None and move_to is None and not active:
        raise ConfigError(
            path, "says neither `attribute:` nor `move_to:`", "e.g. {move_to: ou=disabled,dc=example,dc=org}"
        )
    value = raw.get("value")
    if attribute is not None and value is None:
        raise ConfigError(join(path, "value"), "is required with `attribute:`", "e.g. value: disabled")
    enabled = raw.get("enabled_value")
    return Disable(
        attribute=attribute,
        value=None if value is None else str(value),
        enabled_value=None if enabled is None else str(enabled),
        move_to=move_to,
    )
