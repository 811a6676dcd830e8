"""A source that reads users or groups from an LDAP directory, with ldap3.

A full read is a paged search (the simple paged results control, RFC 2696) under `base_dn` with `filter`,
one page per batch, so a directory of any size streams with flat memory; each page is fetched in a
thread, off the event loop. Objects missing from a full read are deprovisioned by the cycle like rows
missing from a file: a deleted entry is detected by the next full import.

An incremental read (`LdapSource(settings, since=watermark)`) adds `(modifyTimestamp>=since)` to the filter
and reads only what changed since then; `watermark` holds the highest `modifyTimestamp` seen, to pass as
`since` next time (`>=`, since the server counts in whole seconds: an entry changed within the watermark's
second is read again, which the hash diff makes harmless). A directory that keeps no `modifyTimestamp`
leaves `watermark` None: read it in full.

Each object's id is `id_attribute` (default `entryUUID`, which survives renames; `dn` for the DN). Its
attributes are those read, by the names in `attributes:` (or the server's), plus `dn`; an attribute with one
value is a string and one with several a list, except those in `multi_valued`, always lists (`member`).

**Values that are not text.** Values are read as UTF-8, as LDAP strings are. An entry with a value that is
not (a binary attribute such as `jpegPhoto` or AD's `objectGUID`, or a damaged value) in an attribute
named in `attributes:`, its id or its members cannot be read: it is skipped and counted as skipped, so
the read is incomplete and deprovisions nothing. When every attribute is read (no `attributes:`), a binary
attribute that no one named is left out instead, and said once a read.

**Groups.** A group's `member` (or `uniqueMember`) holds DNs, while the user job it refers to
(`members: {source: member, job: people}`) knows its users by their ids. With `member_base`, a read turns
each member DN into the id (`member_id_attribute`, default `id_attribute`) of that entry under
`member_base`: one paged search there per read, made when the first group comes, gives a DN -> id map
(DNs compared without case or escaping; about a hundred bytes per entry). A DN not found there (outside
the base, not there any more, or a stand-in such as the rootdn a refint overlay leaves in an empty
group) is left out and reported as a problem on its group, which is still provisioned.

**Active Directory** (`flavor: active_directory`; the protocol in `engine.sources.ad`, the values in
`engine.sources.ad_values`): ids are `objectGUID` by default; GUIDs, SIDs, FILETIME and generalized times
read as text, `userAccountControl` adds `enabled`; member attributes are asked for `range_size` values
at a time and each range read; an incremental read asks for `uSNChanged` above a watermark that names
the DC (`usn:<invocationId>:<USN>`, its `highestCommittedUSN` taken before the search; another DC's
means a full read), and reports the ids of the tombstones in its scope in `deleted`.

Settings (beside `type: ldap`); `url` to `connect_timeout_s` say how to reach the server, read as the LDAP
target reads them (common/peers/ldap_link.py)::

    url: ldaps://ldap.example.org        # required; ldap:// or ldaps://
    start_tls: false                     # upgrade ldap:// with StartTLS (not with ldaps://)
    ca_file: certs/ldap-ca.pem           # relative to the job file
    verify_tls: true
    bind_dn: cn=reader,dc=example,dc=org # required
    bind_password: ${LDAP_READER_PASSWORD}   # required
    timeout_s: 30                        # per call
    connect_timeout_s: 10
    base_dn: ou=people,dc=example,dc=org # required
    filter: (objectClass=inetOrgPerson)
    scope: subtree                       # or one
    attributes: [uid, givenName, sn, cn, mail]   # default: all user attributes
    id_attribute: entryUUID
    incremental: false                   # true: read only changes between full imports
    full_import_every: 1d
    page_size: 500
    multi_valued: [member, uniqueMember, objectClass, memberOf]
    member_base: ou=people,dc=example,dc=org   # groups: member DNs under it become member ids
    member_id_attribute: entryUUID       # default: id_attribute (the user job's id_attribute)
    flavor: ldap                         # or active_directory
    range_size: 1500                     # active_directory: values per range of a member attribute
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import ldap3
from ldap3.core import exceptions as ldap_errors

from common.config.validation import as_list, boolean, check_keys, choice, integer, join, string
from common.errors import ConfigError, SourceError
from common.peers.ldap_connect import (
    LinkError,
    close_connection,
    found_entries,
    link_failure,
    next_cookie,
    open_connection,
    server_said,
)
from common.peers.ldap_link import LINK_KEYS, LinkSettings, parse_link
from common.peers.ldap_names import DnError, canonical_dn
from engine.core.schedule import parse_duration
from engine.model import SourceObject
from engine.sources import ad, ad_values
from engine.sources.ad_values import ad_text
from engine.sources.base import ProblemLog

_KEYS: Final = (
    "type",
    *LINK_KEYS,
    "base_dn",
    "filter",
    "scope",
    "attributes",
    "id_attribute",
    "page_size",
    "multi_valued",
    "incremental",
    "full_import_every",
    "member_base",
    "member_id_attribute",
    "flavor",
    "range_size",
)
FLAVORS: Final = ("ldap", "active_directory")
_SCOPES: Final = {"subtree": ldap3.SUBTREE, "one": ldap3.LEVEL}
MULTI_VALUED: Final = frozenset({"member", "uniquemember", "objectclass", "memberof"})
MEMBER_ATTRIBUTES: Final = frozenset({"member", "uniquemember"})
"""The attributes whose DNs `member_base` turns into member ids."""
AD_FILTER: Final = "(&(objectCategory=person)(objectClass=user))"
"""Active Directory's people (computers are `user`s too, but not `person`s)."""
_NAMED_IN_PROBLEM: Final = 3
_NOT_TEXT: Final = "has a value that is not UTF-8 text (a binary attribute?)"


@dataclass(frozen=True, slots=True, kw_only=True)
class LdapSourceSettings:
    """A validated LDAP source; its repr hides the bind password."""

    link: LinkSettings
    base_dn: str
    filter: str = "(objectClass=inetOrgPerson)"
    scope: str = "subtree"
    attributes: tuple[str, ...] = ()
    id_attribute: str = "entryUUID"
    page_size: int = 500
    multi_valued: frozenset[str] = MULTI_VALUED
    incremental: bool = False
    """Between full imports, cycles read only what changed since the last one (`modifyTimestamp`)."""
    full_import_every_s: float = 86_400.0
    """How often an incremental job still reads everything, which is how deleted entries are seen."""
    member_base: str | None = None
    """Member DNs under it become the ids of those entries, as the user job of a group job knows them."""
    member_id_attribute: str | None = None
    """The members' id attribute (the user job's `id_attribute`); None: this job's `id_attribute`."""
    flavor: str = "ldap"
    """`active_directory`: AD values, ranged attributes, USN watermarks, tombstones (`engine.sources.ad`)."""
    range_size: int = 1500
    """Active Directory: values of a multi-valued attribute asked for at a time (AD's MaxValRange)."""

    @property
    def active_directory(self) -> bool:
        return self.flavor == "active_directory"


def parse_ldap_source(path: str, raw: Mapping[str, Any], *, base_dir: Path) -> LdapSourceSettings:
    """Validate a job's LDAP `source:`; errors name the key's path, the problem and the fix."""
    check_keys(path, raw, _KEYS, required=("url", "bind_dn", "bind_password", "base_dn"))
    link = parse_link(path, raw, base_dir=base_dir)
    flavor = choice(join(path, "flavor"), raw.get("flavor", "ldap"), FLAVORS)
    ad = flavor == "active_directory"
    if "range_size" in raw and not ad:
        raise ConfigError(
            join(path, "range_size"), "applies only with `flavor: active_directory`", "add it, or remove this"
        )
    search_filter = string(
        join(path, "filter"), raw.get("filter", AD_FILTER if ad else "(objectClass=inetOrgPerson)")
    )
    if not (search_filter.startswith("(") and search_filter.endswith(")")):
        raise ConfigError(
            join(path, "filter"), "must be an LDAP filter in parentheses", "e.g. (objectClass=person)"
        )
    attributes = tuple(
        string(join(join(path, "attributes"), i), a)
        for i, a in enumerate(as_list(join(path, "attributes"), raw.get("attributes", [])))
    )
    multi = raw.get("multi_valued")
    member_base = _member_base(path, raw)
    return LdapSourceSettings(
        link=link,
        base_dn=string(join(path, "base_dn"), raw["base_dn"]),
        filter=search_filter,
        scope=choice(join(path, "scope"), raw.get("scope", "subtree"), tuple(_SCOPES)),
        attributes=attributes,
        id_attribute=string(
            join(path, "id_attribute"), raw.get("id_attribute", "objectGUID" if ad else "entryUUID")
        ),
        page_size=integer(join(path, "page_size"), raw.get("page_size", 500), minimum=1),
        multi_valued=(
            MULTI_VALUED
            if multi is None
            else frozenset(
                string(join(join(path, "multi_valued"), i), a).lower()
                for i, a in enumerate(as_list(join(path, "multi_valued"), multi))
            )
        ),
        incremental=boolean(join(path, "incremental"), raw.get("incremental", False)),
        full_import_every_s=parse_duration(
            join(path, "full_import_every"), raw.get("full_import_every", "1d")
        ),
        member_base=member_base,
        member_id_attribute=(
            string(join(path, "member_id_attribute"), raw["member_id_attribute"])
            if "member_id_attribute" in raw
            else None
        ),
        flavor=flavor,
        range_size=integer(join(path, "range_size"), raw.get("range_size", 1500), minimum=1),
    )


def _member_base(path: str, raw: Mapping[str, Any]) -> str | None:
    if raw.get("member_base") is None:
        if "member_id_attribute" in raw:
            raise ConfigError(
                join(path, "member_id_attribute"),
                "applies only with `member_base:`",
                "add `member_base:` (where the members are) or remove it",
            )
        return None
    base = string(join(path, "member_base"), raw["member_base"])
    try:
        canonical_dn(base)
    except DnError as exc:
        raise ConfigError(
            join(path, "member_base"), f"is not a DN ({exc})", "e.g. ou=people,dc=example,dc=org"
        ) from None
    return base


class LdapSource(ProblemLog):
    """Streams the entries under a base, a page per batch; see the module docstring."""

    def __init__(self, settings: LdapSourceSettings, *, since: str | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.since = since
        self.watermark: str | None = since
        self._full = since is None
        self.deleted: list[str] = []
        """After an incremental read of Active Directory: the ids of the entries deleted since `since`."""
        self.entries_read = 0
        """Entries the server returned in the last read (tombstones included)."""
        self._member_ids: dict[str, str] | None = None
        """For a read with `member_base`: canonical member DN -> member id, once the first group came."""
        self._binary_noted: set[str] = set()
        """Attributes of this read said to be binary and left out (lower case), each said once."""

    @property
    def full(self) -> bool:
        """Whether a read is a full import (so objects it does not see have left the source)."""
        return self._full

    async def batches(self, size: int) -> AsyncIterator[list[SourceObject]]:
        """Yield the entries a page at a time (pages of at most `size` and `page_size`)."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self._forget_problems()
        self._member_ids = None
        self._binary_noted = set()
        self.deleted, self.entries_read = [], 0
        s = self.settings
        names = self._names()
        page = min(size, s.page_size)
        conn = await asyncio.to_thread(self._connect)
        try:
            search_filter, after_usn, dc = await asyncio.to_thread(self._start, conn)
            cookie: bytes | None = None
            read = 0
            while True:
                entries, cookie = await asyncio.to_thread(
                    self._page, conn, s.base_dn, search_filter, _SCOPES[s.scope], names, page, cookie
                )
                if entries and s.member_base is not None and self._member_ids is None:
                    # On a connection of its own: a second paged search would end this one's.
                    self._member_ids = await asyncio.to_thread(self._read_member_ids, s.member_base)
                batch = []
                for dn, raw in entries:
                    read += 1
                    obj = self._object(read, dn, raw)
                    if obj is not None:
                        batch.append(obj)
                if batch:
                    yield batch
                if not cookie:
                    break
            if dc is not None and after_usn is not None:
                self.deleted = await asyncio.to_thread(self._read_deleted, conn, dc, after_usn)
        finally:
            await asyncio.to_thread(close_connection, conn)

    def _names(self) -> list[str]:
        """The attributes to ask for: those named (or all), the watermark's and the id; on Active
        Directory the member attributes a range at a time."""
        s = self.settings
        names = list(s.attributes) or ["*"]
        stamp = () if s.active_directory else ("modifyTimestamp",)
        names += [n for n in (*stamp, s.id_attribute) if n.lower() != "dn" and n not in names]
        if s.active_directory:
            ranged = [n for n in names if n.lower() in MEMBER_ATTRIBUTES]
            if names[0] == "*":
                ranged = ranged or ["member"]
            names = [n for n in names if n not in ranged] + [ad.ranged_name(n, s.range_size) for n in ranged]
        return names

    def _start(self, conn: ldap3.Connection) -> tuple[str, int | None, ad.DomainController | None]:
        """The filter of this read; on Active Directory also the USN it reads changes after (None: a
        full read) and the DC. The watermark it leaves is the DC's USN *before* the search."""
        s = self.settings
        if not s.active_directory:
            if self.since is None:
                return s.filter, None, None
            return f"(&{s.filter}(modifyTimestamp>={self.since}))", None, None
        conn.auto_range = False  # ranges are read by `ad.read_ranges`, which says when one fails
        try:
            dc = ad.domain_controller(conn)
        except ad.AdError as exc:
            raise SourceError(f"{s.link.url}: {exc}") from None
        last = ad.UsnWatermark.parse(self.since)
        self.watermark = str(ad.UsnWatermark(dc.invocation_id, dc.highest_usn))
        if last is None or last.dc != dc.invocation_id:  # none yet, or another DC's numbers: read all
            self._full = True
            return s.filter, None, dc
        self._full = False
        return f"(&{s.filter}(uSNChanged>={last.usn + 1}))", last.usn, dc

    def _connect(self) -> ldap3.Connection:
        link = self.settings.link
        try:
            return open_connection(link)
        except LinkError as failed:
            raise SourceError(link_failure(link, failed)) from None

    def _page(
        self,
        conn: ldap3.Connection,
        base: str,
        search_filter: str,
        scope: str,
        names: list[str],
        size: int,
        cookie: bytes | None,
        controls: list[tuple[str, bool, Any]] | None = None,
    ) -> tuple[list[Any], bytes | None]:
        link = self.settings.link
        try:
            conn.search(
                base,
                search_filter,
                search_scope=scope,
                attributes=names,
                paged_size=size,
                paged_cookie=cookie,
                controls=controls,
            )
        except (ldap_errors.LDAPException, OSError) as exc:
            raise SourceError(
                f"{link.url}: the search under {base} failed: {type(exc).__name__}: {exc}"
            ) from None
        if conn.result.get("result") != 0:
            raise SourceError(f"{link.url}: the search under {base} failed: {server_said(conn.result)}")
        cookie = next_cookie(conn)
        entries = found_entries(conn)
        self.entries_read += len(entries)
        if self.settings.active_directory:
            try:
                entries = [
                    (dn, ad.read_ranges(conn, dn, raw, self.settings.range_size)) for dn, raw in entries
                ]
            except ad.AdError as exc:
                raise SourceError(f"{link.url}: {exc}") from None
        return entries, cookie

    def _read_deleted(self, conn: ldap3.Connection, dc: ad.DomainController, after_usn: int) -> list[str]:
        """The ids of the entries deleted from the search's scope after `after_usn` (their tombstones'
        ids; a tombstone keeps `objectGUID`, `objectSid` and `sAMAccountName`, not its DN)."""
        s = self.settings
        ids: list[str] = []
        cookie: bytes | None = None
        while True:
            entries, cookie = self._page(
                conn,
                dc.naming_context,
                ad.tombstone_filter(after_usn),
                ldap3.SUBTREE,
                [s.id_attribute, "lastKnownParent"],
                s.page_size,
                cookie,
                [(ad.SHOW_DELETED, True, None)],
            )
            for _dn, raw in entries:
                parent = _first(raw, "lastKnownParent")
                source_id = self._first_text(raw, s.id_attribute)
                if parent and source_id and ad.in_scope(parent, s.base_dn, one_level=s.scope == "one"):
                    ids.append(source_id)
            if not cookie:
                return ids

    def _read_member_ids(self, base: str) -> dict[str, str]:
        """Every entry under `base` (a subtree, paged): its canonical DN -> its member id."""
        attribute = self.settings.member_id_attribute or self.settings.id_attribute
        by_dn = attribute.lower() == "dn"
        ids: dict[str, str] = {}
        conn = self._connect()
        try:
            cookie: bytes | None = None
            while True:
                entries, cookie = self._page(
                    conn,
                    base,
                    "(objectClass=*)",
                    ldap3.SUBTREE,
                    ["1.1" if by_dn else attribute],
                    self.settings.page_size,
                    cookie,
                )
                for dn, raw in entries:
                    value = dn if by_dn else self._first_text(raw, attribute)
                    if value:
                        ids[canonical_dn(dn)] = value
                if not cookie:
                    return ids
        finally:
            close_connection(conn)

    def _first_text(self, raw: Mapping[str, list[bytes]], name: str) -> str | None:
        """The first value of attribute `name` as text (an AD GUID or SID as such), None if none."""
        if self.settings.active_directory:
            values = next((v for k, v in raw.items() if k.lower() == name.lower()), [])
            try:
                texts = ad_text(name.lower(), values[:1])
            except ValueError:
                return None
            if texts is not None:
                return texts[0] if texts else None
        return _first(raw, name)

    def _object(self, number: int, dn: str, raw: Mapping[str, list[bytes]]) -> SourceObject | None:
        s = self.settings
        wanted = {n.lower(): n for n in s.attributes}
        attributes: dict[str, Any] = {"dn": dn}
        stamp = None
        for name, values in raw.items():
            lower = name.lower()
            try:
                texts = ad_text(lower, values) if s.active_directory else None
            except ValueError as exc:
                self._problem(number, f"{dn}: {name}: {exc}; entry skipped")
                return None
            if texts is None:
                texts = _texts(values)
            if texts is None:  # bytes that are not UTF-8: a binary attribute (jpegPhoto, objectGUID...)
                if wanted or lower == s.id_attribute.lower() or lower in MEMBER_ATTRIBUTES:
                    self._problem(number, f"{dn}: {name} {_NOT_TEXT}; entry skipped")
                    return None
                self._binary_left_out(number, dn, name)
                continue
            if lower == "modifytimestamp" and texts and not s.active_directory:
                stamp = texts[0]
            if lower == ad_values.USER_ACCOUNT_CONTROL and texts and s.active_directory:
                attributes["enabled"] = ad_values.enabled(texts[0])
            if not texts or (wanted and lower not in wanted):
                continue
            if self._member_ids is not None and lower in MEMBER_ATTRIBUTES:
                texts = self._members(number, dn, texts)
            key = wanted.get(lower, name)
            attributes[key] = texts if lower in s.multi_valued or len(texts) != 1 else texts[0]
        if stamp is not None and (self.watermark is None or stamp > self.watermark):
            self.watermark = stamp
        source_id = dn if s.id_attribute.lower() == "dn" else self._first_text(raw, s.id_attribute)
        if not source_id:
            self._problem(number, f"{dn} has no {s.id_attribute}; entry skipped")
            return None
        return SourceObject(source_id, attributes, number)

    def _binary_left_out(self, number: int, dn: str, name: str) -> None:
        """Say once a read that an attribute no one named (all were read) is binary and left out."""
        if name.lower() not in self._binary_noted:
            self._binary_noted.add(name.lower())
            self._problem(
                number,
                f"{dn}: {name} {_NOT_TEXT}; left out of every entry (to have it read, list it under "
                "`attributes:`, and an entry whose value is not text is then skipped)",
                skipped=False,  # the entry was read; only an attribute no one named is missing
            )

    def _members(self, number: int, dn: str, member_dns: list[str]) -> list[str]:
        """The ids of a group's members; a DN without one under `member_base` is left out, and said."""
        ids, missing = [], []
        known = self._member_ids or {}
        for member in member_dns:
            try:
                found = known.get(canonical_dn(member))
            except DnError:
                found = None
            if found is None:
                missing.append(member)
            else:
                ids.append(found)
        if missing:
            named = "; ".join(missing[:_NAMED_IN_PROBLEM])
            more = f" and {len(missing) - _NAMED_IN_PROBLEM} more" if len(missing) > _NAMED_IN_PROBLEM else ""
            self._problem(
                number,
                f"{dn}: {len(missing)} member(s) not found under {self.settings.member_base} "
                f"({named}{more}); left out",
                skipped=False,  # the group itself was read
            )
        return ids


def _first(raw: Mapping[str, list[bytes]], name: str) -> str | None:
    """The first value of attribute `name` (any case) as text; None if it has none, or not as text."""
    values = next((v for k, v in raw.items() if k.lower() == name.lower()), [])
    texts = _texts(values[:1])
    return texts[0] if texts else None


def _texts(values: list[bytes]) -> list[str] | None:
    """The values as text, or None when one is not UTF-8 (LDAP strings are UTF-8, RFC 4517 §3.3.6)."""
    try:
        return [v.decode("utf-8") for v in values]
    except UnicodeDecodeError:
        return None
