"""Whether an LDAP server takes Roster's bind, and holds the entries it is told to work under: a bind
and a base-scope search per DN, which read nothing but their existence; and the names its schema
knows (`read_schema`). Synchronous, as ldap3 is: run them in a thread (`check_ldap` does).
`roster validate --connect` asks them of LDAP sources and targets."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ldap3

from common.config.validation import join
from common.errors import ConfigError
from common.peers.ldap_connect import LinkError, close_connection, link_failure, open_connection, server_said
from common.peers.ldap_link import LinkSettings

_NO_SUCH_OBJECT = 32
_NAMES = re.compile(r"\bNAME\s+(?:'([^']+)'|\(([^)]*)\))")


@dataclass(frozen=True, slots=True)
class LdapSchema:
    """The attribute types and object classes the server's subschema names, in lower case."""

    attribute_types: frozenset[str]
    object_classes: frozenset[str]
    names: tuple[str, ...]
    """The attribute types as the schema writes them, for a "did you mean"."""


@dataclass(frozen=True, slots=True)
class LdapProbe:
    """`failure`: why no bound connection could be had (None: bound); `missing`: the DNs not found."""

    failure: str | None = None
    missing: tuple[str, ...] = field(default=())
    unreadable: tuple[tuple[str, str], ...] = field(default=())
    """DNs whose search failed otherwise, with what the server said."""


def probe_ldap(link: LinkSettings, dns: Sequence[str]) -> LdapProbe:
    """Bind as `link` says, then look each of `dns` up; never says the password."""
    try:
        conn = open_connection(link)
    except LinkError as failed:
        return LdapProbe(failure=link_failure(link, failed))
    missing: list[str] = []
    unreadable: list[tuple[str, str]] = []
    try:
        for dn in dict.fromkeys(dns):
            if conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["1.1"]):
                continue
            if conn.result.get("result") == _NO_SUCH_OBJECT:
                missing.append(dn)
            else:
                unreadable.append((dn, server_said(conn.result)))
    finally:
        close_connection(conn)
    return LdapProbe(missing=tuple(missing), unreadable=tuple(unreadable))


def read_schema(link: LinkSettings) -> LdapSchema | None:
    """The server's schema (RFC 4512 §4.2: the root DSE's `subschemaSubentry`); None when it cannot be
    bound to or read."""
    try:
        conn = open_connection(link)
    except LinkError:
        return None
    try:
        if not conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["subschemaSubentry"]):
            return None
        entry = (conn.response or [{}])[0].get("attributes", {})
        subschema = next(iter(entry.get("subschemaSubentry") or []), None)
        wanted = ["attributeTypes", "objectClasses"]
        if not subschema or not conn.search(
            subschema, "(objectClass=subschema)", search_scope=ldap3.BASE, attributes=wanted
        ):
            return None
        found = (conn.response or [{}])[0].get("raw_attributes", {})
    finally:
        close_connection(conn)
    types = _names(found.get("attributeTypes") or [])
    classes = _names(found.get("objectClasses") or [])
    if not types:
        return None
    return LdapSchema(
        attribute_types=frozenset(n.lower() for n in types),
        object_classes=frozenset(n.lower() for n in classes),
        names=tuple(types),
    )


def _names(definitions: Sequence[bytes]) -> list[str]:
    """The NAMEs of schema definitions such as `( 2.5.4.3 NAME ( 'cn' 'commonName' ) ... )`."""
    names: list[str] = []
    for definition in definitions:
        found = _NAMES.search(definition.decode("utf-8", "replace"))
        if found:
            names += [found[1]] if found[1] else re.findall(r"'([^']+)'", found[2])
    return names


async def check_ldap(path: str, link: LinkSettings, bases: Mapping[str, str]) -> list[ConfigError]:
    """The problems of the server at `path` (its settings' path): the bind, and each DN of `bases`
    (the path of its setting -> the DN); the probe runs in a thread."""
    found = await asyncio.to_thread(probe_ldap, link, list(bases.values()))
    if found.failure is not None:
        return [ConfigError(join(path, "url"), found.failure, "check url, bind_dn and bind_password")]
    problems = []
    unreadable = dict(found.unreadable)
    for where, dn in bases.items():
        if dn in found.missing:
            problems.append(ConfigError(where, f"{dn!r} does not exist", "create the entry, or fix the DN"))
        elif dn in unreadable:
            said = unreadable[dn]
            problems.append(ConfigError(where, f"{dn!r} cannot be read: {said}", "check the bind's rights"))
    return problems
