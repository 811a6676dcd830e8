"""The LDAP connector for Active Directory (`flavor: active_directory`): the LDAP connector's matching,
idempotence, renames and chunks, with AD's accounts (workers/connectors/ldap/ad.py says its rules).

**Create** adds the user disabled (`userAccountControl` 514) and without a password, then in one modify
sets `unicodePwd`, `pwdLastSet: 0` when the user must change it, and enables the account (bits kept): the
order AD requires. A create that leaves the user disabled (`disabled`) sets the password and never
enables it (and adds it under `users.disable.move_to`, if set). When AD refuses the password (its
policy), the entry just added is deleted again, so that a retry starts clean, and the error says why. The
password (generated, or the operation's `password.attribute`, which is never written as an attribute)
appears in no log line, result or error.

**Identity.** The target id is `<GUID=...>` (the entry's `objectGUID`), which AD resolves as a DN: a move
to another OU (the DN template's parent changed, e.g. from `department`) changes no link, and AD rewrites
`member` itself. Groups' members are written by that id. **Disable** sets bit 2 of `userAccountControl`
(and moves the entry under `users.disable.move_to`, if set); an update clears it again, unless it leaves
the user disabled: it then sets the bit (and moves the entry there) with its attributes. **Delete** needs
no relinking: AD drops the links to a deleted entry. **Errors** are worded by `ad_errors`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import ldap3

from common.errors import ConnectorError, PermanentError
from common.peers.ldap_names import canonical_dn, escape_filter_value, first_rdn, parent_dn, same_dn
from queues.contracts import MEMBERS, Operation
from workers.connectors.base import Applied, Outcome
from workers.connectors.ldap import ad
from workers.connectors.ldap.ad_errors import worded
from workers.connectors.ldap.ad_members import add_ad_members, ranged_values, update_ad_members
from workers.connectors.ldap.connector import LdapConnector
from workers.connectors.ldap.plan import (
    Entry,
    Plan,
    disable_of,
    kind_settings,
    listed_name,
    listing_filter,
    plan_operation,
    to_entry,
)
from workers.connectors.ldap.pool import BROKEN_LINK, LdapFailure, Session
from workers.connectors.ldap.settings import KindSettings, LdapSettings

log = logging.getLogger("roster.connectors.ldap")
_WRITTEN_BY_US = frozenset({"unicodepwd", "userpassword", "useraccountcontrol", "pwdlastset", "objectguid"})
_LIST_PAGE = 500
_GUID_CHUNK = 100  # new entries whose GUIDs one search reads


class ActiveDirectoryConnector(LdapConnector):
    """Applies operations to one Active Directory domain; see the module docstring."""

    def __init__(self, name: str, settings: LdapSettings) -> None:
        super().__init__(name, settings)
        if settings.active_directory is None:
            raise ValueError("ActiveDirectoryConnector needs `flavor: active_directory` settings")
        self.ad = settings.active_directory

    def __repr__(self) -> str:
        return f"ActiveDirectoryConnector({self.name!r}, {self.settings.link.url})"

    # -- Planning ------------------------------------------------------------------------------------

    def _plan(self, op: Operation) -> Plan:
        password = None
        passwords = self.ad.passwords
        if passwords is not None and passwords.attribute is not None and passwords.attribute in op.attributes:
            attributes = dict(op.attributes)
            value = attributes.pop(passwords.attribute)
            password = None if value in (None, "") else str(value)
            op = dataclasses.replace(op, attributes=attributes)
        plan = plan_operation(op, self.settings)
        for name, values in list(plan.desired.items()):
            lowered = name.lower()
            if lowered in _WRITTEN_BY_US:
                raise PermanentError(
                    f"{name} is written by the connector (passwords through `users.password`, the account's "
                    "state through enable and disable); remove its mapping",
                    code="config",
                )
            if lowered == "samaccountname":
                for value in values:
                    ad.check_sam_account_name(value)
            elif lowered == "accountexpires":
                plan.desired[name] = [ad.account_expires(values[0] if values else None)]
        return dataclasses.replace(plan, password=password) if password else plan

    def _read_names(self, kind: KindSettings, plans: Sequence[Plan]) -> list[str]:
        names = super()._read_names(kind, plans)
        extra = [ad.GUID, ad.UAC, "pwdLastSet"] if kind.kind == "user" else [ad.GUID]
        return sorted({*names, *extra})

    def _target_id(self, entry: Entry) -> str:
        guid = entry[1].get("objectguid")
        return f"<GUID={guid[0]}>" if guid else entry[0]

    # -- Writes --------------------------------------------------------------------------------------

    def _new_entry(self, plan: Plan) -> tuple[dict[str, list[Any]], list[str]]:
        attributes, additions = super()._new_entry(plan)
        if plan.kind.kind == "user":
            attributes[ad.UAC] = [str(ad.disabled(None))]  # no password yet: AD wants it disabled
        else:
            attributes.setdefault("groupType", [str(self.ad.group_type)])
        return attributes, additions

    def _added(self, session: Session, plan: Plan, dn: str, additions: list[str]) -> str:
        if plan.kind.kind == "user":
            self._set_first_password(session, plan, dn)
        else:
            add_ad_members(session, plan.kind, dn, additions)
        return dn  # its GUID is read with the chunk's other new entries (`_apply_planned`)

    def _apply_planned(
        self, session: Session, plans: list[Plan | None], outcomes: list[Outcome | None]
    ) -> list[Outcome]:
        """The chunk applied; the entries it added (whose outcome holds a DN) then get their GUIDs in
        one search, not one read each."""
        done = super()._apply_planned(session, plans, outcomes)
        added = [
            o.target_id
            for o in done
            if isinstance(o, Applied) and o.target_id and not ad.is_guid_id(o.target_id)
        ]
        if not added:
            return done
        guids: dict[str, str] = {}
        try:
            for start in range(0, len(added), _GUID_CHUNK):
                chunk = added[start : start + _GUID_CHUNK]
                terms = "".join(f"(distinguishedName={escape_filter_value(dn)})" for dn in chunk)
                for dn, raw in session.search(self.settings.base_dn, f"(|{terms})", [ad.GUID]):
                    guids[canonical_dn(dn)] = self._target_id(to_entry(dn, raw))
        except (LdapFailure, *BROKEN_LINK) as exc:  # the DN names the entry too, until it moves
            session.broken = not isinstance(exc, LdapFailure)
            log.warning("event=ad_guids_unread target=%s error=%s", self.name, type(exc).__name__)
        return [
            Applied(guids.get(canonical_dn(o.target_id), o.target_id))
            if isinstance(o, Applied) and o.target_id and not ad.is_guid_id(o.target_id)
            else o
            for o in done
        ]

    def _set_first_password(self, session: Session, plan: Plan, dn: str) -> None:
        """Password, then enable, in one modify (its changes apply in order); undo the add if refused.
        A user the operation leaves disabled gets its password and stays disabled."""
        passwords = self.ad.passwords
        if passwords is None:
            return  # created disabled: AD enables no account without a password
        password = plan.password or (ad.generated_password(passwords.length) if passwords.generate else None)
        if password is None:
            raise PermanentError(
                f"no initial password: the user's {passwords.attribute!r} is empty; map it, "
                "or use `password: {generate: true}`",
                code="invalid_value",
            )
        changes: dict[str, list[tuple[str, list[Any]]]] = {
            "unicodePwd": [(ldap3.MODIFY_REPLACE, [ad.password_value(password)])]
        }
        del password
        if passwords.must_change:
            changes["pwdLastSet"] = [(ldap3.MODIFY_REPLACE, ["0"])]
        if not plan.op.disabled:
            changes[ad.UAC] = [(ldap3.MODIFY_REPLACE, [str(ad.enabled(ad.disabled(None)))])]
        try:
            session.modify(dn, changes)
        except LdapFailure:
            session.delete(dn)  # a retry adds it again, rather than meet an account without a password
            raise

    def _enable(self, kind: KindSettings, current: Entry, desired: dict[str, list[str]]) -> None:
        attributes = current[1]
        now = attributes.get("useraccountcontrol")
        uac = int(now[0]) if now else None
        if self.ad.passwords is None and attributes.get("pwdlastset", ["1"])[0] == "0" and uac:
            return  # no password was ever set: AD would refuse to enable it
        desired[ad.UAC] = [str(ad.enabled(uac))]

    def _disabled_state(
        self, kind: KindSettings, current: Entry | None, desired: dict[str, list[Any]]
    ) -> None:
        """Bit 2 of `userAccountControl` set, the others kept; a new entry is added disabled already."""
        if current is not None:
            now = current[1].get("useraccountcontrol")
            desired[ad.UAC] = [str(ad.disabled(int(now[0]) if now else None))]

    def _update_members(self, session: Session, kind: KindSettings, dn: str, op: Operation) -> None:
        update_ad_members(session, kind, dn, op)

    def _moved_before(self, session: Session, old: str, new: str) -> None:
        """Nothing to relink: the target id is the GUID, and AD rewrites `member` itself."""

    def _disable(self, session: Session, plan: Plan) -> Outcome:
        move_to = disable_of(plan.kind).move_to
        located = self._located(session, plan)
        found = session.read(located, [ad.UAC, ad.GUID]) if located else None
        if found is None:
            return Applied(None)  # nothing left to disable
        dn, attributes = to_entry(*found)
        now = attributes.get("useraccountcontrol")
        uac = int(now[0]) if now else None
        if uac != ad.disabled(uac):
            session.modify(dn, {ad.UAC: [(ldap3.MODIFY_REPLACE, [str(ad.disabled(uac))])]})
        if move_to is not None and not same_dn(parent_dn(dn), move_to):
            session.rename(dn, first_rdn(dn), move_to)
        return Applied(self._target_id((dn, attributes)))

    def _delete(self, session: Session, plan: Plan) -> Outcome:
        located = self._located(session, plan)
        if located is None or not session.delete(located):
            return Applied(None)  # no such object: done
        return Applied(located)

    def _redacted(self, error: ConnectorError) -> ConnectorError:
        return worded(super()._redacted(error))

    # -- Listing -------------------------------------------------------------------------------------

    async def list_objects(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[list[Any]]]:
        """Every entry of the kind, its id the `<GUID=...>`, a group's members by theirs (all ranges)."""
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"{self!r} is not open")
        kind = kind_settings(object_type, self.settings)
        names = list(dict.fromkeys([ad.GUID, *(listed_name(kind, name) for name in fields)]))

        def page(session: Session) -> list[list[tuple[str, dict[str, list[Any]]]]]:
            query = listing_filter(kind)
            if kind.kind == "user":  # not computers, which are users too
                query = f"(&(objectCategory=person){query})"
            pages = session.search_paged(kind.base, query, names, size=_LIST_PAGE)
            return [[self._listed(session, kind, dn, raw) for dn, raw in entries] for entries in pages]

        try:
            pages = await pool.run(page)
        except LdapFailure as failure:
            raise self._redacted(failure.error()) from None
        for entries in pages:
            if entries:
                yield [self._row(kind, fields, dn, raw) for dn, raw in entries]

    @staticmethod
    def _listed(
        session: Session, kind: KindSettings, dn: str, raw: dict[str, list[Any]]
    ) -> tuple[str, dict[str, list[Any]]]:
        """An entry with its members (if a group's are listed) read whole, by GUID."""
        if kind.member_attribute is None or not any(n.lower().startswith("member") for n in raw):
            return dn, raw
        values = ranged_values(session, dn, "member", extended=True) or []
        members = [ad.extended_guid(v) or v.rsplit(">;", 1)[-1] for v in values]
        kept = {n: v for n, v in raw.items() if not n.lower().startswith("member")}
        return dn, {**kept, "member": members}

    def _row(
        self, kind: KindSettings, fields: Sequence[str], dn: str, raw: dict[str, list[Any]]
    ) -> list[Any]:
        entry = to_entry(dn, raw)
        row: list[Any] = [self._target_id(entry)]
        for name in fields:
            values = entry[1].get(listed_name(kind, name).lower(), [])
            if name == MEMBERS and kind.member_attribute is not None:
                row.append(values)
                continue
            row.append(None if not values else values[0] if len(values) == 1 else values)
        return row
