"""The LDAP target: users as `inetOrgPerson`, groups as `groupOfNames` or `groupOfUniqueNames`, via ldap3.

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
changed): the result carries the new DN, and the groups that listed the old DN are relinked (a server with
the refint overlay has done it already). Disable sets an attribute to a value, or moves the entry under
another OU, or both; an update re-enables (the attribute is reset, the template's DN moves it back).
Group members come from `members_add`/`members_remove` (DNs), in modifies of `member_chunk_size` values
sent without reading the group; only when the server refuses a chunk because a value is already there (or
already gone: a redelivery) are the members read, once, and the rest filtered. A group must keep a member:
the bind DN (or `empty_member`) stands in while it has none.

**Errors.** Busy, unavailable, server down and timeouts are `TransientError`; constraint and object class
violations, insufficient access, invalid syntax and the rest are `PermanentError` with the server's message.
The bind password appears in no message and no repr.

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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import ldap3

from common.config.validation import as_list, as_mapping, check_keys, integer, join, string
from common.errors import ConfigError, ConnectorError, PermanentError
from common.peers.ldap_link import LINK_KEYS, LinkSettings, parse_dn, parse_link
from common.peers.ldap_names import (
    DnError,
    DnTemplate,
    dn_key,
    escape_filter_value,
    first_rdn,
    parent_dn,
    rdn_values,
    same_dn,
    split_dn,
)
from queues.contracts import Operation
from workers.connectors.base import Applied, AsyncContextConnector, Outcome
from workers.connectors.ldap.pool import (
    ALREADY_EXISTS,
    BROKEN_LINK,
    NO_SUCH_ATTRIBUTE,
    NO_SUCH_OBJECT,
    OBJECT_CLASS_VIOLATION,
    VALUE_EXISTS,
    LdapFailure,
    Pool,
    Session,
    broken_link,
)

log = logging.getLogger("roster.connectors.ldap")

_KEYS: Final = (*LINK_KEYS, "base_dn", "pool_size", "users", "groups")
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
_MEMBER_ATTRIBUTES: Final = {"groupofnames": "member", "groupofuniquenames": "uniqueMember"}
_MATCH_CHUNK: Final = 100  # values in one matching search
_OPS_PER_CALL: Final = 64  # operations run in one thread hop


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
    users = _kind(at("users"), raw.get("users"), "user", base_dn, link.bind_dn)
    groups = _kind(at("groups"), raw.get("groups"), "group", base_dn, link.bind_dn)
    return LdapSettings(
        link=link,
        base_dn=base_dn,
        pool_size=integer(at("pool_size"), raw.get("pool_size", 4), minimum=1),
        users=users,
        groups=groups,
        path=path,
    )


def _kind(path: str, raw: Any, kind: str, base_dn: str, bind_dn: str) -> KindSettings | None:
    if raw is None:
        return None
    raw = as_mapping(path, raw)
    check_keys(path, raw, _KIND_KEYS if kind == "user" else _GROUP_KEYS, required=("dn",))
    try:
        template = DnTemplate(string(join(path, "dn"), raw["dn"]))
    except DnError as exc:
        raise ConfigError(
            join(path, "dn"), str(exc), "e.g. uid={userName},ou=people,dc=example,dc=org"
        ) from None
    default_classes = ["inetOrgPerson"] if kind == "user" else ["groupOfNames"]
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
                "must hold exactly one of groupOfNames and groupOfUniqueNames",
                "e.g. [groupOfNames]",
            )
        member = found[0]
    return KindSettings(
        kind=kind,
        dn=template,
        object_classes=classes,
        attributes=mapped,
        match=string(join(path, "match"), raw.get("match", rdn_type)),
        base=parse_dn(join(path, "base"), raw.get("base", base_dn)),
        disable=_disable(join(path, "disable"), raw.get("disable")) if kind == "user" else None,
        member_attribute=member,
        member_chunk_size=integer(
            join(path, "member_chunk_size"), raw.get("member_chunk_size", 500), minimum=1
        ),
        empty_member=parse_dn(join(path, "empty_member"), raw.get("empty_member", bind_dn)),
    )


def _disable(path: str, raw: Any) -> Disable | None:
    if raw is None:
        return None
    raw = as_mapping(path, raw)
    check_keys(path, raw, _DISABLE_KEYS)
    attribute = string(join(path, "attribute"), raw["attribute"]) if "attribute" in raw else None
    move_to = parse_dn(join(path, "move_to"), raw["move_to"]) if "move_to" in raw else None
    if attribute is None and move_to is None:
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


# -- Values ------------------------------------------------------------------------------------------

Entry = tuple[str, dict[str, list[str]]]
"""A DN and its attributes, keyed by lowercased name, as text."""


def ldap_values(value: Any) -> list[str]:
    """An operation value as LDAP values: None and "" are none, booleans TRUE/FALSE, lists one each."""
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if item is None or item == "":
            continue
        if isinstance(item, bool):
            out.append("TRUE" if item else "FALSE")
        else:
            out.append(str(item))
    return out


def _entry(dn: str, raw: Mapping[str, list[Any]]) -> Entry:
    attributes = {}
    for name, values in raw.items():
        attributes[name.lower()] = [
            v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values
        ]
    return dn, attributes


@dataclass(slots=True)
class _Plan:
    """One operation read against its kind's settings, before any call."""

    op: Operation
    kind: KindSettings
    desired: dict[str, list[str]]  # by LDAP name as configured; [] removes
    dn: str | None  # the rendered DN, when the attributes allow it
    match_value: str | None


# -- The connector -----------------------------------------------------------------------------------


class LdapConnector(AsyncContextConnector):
    """Applies operations to one LDAP directory; see the module docstring for the guarantees."""

    def __init__(self, name: str, settings: LdapSettings) -> None:
        self.name = name
        self.settings = settings
        self._pool: Pool | None = None
        self._closed = False

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
        size = max(1, min(_OPS_PER_CALL, -(-len(ops) // pool.size)))
        chunks = [list(ops[i : i + size]) for i in range(0, len(ops), size)]

        async def run(chunk: list[Operation]) -> list[Outcome]:
            try:
                return await pool.run(lambda session: self._apply_chunk(session, chunk))
            except ConnectorError as error:
                return [self._redacted(error)] * len(chunk)

        done = await asyncio.gather(*(run(chunk) for chunk in chunks))
        return [outcome for outcomes in done for outcome in outcomes]

    # -- In a worker thread --------------------------------------------------------------------------

    def _apply_chunk(self, session: Session, ops: list[Operation]) -> list[Outcome]:
        """Match the chunk's creates and updates at once, then apply each operation. A broken link
        fails what is left of the chunk (transient), keeping the outcomes already had."""
        outcomes: list[Outcome | None] = [None] * len(ops)
        plans: list[_Plan | None] = [None] * len(ops)
        for i, op in enumerate(ops):
            try:
                plans[i] = self._plan(op)
            except ConnectorError as error:
                outcomes[i] = self._redacted(error)
        i = 0
        try:
            writes = [p for p in plans if p is not None and p.op.action in ("create", "update")]
            try:
                found = self._match_all(session, writes)
            except LdapFailure as failure:
                error = self._redacted(failure.error())
                return [error if o is None else o for o in outcomes]
            for i, plan in enumerate(plans):
                if plan is None:
                    continue
                try:
                    outcomes[i] = self._apply_one(session, plan, found)
                except LdapFailure as failure:
                    outcomes[i] = self._redacted(failure.error())
                except ConnectorError as error:
                    outcomes[i] = self._redacted(error)
        except BROKEN_LINK as exc:
            session.broken = True
            error = broken_link(f"LDAP server {self.settings.link.url}", exc)
            log.warning("event=ldap_link_broken target=%s error=%s", self.name, type(exc).__name__)
            return [error if o is None or j >= i else o for j, o in enumerate(outcomes)]
        return [o for o in outcomes if o is not None]

    def _plan(self, op: Operation) -> _Plan:
        kind = self._kind_of(op)
        desired: dict[str, list[str]] = {}
        for name, value in op.attributes.items():
            ldap_name = kind.ldap_name(name)
            if kind.member_attribute and ldap_name.lower() == kind.member_attribute.lower():
                raise PermanentError(
                    "group members come from members_add/members_remove, not from an attribute"
                )
            desired[ldap_name] = ldap_values(value)
        dn = None
        if op.action in ("create", "update"):
            try:
                dn = kind.dn.render(op.attributes)
            except KeyError as missing:
                raise PermanentError(
                    f"the DN template {kind.dn.text!r} needs {missing.args[0]!r}, "
                    f"which this {op.object_type} lacks; map it"
                ) from None
        match_value = None
        values = next((v for k, v in desired.items() if k.lower() == kind.match.lower()), None)
        if values:
            match_value = values[0]
        else:
            match_value = next(
                (
                    str(value)
                    for name, value in op.matching
                    if kind.ldap_name(name).lower() == kind.match.lower()
                    and value not in (None, "")
                    and value != op.target_id
                ),
                None,
            )
        return _Plan(op, kind, desired, dn, match_value)

    def _kind_of(self, op: Operation) -> KindSettings:
        kind = {"user": self.settings.users, "group": self.settings.groups}.get(op.object_type, None)
        if op.object_type not in ("user", "group"):
            raise PermanentError(f"object type {op.object_type!r} is not one of user, group")
        if kind is None:
            raise PermanentError(
                f"this target has no `{op.object_type}s:` settings; add them with at least `dn:`",
                code="config",
            )
        return kind

    def _match_all(self, session: Session, plans: list[_Plan]) -> dict[tuple[str, str], list[Entry]]:
        """Entries by (kind, casefolded matching value), for every plan with a value: one search per
        kind and chunk of values."""
        found: dict[tuple[str, str], list[Entry]] = {}
        by_kind: dict[str, list[_Plan]] = {}
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
        terms = "".join(f"({kind.match}={escape_filter_value(v)})" for v in values)
        either = terms if len(values) == 1 else f"(|{terms})"
        query = f"(&(objectClass={escape_filter_value(kind.object_classes[0])}){either})"
        return [_entry(dn, raw) for dn, raw in session.search(kind.base, query, names)]

    def _read_names(self, kind: KindSettings, plans: Sequence[_Plan]) -> list[str]:
        """The attributes to read back for a diff: those the plans set, the matching and disable ones."""
        names = {"objectClass", kind.match}
        for plan in plans:
            names.update(plan.desired)
        if kind.disable and kind.disable.attribute:
            names.add(kind.disable.attribute)
        names.update(rdn_values(kind.dn.text.replace("{", "").replace("}", "")))
        return sorted(names)

    def _apply_one(
        self, session: Session, plan: _Plan, found: Mapping[tuple[str, str], list[Entry]]
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
        self, session: Session, plan: _Plan, found: Mapping[tuple[str, str], list[Entry]]
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
                return _entry(*entry)
        return None

    def _create(self, session: Session, plan: _Plan) -> Outcome:
        kind, dn = plan.kind, plan.dn
        assert dn is not None
        attributes: dict[str, list[str]] = {"objectClass": list(kind.object_classes)}
        attributes.update({name: values for name, values in plan.desired.items() if values})
        if kind.disable and kind.disable.attribute and kind.disable.enabled_value is not None:
            attributes.setdefault(kind.disable.attribute, [kind.disable.enabled_value])
        additions: list[str] = []
        if kind.member_attribute:
            additions = list(dict.fromkeys(plan.op.members_add))
            first = additions[: kind.member_chunk_size]
            attributes[kind.member_attribute] = first or [kind.empty_member]
            additions = additions[len(first) :]
        try:
            session.add(dn, attributes)
        except LdapFailure as failure:
            if failure.code != ALREADY_EXISTS:
                raise
            existing = session.read(dn, self._read_names(kind, [plan]))
            if existing is None:
                raise
            entry = _entry(*existing)
            if plan.match_value is not None and plan.match_value.casefold() not in {
                v.casefold() for v in entry[1].get(kind.match.lower(), [])
            }:
                raise PermanentError(
                    f"{dn} already exists and is another entry (its {kind.match} is not "
                    f"{plan.match_value!r}): {failure.message}",
                    code=str(ALREADY_EXISTS),
                ) from None
            return self._update(session, plan, entry)
        present: set[Any] | None = None
        for chunk in _chunks(additions, kind.member_chunk_size):
            present = self._change_members(session, kind, dn, ldap3.MODIFY_ADD, chunk, present)
        return Applied(dn)

    def _update(self, session: Session, plan: _Plan, current: Entry) -> Outcome:
        kind = plan.kind
        dn, attributes = current
        desired = dict(plan.desired)
        disable = kind.disable
        if disable and disable.attribute and not any(k.lower() == disable.attribute.lower() for k in desired):
            desired[disable.attribute] = [disable.enabled_value] if disable.enabled_value is not None else []
        if plan.dn is not None and not same_dn(dn, plan.dn):
            dn = self._rename(session, kind, dn, plan.dn, attributes)
        changes = _changes(attributes, desired, kind.object_classes)
        if changes:
            session.modify(dn, changes)
        if kind.member_attribute and (plan.op.members_add or plan.op.members_remove):
            self._members(session, kind, dn, plan.op)
        return Applied(dn)

    def _rename(
        self, session: Session, kind: KindSettings, old: str, new: str, attributes: dict[str, list[str]]
    ) -> str:
        """Move `old` to `new` (modify DN) and relink the groups that listed it."""
        new_parent = parent_dn(new)
        superior = None if same_dn(parent_dn(old), new_parent) else new_parent
        session.rename(old, first_rdn(new), superior)
        old_rdn = rdn_values(old)
        for name, value in rdn_values(new).items():
            kept = [v for v in attributes.get(name, []) if v.casefold() != old_rdn.get(name, "").casefold()]
            attributes[name] = (
                [*kept, value] if value.casefold() not in {v.casefold() for v in kept} else kept
            )
        if kind.kind == "user":
            self._relink(session, old, new)
        log.info("event=ldap_renamed target=%s", self.name)
        return new

    def _relink(self, session: Session, old: str, new: str | None) -> None:
        """Replace `old` by `new` (or remove it) in every group that lists it."""
        groups = self.settings.groups
        if groups is None or groups.member_attribute is None:
            return
        query = f"({groups.member_attribute}={escape_filter_value(old)})"
        for group_dn, _ in session.search(groups.base, query, ["1.1"]):
            if new is not None:
                self._change_members(session, groups, group_dn, ldap3.MODIFY_ADD, [new], None)
            self._change_members(session, groups, group_dn, ldap3.MODIFY_DELETE, [old], None)

    def _members(self, session: Session, kind: KindSettings, dn: str, op: Operation) -> None:
        """Additions first (so the group never runs empty on the way), then removals, in chunks."""
        additions = list(dict.fromkeys(op.members_add))
        keep = {dn_key(m) for m in additions}
        removals = [m for m in dict.fromkeys(op.members_remove) if dn_key(m) not in keep]
        present: set[Any] | None = None
        for chunk in _chunks(additions, kind.member_chunk_size):
            present = self._change_members(session, kind, dn, ldap3.MODIFY_ADD, chunk, present)
        if additions and dn_key(kind.empty_member) not in keep:  # the stand-in leaves, if it was in
            attribute = kind.member_attribute or "member"
            change = {attribute: [(ldap3.MODIFY_DELETE, [kind.empty_member])]}
            session.modify(dn, change, ok=(NO_SUCH_ATTRIBUTE,))
            if present is not None:
                present.discard(dn_key(kind.empty_member))
        for chunk in _chunks(removals, kind.member_chunk_size):
            present = self._change_members(session, kind, dn, ldap3.MODIFY_DELETE, chunk, present)

    def _change_members(
        self,
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
            entry = session.read(dn, [attribute])
            values = _entry(*entry)[1].get(attribute.lower(), []) if entry else []
            return self._change_members(session, kind, dn, how, members, {dn_key(v) for v in values})
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

    def _located(self, session: Session, plan: _Plan) -> str | None:
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

    def _disable(self, session: Session, plan: _Plan) -> Outcome:
        kind, disable = plan.kind, plan.kind.disable
        if kind.kind == "group":
            raise PermanentError("an LDAP group has no disabled state; deprovision groups with delete")
        if disable is None:
            raise PermanentError(
                "users.disable is not set: say how this directory marks a disabled account "
                "(attribute and value, or move_to), or deprovision with delete",
                code="config",
            )
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
            target = f"{first_rdn(dn)},{disable.move_to}"
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
        target = f"{first_rdn(dn)},{disable.move_to}"
        return target if session.read(target, ["1.1"]) is not None else None

    def _delete(self, session: Session, plan: _Plan) -> Outcome:
        dn = self._located(session, plan)
        if dn is None:
            return Applied(None)
        if not session.delete(dn):
            disable = plan.kind.disable
            moved = self._moved_away(session, dn, disable) if disable else None
            if moved is None or not session.delete(moved):
                return Applied(dn)  # no such object: done
            dn = moved
        if plan.kind.kind == "user":
            self._relink(session, dn, None)
        return Applied(dn)

    def _redacted(self, error: ConnectorError) -> ConnectorError:
        secret = self.settings.link.bind_password
        if secret and secret in error.message:
            return type(error)(error.message.replace(secret, "***"), code=error.code)
        return error


def _changes(
    current: Mapping[str, list[str]], desired: Mapping[str, list[str]], classes: Sequence[str]
) -> dict[str, list[tuple[str, list[str]]]]:
    """Modify changes for the attributes whose values differ, as sets, from `current`."""
    changes: dict[str, list[tuple[str, list[str]]]] = {}
    for name, values in desired.items():
        now = current.get(name.lower(), [])
        if sorted(now) == sorted(values):
            continue
        if not values and not now:
            continue
        changes[name] = [(ldap3.MODIFY_REPLACE, values)]
    have = {c.lower() for c in current.get("objectclass", [])}
    missing = [c for c in classes if c.lower() not in have]
    if missing and have:
        changes["objectClass"] = [(ldap3.MODIFY_ADD, missing)]
    return changes


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
