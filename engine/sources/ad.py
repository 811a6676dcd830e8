"""What reading Active Directory takes beyond LDAP: the DC and its USN, ranged attributes, tombstones.

**Update sequence numbers.** Each DC numbers the changes it commits (`uSNChanged` on each object,
`highestCommittedUSN` on its rootDSE); the numbers are the DC's own, so a watermark is `usn:<the DC's
invocationId>:<USN>` (`UsnWatermark`). A read takes `highestCommittedUSN` *before* it searches and
leaves that as the next watermark: a change committed while it reads has a higher USN and is read
again next time (harmless: the hash diff finds it unchanged), never lost. A watermark of another DC (a
failover, or a DC restored from a backup, which gets a new invocationId) means nothing here: read in full.

**Ranged attributes.** AD returns at most MaxValRange (1500) values of a multi-valued attribute per
entry, as `member;range=0-1499`; the rest must be asked for, entry by entry, as `member;range=1500-*`
until a range ends in `*` (`read_ranges`). ldap3's own `auto_range` is turned off on these connections:
it gives up silently when a range search fails, and a group read without some of its members would
have them removed.

**Tombstones.** A deleted object moves to `CN=Deleted Objects` of its naming context as a tombstone
(`isDeleted: TRUE`, its `objectGUID`, `objectSid` and `lastKnownParent` kept) and is seen only with the
Show Deleted control (`tombstones`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import ldap3

from common.peers.ldap_names import dn_key
from engine.sources.ad_values import guid_text

SHOW_DELETED: Final = "1.2.840.113556.1.4.417"
"""LDAP_SERVER_SHOW_DELETED_OID: a search sees tombstones too."""
_RANGE: Final = re.compile(r"^(?P<name>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)


class AdError(Exception):
    """The DC answered a search in a way that cannot be used (the caller words it as a SourceError)."""


@dataclass(frozen=True, slots=True)
class UsnWatermark:
    """Where an incremental read of one DC starts: the changes that DC committed after `usn`."""

    dc: str
    """The DC's invocationId (a GUID's text)."""
    usn: int

    def __str__(self) -> str:
        return f"usn:{self.dc}:{self.usn}"

    @classmethod
    def parse(cls, text: str | None) -> UsnWatermark | None:
        """A watermark this module wrote; None for anything else (a `modifyTimestamp`, nothing)."""
        if not text or not text.startswith("usn:"):
            return None
        dc, _, usn = text[4:].rpartition(":")
        return cls(dc, int(usn)) if dc and usn.isdigit() else None


@dataclass(frozen=True, slots=True)
class DomainController:
    """The DC a connection reached, as its rootDSE says when a read starts."""

    invocation_id: str
    highest_usn: int
    naming_context: str
    """Its `defaultNamingContext` (the domain's DN), where `CN=Deleted Objects` is."""


def search(
    conn: ldap3.Connection,
    base: str,
    search_filter: str,
    names: list[str],
    *,
    scope: str = ldap3.BASE,
    controls: list[tuple[str, bool, Any]] | None = None,
) -> list[tuple[str, dict[str, list[bytes]]]]:
    """One search that is not paged; the entries as (DN, raw attributes). Raises `AdError`."""
    try:
        conn.search(base, search_filter, search_scope=scope, attributes=names, controls=controls)
    except (ldap3.core.exceptions.LDAPException, OSError) as exc:
        raise AdError(f"the search of {base} failed: {type(exc).__name__}: {exc}") from None
    if conn.result.get("result") != 0:
        raise AdError(
            f"the search of {base} failed: {conn.result.get('description')}: {conn.result.get('message')}"
        )
    return [
        (item["dn"], item.get("raw_attributes", {}))
        for item in conn.response or ()
        if item.get("type") == "searchResEntry"
    ]


def domain_controller(conn: ldap3.Connection) -> DomainController:
    """The DC `conn` reached: its invocationId (from its NTDS Settings object), the highest USN it has
    committed, and its domain's DN."""
    root = search(
        conn, "", "(objectClass=*)", ["dsServiceName", "highestCommittedUSN", "defaultNamingContext"]
    )
    attributes = _lower(root[0][1]) if root else {}
    try:
        service = attributes["dsservicename"][0].decode()
        usn = int(attributes["highestcommittedusn"][0])
        context = attributes["defaultnamingcontext"][0].decode()
    except (KeyError, IndexError, ValueError):
        raise AdError(
            "its rootDSE has no dsServiceName, highestCommittedUSN or defaultNamingContext: "
            "is it an Active Directory domain controller?"
        ) from None
    settings = search(conn, service, "(objectClass=*)", ["invocationId"])
    ids = _lower(settings[0][1]).get("invocationid") if settings else None
    if not ids:
        raise AdError(f"{service} has no invocationId")
    return DomainController(guid_text(ids[0]), usn, context)


def ranged_name(name: str, size: int) -> str:
    """The name that asks for the first `size` values of multi-valued attribute `name`."""
    return f"{name};range=0-{size - 1}"


def read_ranges(
    conn: ldap3.Connection, dn: str, raw: Mapping[str, list[bytes]], size: int
) -> dict[str, list[bytes]]:
    """`raw` with each ranged attribute (`member;range=0-1499`) read to its end and named plainly
    (`member`), asking for `size` values at a time. Raises `AdError` if a range cannot be read."""
    whole: dict[str, list[bytes]] = {}
    for key, values in raw.items():
        matched = _RANGE.match(key)
        if matched is None:
            whole[key] = values
            continue
        name, high = matched["name"], matched["high"]
        got = list(values or ())
        while high != "*":
            low = int(high) + 1
            entries = search(conn, dn, "(objectClass=*)", [f"{name};range={low}-{low + size - 1}"])
            found = [(k, v) for k, v in (entries[0][1] if entries else {}).items() if _RANGE.match(k)]
            if not found:
                raise AdError(
                    f"{dn}: the DC gave no {name};range={low}-... (values from {low} on are missing)"
                )
            ranged_key, more = found[0]
            high = _RANGE.match(ranged_key)["high"]  # type: ignore[index]  # matched just above
            got.extend(more or ())
        whole[name] = got
    return whole


def tombstone_filter(after_usn: int) -> str:
    """The objects deleted (their tombstones, seen with `SHOW_DELETED`) after `after_usn`."""
    return f"(&(isDeleted=TRUE)(uSNChanged>={after_usn + 1}))"


def in_scope(parent: str, base: str, *, one_level: bool) -> bool:
    """Whether an entry whose parent was `parent` (a tombstone's `lastKnownParent`) was in the scope
    of a search under `base` (subtree, or `one_level`)."""
    rdns, base_rdns = dn_key(parent), dn_key(base)
    depth = len(rdns) - len(base_rdns)
    return rdns[max(depth, 0) :] == base_rdns and (depth == 0 if one_level else depth >= 0)


def _lower(raw: Mapping[str, list[bytes]]) -> dict[str, list[bytes]]:
    return {k.lower(): v for k, v in raw.items()}
