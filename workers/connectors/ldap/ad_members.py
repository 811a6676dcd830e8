"""Group members in Active Directory: written by `<GUID=...>` (or DN) in modifies of at most 1,000 values,
and read back whole through ranged reads.

AD returns at most 1,500 values of `member` per read (`member;range=0-1499`) and the client asks for the
next range until one ends in `*`; the reads here ask for ranges of 1,500 themselves (Samba would send all
values at once), with ldap3's own range-following turned off so that one code path reads both. Members
are read with the extended DN control, so each value carries its entry's GUID beside its DN
(`<GUID=hex>;<SID=hex>;CN=...`): a member is then known whichever way it was written. AD keeps `member`
right by itself when an entry moves or is deleted, so nothing is relinked; and a group may be empty, so no
stand-in member is needed.

As in members.py, a chunk is sent without reading the group first; only when AD refuses it because a
value is already there (entryAlreadyExists, 68, for a link) or already gone are the members read, once,
and the rest filtered. Each function runs in a worker thread with the session it is given.
"""

from __future__ import annotations

import re
from typing import Any, Final

import ldap3

from common.peers.ldap_names import DnError, canonical_dn
from queues.contracts import Operation
from workers.connectors.ldap.ad import extended_guid, is_guid_id
from workers.connectors.ldap.plan import chunks
from workers.connectors.ldap.pool import (
    ALREADY_EXISTS,
    NO_SUCH_ATTRIBUTE,
    NO_SUCH_OBJECT,
    VALUE_EXISTS,
    LdapFailure,
    Session,
)
from workers.connectors.ldap.settings import KindSettings

EXTENDED_DN: Final = "1.2.840.113556.1.4.529"
"""LDAP_SERVER_EXTENDED_DN_OID: DN values come as `<GUID=...>;<SID=...>;DN`."""
_RANGE: Final = re.compile(r";range=(\d+)-(\d+|\*)$", re.IGNORECASE)
RANGE_SIZE: Final = 1500
_UNWILLING: Final = 53  # what AD answers to the removal of a value that is not there, at times


def member_key(value: str) -> str:
    """One key per member, whether written as `<GUID=...>` or as a DN."""
    if is_guid_id(value):
        return value.lower()
    try:
        return canonical_dn(value)
    except DnError:
        return value.casefold()


def ranged_values(session: Session, dn: str, attribute: str, *, extended: bool = False) -> list[str] | None:
    """Every value of `attribute` of the entry at `dn`, range after range; None when there is no entry."""
    controls = [(EXTENDED_DN, False, None)] if extended else None
    values: list[str] = []
    start = 0
    conn = session.conn
    following, conn.auto_range = conn.auto_range, False
    try:
        while True:
            wanted = f"{attribute};range={start}-{start + RANGE_SIZE - 1}"
            conn.search(
                dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[wanted], controls=controls
            )
            chunk, last = _one_range(conn, dn, attribute)
            if chunk is None:
                return None
            values += chunk
            if last is None:
                return values
            start = last + 1
    finally:
        conn.auto_range = following


def _one_range(conn: ldap3.Connection, dn: str, attribute: str) -> tuple[list[str] | None, int | None]:
    """The values of the last ranged read, and the last index it covered (None after the last range)."""
    code = conn.result.get("result", 80)
    if code == NO_SUCH_OBJECT:
        return None, None
    if code != 0:
        raise LdapFailure(f"read of {dn}'s {attribute}", conn.result)
    found = [item for item in conn.response or () if item.get("type") == "searchResEntry"]
    if not found:
        return None, None
    raw: dict[str, list[Any]] = found[0].get("raw_attributes", {})
    ranged = [(name, vals) for name, vals in raw.items() if name.lower().startswith(attribute.lower())]
    if not ranged:
        return [], None
    name, chunk = ranged[0]
    values = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in chunk]
    bounds = _RANGE.search(name)
    return values, None if bounds is None or bounds[2] == "*" else int(bounds[2])


def read_member_keys(session: Session, dn: str) -> set[str]:
    """The members of the group at `dn`, each by both its `<GUID=...>` and its DN key."""
    keys: set[str] = set()
    for value in ranged_values(session, dn, "member", extended=True) or []:
        guid = extended_guid(value)
        if guid is not None:
            keys.add(guid.lower())
        keys.add(member_key(value.rsplit(">;", 1)[-1]))
    return keys


def update_ad_members(session: Session, kind: KindSettings, dn: str, op: Operation) -> None:
    """Additions first, then removals, each in modifies of `member_chunk_size` values."""
    additions = list(dict.fromkeys(op.members_add))
    keep = {member_key(m) for m in additions}
    removals = [m for m in dict.fromkeys(op.members_remove) if member_key(m) not in keep]
    present: set[str] | None = None
    for chunk in chunks(additions, kind.member_chunk_size):
        present = change(session, dn, ldap3.MODIFY_ADD, chunk, present)
    for chunk in chunks(removals, kind.member_chunk_size):
        present = change(session, dn, ldap3.MODIFY_DELETE, chunk, present)


def add_ad_members(session: Session, kind: KindSettings, dn: str, members: list[str]) -> None:
    present: set[str] | None = None
    for chunk in chunks(members, kind.member_chunk_size):
        present = change(session, dn, ldap3.MODIFY_ADD, chunk, present)


def change(
    session: Session, dn: str, how: str, members: list[str], present: set[str] | None
) -> set[str] | None:
    """Add or delete `members` in one modify; when AD refuses it for a value already there (or gone),
    read the members once (returned for the next chunks) and send only the change still missing."""
    adding = how == ldap3.MODIFY_ADD
    if present is not None:
        members = [m for m in members if (member_key(m) in present) != adding]
        if not members:
            return present
    blind = (ALREADY_EXISTS, VALUE_EXISTS, NO_SUCH_ATTRIBUTE, _UNWILLING) if present is None else ()
    code = session.modify(dn, {"member": [(how, members)]}, ok=blind)
    if code in blind and code != 0:
        return change(session, dn, how, members, read_member_keys(session, dn))
    if present is not None:
        keys = {member_key(m) for m in members}
        if adding:
            present |= keys
        else:
            present -= keys
    return present
