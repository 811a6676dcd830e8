"""The LDAP connector: users as `inetOrgPerson`, groups as `groupOfNames` or `groupOfUniqueNames`, via ldap3.

**Names.** An entry's DN comes from a template such as `uid={userName},ou=people,dc=example,dc=org`, whose
fields are the operation's attributes, escaped per RFC 4514. Operation attributes become LDAP attributes
through `attributes:` (`{userName: uid}`); a name not listed there is already an LDAP attribute.

**Idempotence.** Every create and update first finds its entry by a search on the matching attribute under
the search base (values escaped per RFC 4515); the creates and updates of a chunk are matched in one search
(`(|(uid=a)(uid=b)...)`), so matching costs one round trip per chunk rather than per operation. Not found
by value, an update falls back to its `target_id` (the DN). A redelivered create therefore updates; an add
that meets an existing DN (code 68) updates that entry if it is the same object, and fails otherwise; two
entries with one matching value are a `PermanentError`, never a guess. A delete of a missing entry, and a
disable of one, count as done.

**Writes.** Create is an add with the configured object classes. Update modifies only the attributes whose
values differ (as sets) from the entry just read, and adds missing object classes. When the rendered DN
differs from the entry's, the entry is renamed first (modify DN, to a new parent if the template's parent
changed): the result carries the new DN, and the groups that listed the old DN are relinked. Disable sets
an attribute to a value, or moves the entry under another OU, or both; an update re-enables (the attribute
is reset, the template's DN moves it back). A create or an update that leaves a user disabled (`disabled`)
does the same in its own writes: the add carries the disabled value and, where disabling moves entries,
adds the entry under `move_to` already (the template's RDN there, where a disable would have moved it),
so that it is never enabled, not even for a moment; an update sets the value and moves the entry there
rather than back. A kind that cannot be disabled (a group, users without `disable:`) fails such an
operation before it writes. Group members come from `members_add`/`members_remove` (DNs).

**Errors.** Busy, unavailable, server down and timeouts are `TransientError`; constraint and object class
violations, insufficient access, invalid syntax and the rest are `PermanentError` with the server's message.
The bind password appears in no message and no repr.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

import ldap3

from common.errors import ConnectorError, PermanentError
from common.peers.ldap_names import first_rdn, parent_dn, rdn_values, same_dn
from queues.contracts import Operation
from workers.connectors.base import Applied, AsyncContextConnector, Outcome
from workers.connectors.ldap.members import Moves, add_members, relink, update_members
from workers.connectors.ldap.plan import (
    Entry,
    Plan,
    disable_of,
    disabled_dn,
    dn_as_written,
    entry_changes,
    kind_settings,
    listed_name,
    listing_fields,
    listing_filter,
    listing_row,
    match_filter,
    plan_operation,
    read_names,
    to_entry,
)
from workers.connectors.ldap.pool import (
    ALREADY_EXISTS,
    BROKEN_LINK,
    NO_SUCH_OBJECT,
    LdapFailure,
    Pool,
    Session,
    broken_link,
)
from workers.connectors.ldap.settings import Disable, KindSettings, LdapSettings
from workers.connectors.ldap.unique import has_unique, resolve_unique

log = logging.getLogger("roster.connectors.ldap")

_MATCH_CHUNK: Final = 100  # values in one matching search
_OPS_PER_CALL: Final = 64  # operations run in one thread hop
_LIST_PAGE: Final = 500  # entries per page of a listing's paged search (slapd's default size limit)


def as_written(outcome: Outcome) -> Outcome:
    """An outcome whose DN is written as this connector writes DNs (`join_dn`), whether it built it or
    read it from the server (which may escape `+` as `\\2B`): one object, one target id, whatever the
    operation that last touched it (a reference to it then never looks changed)."""
    if isinstance(outcome, Applied) and outcome.target_id:
        written = dn_as_written(outcome.target_id)
        if written != outcome.target_id:
            return Applied(written)
    return outcome


class LdapConnector(AsyncContextConnector):
    """Applies operations to one LDAP directory; see the module docstring for the guarantees."""

    def __init__(self, name: str, settings: LdapSettings) -> None:
        self.name = name
        self.settings = settings
        self._pool: Pool | None = None
        self._closed = False
        self._moves = Moves()
        self._unique_lock = threading.Lock()
        self._claimed: set[tuple[str, str]] = set()
        """Unique values handed out to operations still being applied (LDAP attribute, casefolded)."""

    def __repr__(self) -> str:
        return f"LdapConnector({self.name!r}, {self.settings.link.url})"

    @property
    def pool(self) -> Pool | None:
        return self._pool

    async def open(self) -> None:
        """Build the pool; the first call of each connection dials and binds."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._pool is None:
            self._pool = Pool(self.settings.link, self.settings.pool_size, name=self.name)

    async def aclose(self) -> None:
        """Unbind and stop the pool's threads; safe to call twice."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    async def apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        """Apply `ops` over the pool, a chunk per thread hop; one outcome each, in order."""
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"{self!r} is not open")
        # The operations with SelectUniqueValue candidates go together, in their order: the first in
        # the batch gets the first free value, whichever thread would have run first.
        unique = [i for i, op in enumerate(ops) if has_unique(op)]
        chosen = set(unique)
        rest = [i for i in range(len(ops)) if i not in chosen]
        size = max(1, min(_OPS_PER_CALL, -(-len(rest) // pool.size)))
        chunks = ([unique] if unique else []) + [rest[i : i + size] for i in range(0, len(rest), size)]

        async def run(chunk: list[int]) -> list[Outcome]:
            part = [ops[i] for i in chunk]
            try:
                return await pool.run(lambda session: self._apply_chunk(session, part))
            except ConnectorError as error:
                return [self._redacted(error)] * len(part)

        done = await asyncio.gather(*(run(chunk) for chunk in chunks))
        outcomes: list[Outcome | None] = [None] * len(ops)
        for chunk, results in zip(chunks, done, strict=True):
            for i, outcome in zip(chunk, results, strict=True):
                outcomes[i] = outcome
        return [outcome for outcome in outcomes if outcome is not None]

    # -- Listing -------------------------------------------------------------------------------------

    def listing_fields(self, object_type: str, attributes: Sequence[str]) -> list[str]:
        """`attributes`, then the one this connector matches on (see `workers.connectors.base.Lister`)."""
        return listing_fields(kind_settings(object_type, self.settings), attributes)

    async def list_objects(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[list[Any]]]:
        """Every entry of the kind under its base, by a paged search on one connection (its cookie is
        that connection's), handed on a page at a time."""
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"{self!r} is not open")
        kind = kind_settings(object_type, self.settings)
        names = list(dict.fromkeys(listed_name(kind, name) for name in fields))
        try:
            pages = await pool.run(
                lambda session: session.search_paged(kind.base, listing_filter(kind), names, size=_LIST_PAGE)
            )
        except LdapFailure as failure:
            raise self._redacted(failure.error()) from None
        for entries in pages:
            if entries:
                yield [listing_row(kind, fields, dn, raw) for dn, raw in entries]

    # -- In a worker thread --------------------------------------------------------------------------

    def _apply_chunk(self, session: Session, ops: list[Operation]) -> list[Outcome]:
        """Match the chunk's creates and updates at once, then apply each operation. A broken link
        fails what is left of the chunk (transient), keeping the outcomes already had."""
        outcomes: list[Outcome | None] = [None] * len(ops)
        plans: list[Plan | None] = [None] * len(ops)
        claims: set[tuple[str, str]] = set()
        try:
            for i, op in enumerate(ops):
                try:
                    if has_unique(op):
                        op = self._resolve_unique(session, op, claims)
                    plans[i] = self._plan(op)
                except LdapFailure as failure:
                    outcomes[i] = self._redacted(failure.error())
                except ConnectorError as error:
                    outcomes[i] = self._redacted(error)
                except BROKEN_LINK as exc:
                    return [self._broken(session, exc) if o is None else o for o in outcomes]
            return self._apply_planned(session, plans, outcomes)
        finally:
            with self._unique_lock:
                self._claimed -= claims  # added by now, or failed: the directory says which from here on

    def _resolve_unique(self, session: Session, op: Operation, claims: set[tuple[str, str]]) -> Operation:
        """`op` with its SelectUniqueValue attributes resolved (`workers.connectors.ldap.unique`), under
        the lock that keeps this worker's chunks from handing out one value twice."""
        kind = kind_settings(op.object_type, self.settings)
        kind = dataclasses.replace(kind, base=kind.unique_base or kind.base)

        def search(base: str, query: str, names: list[str]) -> list[Entry]:
            return [to_entry(dn, raw) for dn, raw in session.search(base, query, names)]

        with self._unique_lock:
            before = set(self._claimed)
            resolved = resolve_unique(op, kind, search, self._claimed)
            claims |= self._claimed - before
        return resolved

    def _apply_planned(
        self, session: Session, plans: list[Plan | None], outcomes: list[Outcome | None]
    ) -> list[Outcome]:
        i = 0
        try:
            writes = [p for p in plans if p is not None and p.op.action in ("create", "update")]
            try:
                found = self._match_all(session, writes)
            except LdapFailure as failure:
                failed = self._redacted(failure.error())
                return [failed if o is None else o for o in outcomes]
            for i, plan in enumerate(plans):
                if plan is None:
                    continue
                try:
                    outcomes[i] = as_written(self._apply_one(session, plan, found))
                except LdapFailure as failure:
                    outcomes[i] = self._redacted(failure.error())
                except ConnectorError as error:
                    outcomes[i] = self._redacted(error)
        except BROKEN_LINK as exc:
            broken = self._broken(session, exc)
            return [broken if o is None or j >= i else o for j, o in enumerate(outcomes)]
        return [o for o in outcomes if o is not None]

    def _broken(self, session: Session, exc: Exception) -> ConnectorError:
        """The outcome of what a broken link leaves undone (transient); the session is dialled again."""
        session.broken = True
        log.warning("event=ldap_link_broken target=%s error=%s", self.name, type(exc).__name__)
        return broken_link(f"LDAP server {self.settings.link.url}", exc)

    def _match_all(self, session: Session, plans: list[Plan]) -> dict[tuple[str, str], list[Entry]]:
        """Entries by (kind, casefolded matching value), for every plan with a value: one search per
        kind and chunk of values."""
        found: dict[tuple[str, str], list[Entry]] = {}
        by_kind: dict[str, list[Plan]] = {}
        for plan in plans:
            if plan.match_value is not None:
                by_kind.setdefault(plan.kind.kind, []).append(plan)
        for group in by_kind.values():
            kind = group[0].kind
            values = list(dict.fromkeys(p.match_value for p in group if p.match_value is not None))
            names = self._read_names(kind, group)
            for start in range(0, len(values), _MATCH_CHUNK):
                chunk = values[start : start + _MATCH_CHUNK]
                for entry in self._search(session, kind, chunk, names):
                    for value in entry[1].get(kind.match.lower(), []):
                        hits = found.setdefault((kind.kind, value.casefold()), [])
                        if not any(same_dn(dn, entry[0]) for dn, _ in hits):
                            hits.append(entry)
        return found

    def _search(
        self, session: Session, kind: KindSettings, values: list[str], names: list[str]
    ) -> list[Entry]:
        query = match_filter(kind, values)
        return [to_entry(dn, raw) for dn, raw in session.search(kind.base, query, names)]

    def _apply_one(
        self, session: Session, plan: Plan, found: Mapping[tuple[str, str], list[Entry]]
    ) -> Outcome:
        op = plan.op
        if op.action == "delete":
            return self._delete(session, plan)
        if op.action == "disable":
            return self._disable(session, plan)
        current = self._current(session, plan, found)
        if current is None:
            if op.action == "update" and op.target_id is None and plan.dn is None:
                raise PermanentError(
                    f"{op.object_type} {op.source_id!r} is not in the target: nothing to update"
                )
            return self._create(session, plan)
        return self._update(session, plan, current)

    def _current(
        self, session: Session, plan: Plan, found: Mapping[tuple[str, str], list[Entry]]
    ) -> Entry | None:
        kind = plan.kind
        if plan.match_value is not None:
            hits = found.get((kind.kind, plan.match_value.casefold()), [])
            if len(hits) > 1:
                raise PermanentError(
                    f"{len(hits)} entries under {kind.base} have {kind.match}={plan.match_value!r}: "
                    "duplicates; remove all but one, or match on a unique attribute",
                    code="duplicate",
                )
            if hits:
                return hits[0]
        if plan.op.target_id:
            entry = session.read(plan.op.target_id, self._read_names(kind, [plan]))
            if entry is not None:
                return to_entry(*entry)
        return None

    # -- Hooks a flavor (workers/connectors/ldap/ad_connector.py) overrides --------------------------

    def _plan(self, op: Operation) -> Plan:
        return plan_operation(op, self.settings)

    def _read_names(self, kind: KindSettings, plans: Sequence[Plan]) -> list[str]:
        return read_names(kind, plans)

    def _new_entry(self, plan: Plan) -> tuple[dict[str, list[Any]], list[str]]:
        """The attributes of the entry a create adds, and the members left for modifies after it."""
        kind = plan.kind
        attributes: dict[str, list[Any]] = {"objectClass": list(kind.object_classes)}
        attributes.update({name: values for name, values in plan.desired.items() if values})
        if kind.kind == "user":
            if plan.op.disabled:
                self._disabled_state(kind, None, attributes)
            elif kind.disable and kind.disable.attribute and kind.disable.enabled_value is not None:
                attributes.setdefault(kind.disable.attribute, [kind.disable.enabled_value])
        additions: list[str] = []
        if kind.member_attribute:
            additions = list(dict.fromkeys(plan.op.members_add))
            first = additions[: kind.member_chunk_size]
            if first or kind.empty_member:
                attributes[kind.member_attribute] = first or [kind.empty_member]
            additions = additions[len(first) :]
        return attributes, additions

    def _added(self, session: Session, plan: Plan, dn: str, additions: list[str]) -> str:
        """What follows the add of a new entry at `dn`; its target id."""
        add_members(session, plan.kind, dn, additions)
        return dn

    def _target_id(self, entry: Entry) -> str:
        return entry[0]

    def _enable(self, kind: KindSettings, current: Entry, desired: dict[str, list[Any]]) -> None:
        """Add to `desired` what makes the `current` user enabled (an update re-enables)."""
        disable = kind.disable
        if disable and disable.attribute and not any(k.lower() == disable.attribute.lower() for k in desired):
            desired[disable.attribute] = [disable.enabled_value] if disable.enabled_value is not None else []

    def _disabled_state(
        self, kind: KindSettings, current: Entry | None, desired: dict[str, list[Any]]
    ) -> None:
        """Set in `desired` what makes a user disabled: the `current` one updated, or a new one (None)
        added. It overrides a mapped value: an operation that leaves the account disabled says so."""
        disable = disable_of(kind)
        if disable.attribute is not None:
            for name in [k for k in desired if k.lower() == disable.attribute.lower()]:
                del desired[name]
            desired[disable.attribute] = [disable.value or ""]

    def _update_members(self, session: Session, kind: KindSettings, dn: str, op: Operation) -> None:
        update_members(session, kind, dn, op, self._moves)

    # -- Writes --------------------------------------------------------------------------------------

    def _create(self, session: Session, plan: Plan) -> Outcome:
        kind, dn = plan.kind, self._placed(plan, plan.dn)
        assert dn is not None
        attributes, additions = self._new_entry(plan)
        try:
            session.add(dn, attributes)
        except LdapFailure as failure:
            if failure.code != ALREADY_EXISTS:
                raise
            existing = session.read(dn, self._read_names(kind, [plan]))
            if existing is None:
                raise
            entry = to_entry(*existing)
            if plan.match_value is not None and plan.match_value.casefold() not in {
                v.casefold() for v in entry[1].get(kind.match.lower(), [])
            }:
                raise PermanentError(
                    f"{dn} already exists and is another entry (its {kind.match} is not "
                    f"{plan.match_value!r}): {failure.message}",
                    code=str(ALREADY_EXISTS),
                ) from None
            return self._update(session, plan, entry)
        return Applied(self._added(session, plan, dn, additions))

    def _update(self, session: Session, plan: Plan, current: Entry) -> Outcome:
        kind = plan.kind
        dn, attributes = current
        desired: dict[str, list[Any]] = dict(plan.desired)
        if kind.kind == "user" and plan.op.disabled:
            self._disabled_state(kind, current, desired)
        elif kind.kind == "user":
            self._enable(kind, current, desired)
        placed = self._placed(plan, plan.dn or (dn if plan.op.disabled else None))
        if placed is not None and not same_dn(dn, placed):
            dn = self._rename(session, kind, dn, placed, attributes)
        elif kind.kind == "user" and plan.op.target_id and not same_dn(plan.op.target_id, dn):
            self._moved_before(session, plan.op.target_id, dn)
        changes = entry_changes(attributes, desired, kind.object_classes)
        if changes:
            session.modify(dn, changes)
        if kind.member_attribute and (plan.op.members_add or plan.op.members_remove):
            self._update_members(session, kind, dn, plan.op)
        return Applied(self._target_id((dn, attributes)))

    @staticmethod
    def _placed(plan: Plan, dn: str | None) -> str | None:
        """Where the entry of `plan` belongs: at `dn` (its template's), or under the disabled OU for a
        user that the operation leaves disabled where disabling moves it (`disable.move_to`)."""
        if dn is None or not plan.op.disabled or plan.kind.kind != "user":
            return dn
        return disabled_dn(dn, disable_of(plan.kind))

    def _moved_before(self, session: Session, old: str, new: str) -> None:
        """The entry the engine knows at `old` is at `new` already: an earlier try renamed it and failed
        after (its result never came in). Relink what that try may have left listing `old`."""
        if session.read(old, ["1.1"]) is not None:
            return  # another entry holds that DN now: its memberships are its own
        self._moves.record(old, new)
        relink(session, self.settings.groups, old, new)

    def _rename(
        self, session: Session, kind: KindSettings, old: str, new: str, attributes: dict[str, list[str]]
    ) -> str:
        """Move `old` to `new` (modify DN) and relink the groups that listed it."""
        new_parent = parent_dn(new)
        superior = None if same_dn(parent_dn(old), new_parent) else new_parent
        session.rename(old, first_rdn(new), superior)
        self._moves.record(old, new)
        old_rdn = rdn_values(old)
        for name, value in rdn_values(new).items():
            kept = [v for v in attributes.get(name, []) if v.casefold() != old_rdn.get(name, "").casefold()]
            attributes[name] = (
                [*kept, value] if value.casefold() not in {v.casefold() for v in kept} else kept
            )
        relink(session, self.settings.groups, old, new)  # a group's too: it may be nested in others
        log.info("event=ldap_renamed target=%s", self.name)
        return new

    def _located(self, session: Session, plan: Plan) -> str | None:
        """The DN of a deprovisioned object: its target id, else a search on its matching value."""
        if plan.op.target_id:
            return plan.op.target_id
        if plan.match_value is None:
            raise PermanentError(
                f"{plan.op.object_type} {plan.op.source_id!r} has neither a target id nor a matching value"
            )
        hits = self._search(session, plan.kind, [plan.match_value], ["1.1"])
        if len(hits) > 1:
            raise PermanentError(
                f"{len(hits)} entries have {plan.kind.match}={plan.match_value!r}", code="duplicate"
            )
        return hits[0][0] if hits else None

    def _disable(self, session: Session, plan: Plan) -> Outcome:
        disable = disable_of(plan.kind)
        dn = self._located(session, plan)
        if dn is None:
            return Applied(None)  # nothing left to disable
        if disable.attribute is not None:
            change = {disable.attribute: [(ldap3.MODIFY_REPLACE, [disable.value or ""])]}
            if session.modify(dn, change, ok=(NO_SUCH_OBJECT,)) == NO_SUCH_OBJECT:
                moved = self._moved_away(session, dn, disable)
                if moved is None:
                    return Applied(None)
                dn = moved
                session.modify(dn, change)
        if disable.move_to is not None and not same_dn(parent_dn(dn), disable.move_to):
            target = disabled_dn(dn, disable)
            try:
                session.rename(dn, first_rdn(dn), disable.move_to)
            except LdapFailure as failure:
                if failure.code != NO_SUCH_OBJECT or session.read(target, ["1.1"]) is None:
                    raise
            dn = target
        return Applied(dn)

    @staticmethod
    def _moved_away(session: Session, dn: str, disable: Disable) -> str | None:
        """Where a missing entry is, if an earlier try already moved it to the disabled OU."""
        if disable.move_to is None:
            return None
        target = disabled_dn(dn, disable)
        return target if session.read(target, ["1.1"]) is not None else None

    def _delete(self, session: Session, plan: Plan) -> Outcome:
        dn = self._located(session, plan)
        if dn is None:
            return Applied(None)
        if not session.delete(dn):
            disable = plan.kind.disable
            moved = self._moved_away(session, dn, disable) if disable else None
            if moved is None or not session.delete(moved):
                return Applied(dn)  # no such object: done
            dn = moved
        relink(session, self.settings.groups, dn, None)  # a group's too: it may be nested in others
        return Applied(dn)

    def _redacted(self, error: ConnectorError) -> ConnectorError:
        secret = self.settings.link.bind_password
        if secret and secret in error.message:
            return type(error)(error.message.replace(secret, "***"), code=error.code)
        return error
