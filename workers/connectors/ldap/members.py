"""Group members in the LDAP target: added and removed in chunks, kept non-empty, relinked on renames.

Members (DNs) go in modifies of `member_chunk_size` values, sent without reading the group; only when the
server refuses a chunk because a value is already there (or already gone: a redelivery) are the members
read, once, and the rest filtered. A group must keep a member: `empty_member` (by default the bind DN)
stands in while it has none. When a user is renamed or deleted, the groups that list its old DN are
relinked (a server with the refint overlay has done it already).

A group operation planned before a rename's result came in removes the member's *old* DN, which the
rename has already rewritten. `Moves` remembers the renames this connector made, so such a removal also
removes the DN the entry moved to; the engine checks again, at the member's current DN, what another
worker's rename made it miss (see `engine.core.membership`).

Each function runs in a worker thread with the session it is given.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Final

import ldap3

from common.peers.ldap_names import dn_key, escape_filter_value
from queues.contracts import Operation
from workers.connectors.ldap.plan import chunks, to_entry
from workers.connectors.ldap.pool import NO_SUCH_ATTRIBUTE, OBJECT_CLASS_VIOLATION, VALUE_EXISTS, Session
from workers.connectors.ldap.settings import KindSettings

_MOVES_KEPT: Final = 10_000
_MOVES_FOLLOWED: Final = 8  # hops through renames of renames


class Moves:
    """The renames this connector made (old DN -> new DN), the latest `limit`; shared by its threads."""

    def __init__(self, limit: int = _MOVES_KEPT) -> None:
        self._limit = limit
        self._moved: OrderedDict[Any, str] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, old: str, new: str) -> None:
        with self._lock:
            self._moved[dn_key(old)] = new
            self._moved.move_to_end(dn_key(old))
            while len(self._moved) > self._limit:
                self._moved.popitem(last=False)

    def since(self, dn: str) -> list[str]:
        """The DNs the entry once at `dn` moved to, oldest first; none when it did not move."""
        found: list[str] = []
        seen = {dn_key(dn)}
        with self._lock:
            while len(found) < _MOVES_FOLLOWED and (new := self._moved.get(dn_key(dn))) is not None:
                if dn_key(new) in seen:
                    break
                seen.add(dn_key(new))
                found.append(new)
                dn = new
        return found


def add_members(session: Session, kind: KindSettings, dn: str, members: list[str]) -> None:
    """Add `members` to the group at `dn`, a chunk per modify."""
    present: set[Any] | None = None
    for chunk in chunks(members, kind.member_chunk_size):
        present = change_members(session, kind, dn, ldap3.MODIFY_ADD, chunk, present)


def update_members(
    session: Session, kind: KindSettings, dn: str, op: Operation, moves: Moves | None = None
) -> None:
    """Additions first (so the group never runs empty on the way), then removals, in chunks. A removed
    member missing from the group that `moves` says was renamed is removed under its new DN."""
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
    moved = {m: later for m in removals if moves is not None and (later := moves.since(m))}
    if moved:
        present = read_members(session, kind, dn)
        followed = [n for m, later in moved.items() if dn_key(m) not in present for n in later]
        removals = [m for m in dict.fromkeys([*removals, *followed]) if dn_key(m) not in keep]
    for chunk in chunks(removals, kind.member_chunk_size):
        present = change_members(session, kind, dn, ldap3.MODIFY_DELETE, chunk, present)


def read_members(session: Session, kind: KindSettings, dn: str) -> set[Any]:
    """The members of the group at `dn`, by `dn_key`."""
    attribute = kind.member_attribute or "member"
    found = session.read(dn, [attribute])
    values = to_entry(*found)[1].get(attribute.lower(), []) if found else []
    return {dn_key(v) for v in values}


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
        return change_members(session, kind, dn, how, members, read_members(session, kind, dn))
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
