"""Group members in the LDAP target: added and removed in chunks, kept non-empty, relinked on renames.

Members (DNs) go in modifies of `member_chunk_size` values, sent without reading the group; only when the
server refuses a chunk because a value is already there (or already gone: a redelivery) are the members
read, once, and the rest filtered. A group must keep a member: `empty_member` (by default the bind DN)
stands in while it has none. When a user is renamed or deleted, the groups that list its old DN are
relinked (a server with the refint overlay has done it already).

Each function runs in a worker thread with the session it is given.
"""

from __future__ import annotations

from typing import Any

import ldap3

from common.peers.ldap_names import dn_key, escape_filter_value
from queues.contracts import Operation
from workers.connectors.ldap.plan import chunks, to_entry
from workers.connectors.ldap.pool import NO_SUCH_ATTRIBUTE, OBJECT_CLASS_VIOLATION, VALUE_EXISTS, Session
from workers.connectors.ldap.settings import KindSettings


def add_members(session: Session, kind: KindSettings, dn: str, members: list[str]) -> None:
    """Add `members` to the group at `dn`, a chunk per modify."""
    present: set[Any] | None = None
    for chunk in chunks(members, kind.member_chunk_size):
        present = change_members(session, kind, dn, ldap3.MODIFY_ADD, chunk, present)


def update_members(session: Session, kind: KindSettings, dn: str, op: Operation) -> None:
    """Additions first (so the group never runs empty on the way), then removals, in chunks."""
    additions = list(dict.fromkeys(op.members_add))
    keep = {dn_key(m) for m in additions}
    removals = [m for m in dict.fromkeys(op.members_remove) if dn_key(m) not in keep]
    present: set[Any] | None = None
    for chunk in chunks(additions, kind.member_chunk_size):
        present = change_members(session, kind, dn, ldap3.MODIFY_ADD, chunk, present)
    if additions and dn_key(kind.empty_member) not in keep:  # the stand-in leaves, if it was in
        attribute = kind.member_attribute or "member"
        change = {attribute: [(ldap3.MODIFY_DELETE, [kind.empty_member])]}
        session.modify(dn, change, ok=(NO_SUCH_ATTRIBUTE,))
        if present is not None:
            present.discard(dn_key(kind.empty_member))
    for chunk in chunks(removals, kind.member_chunk_size):
        present = change_members(session, kind, dn, ldap3.MODIFY_DELETE, chunk, present)


def relink(session: Session, groups: KindSettings | None, old: str, new: str | None) -> None:
    """Replace `old` by `new` (or remove it) in every group that lists it."""
    if groups is None or groups.member_attribute is None:
        return
    query = f"({groups.member_attribute}={escape_filter_value(old)})"
    for group_dn, _ in session.search(groups.base, query, ["1.1"]):
        if new is not None:
            change_members(session, groups, group_dn, ldap3.MODIFY_ADD, [new], None)
        change_members(session, groups, group_dn, ldap3.MODIFY_DELETE, [old], None)


def change_members(
    session: Session,
    kind: KindSettings,
    dn: str,
    how: str,
    members: list[str],
    present: set[Any] | None,
) -> set[Any] | None:
    """Add or delete `members` in one modify, without reading the group first. When some value is
    already there (or already gone) the server refuses the whole modify: the members are then read
    once (`present`, returned for the next chunks) and only the missing change is sent."""
    attribute = kind.member_attribute or "member"
    adding = how == ldap3.MODIFY_ADD
    if present is not None:
        members = [m for m in members if (dn_key(m) in present) != adding]
        if not members:
            return present
    blind = (VALUE_EXISTS, NO_SUCH_ATTRIBUTE) if present is None else ()
    code = session.modify(dn, {attribute: [(how, members)]}, ok=(*blind, OBJECT_CLASS_VIOLATION))
    if code in blind:
        found = session.read(dn, [attribute])
        values = to_entry(*found)[1].get(attribute.lower(), []) if found else []
        return change_members(session, kind, dn, how, members, {dn_key(v) for v in values})
    if code == OBJECT_CLASS_VIOLATION:  # that would empty the group: the stand-in keeps it valid
        stand_in = [(ldap3.MODIFY_ADD, [kind.empty_member]), (ldap3.MODIFY_DELETE, members)]
        session.modify(dn, {attribute: stand_in})
        if present is not None:
            present.add(dn_key(kind.empty_member))
    if present is not None:
        keys = {dn_key(m) for m in members}
        if adding:
            present |= keys
        else:
            present -= keys
    return present
