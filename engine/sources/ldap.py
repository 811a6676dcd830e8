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

Settings (beside `type: ldap`)::

    url: ldaps://ldap.example.org        # required; ldap:// or ldaps://
    start_tls: false
    ca_file: certs/ldap-ca.pem           # relative to the job file
    verify_tls: true
    bind_dn: cn=reader,dc=example,dc=org # required
    bind_password: ${LDAP_READER_PASSWORD}
    base_dn: ou=people,dc=example,dc=org # required
    filter: (objectClass=inetOrgPerson)
    scope: subtree                       # or one
    attributes: [uid, givenName, sn, cn, mail]   # default: all user attributes
    id_attribute: entryUUID
    incremental: false                   # true: read only changes between full imports
    full_import_every: 1d
    page_size: 500
    multi_valued: [member, uniqueMember, objectClass, memberOf]
    timeout_s: 30
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import ldap3
from ldap3.core import exceptions as ldap_errors

from engine.schedule import parse_duration
from engine.sources.base import SourceObject, SourceProblem
from queues.errors import ConfigError, SourceError
from queues.validation import as_list, boolean, check_keys, choice, integer, join, positive, string

MAX_PROBLEMS: Final = 1000
_PAGED_RESULTS: Final = "1.2.840.113556.1.4.319"
_KEYS: Final = (
    "type",
    "url",
    "start_tls",
    "ca_file",
    "verify_tls",
    "bind_dn",
    "bind_password",
    "base_dn",
    "filter",
    "scope",
    "attributes",
    "id_attribute",
    "page_size",
    "multi_valued",
    "timeout_s",
    "incremental",
    "full_import_every",
)
_SCOPES: Final = {"subtree": ldap3.SUBTREE, "one": ldap3.LEVEL}
MULTI_VALUED: Final = frozenset({"member", "uniquemember", "objectclass", "memberof"})


@dataclass(frozen=True, slots=True, kw_only=True)
class LdapSourceSettings:
    """A validated LDAP source; its repr hides the bind password."""

    url: str
    bind_dn: str
    bind_password: str = field(repr=False)
    base_dn: str
    filter: str = "(objectClass=inetOrgPerson)"
    scope: str = "subtree"
    attributes: tuple[str, ...] = ()
    id_attribute: str = "entryUUID"
    page_size: int = 500
    multi_valued: frozenset[str] = MULTI_VALUED
    start_tls: bool = False
    verify_tls: bool = True
    ca_file: Path | None = None
    timeout_s: float = 30.0
    incremental: bool = False
    """Between full imports, cycles read only what changed since the last one (`modifyTimestamp`)."""
    full_import_every_s: float = 86_400.0
    """How often an incremental job still reads everything, which is how deleted entries are seen."""


def parse_ldap_source(path: str, raw: Mapping[str, Any], *, base_dir: Path) -> LdapSourceSettings:
    """Validate a job's LDAP `source:`; errors name the key's path, the problem and the fix."""
    check_keys(path, raw, _KEYS, required=("url", "bind_dn", "bind_password", "base_dn"))
    url = string(join(path, "url"), raw["url"])
    if not url.lower().startswith(("ldap://", "ldaps://")):
        raise ConfigError(
            join(path, "url"), "must be an ldap:// or ldaps:// URL", "e.g. ldaps://ldap.example.org"
        )
    search_filter = string(join(path, "filter"), raw.get("filter", "(objectClass=inetOrgPerson)"))
    if not (search_filter.startswith("(") and search_filter.endswith(")")):
        raise ConfigError(
            join(path, "filter"), "must be an LDAP filter in parentheses", "e.g. (objectClass=person)"
        )
    ca_file = None
    if raw.get("ca_file") is not None:
        ca_file = base_dir / string(join(path, "ca_file"), raw["ca_file"])
        if not ca_file.is_file():
            raise ConfigError(
                join(path, "ca_file"), f"no file at {ca_file}", "name a PEM file of CA certificates"
            )
    timeout = positive(join(path, "timeout_s"), raw.get("timeout_s", 30.0))
    attributes = tuple(
        string(join(join(path, "attributes"), i), a)
        for i, a in enumerate(as_list(join(path, "attributes"), raw.get("attributes", [])))
    )
    multi = raw.get("multi_valued")
    return LdapSourceSettings(
        url=url,
        bind_dn=string(join(path, "bind_dn"), raw["bind_dn"]),
        bind_password=string(join(path, "bind_password"), raw["bind_password"]),
        base_dn=string(join(path, "base_dn"), raw["base_dn"]),
        filter=search_filter,
        scope=choice(join(path, "scope"), raw.get("scope", "subtree"), tuple(_SCOPES)),
        attributes=attributes,
        id_attribute=string(join(path, "id_attribute"), raw.get("id_attribute", "entryUUID")),
        page_size=integer(join(path, "page_size"), raw.get("page_size", 500), minimum=1),
        multi_valued=(
            MULTI_VALUED
            if multi is None
            else frozenset(
                string(join(join(path, "multi_valued"), i), a).lower()
                for i, a in enumerate(as_list(join(path, "multi_valued"), multi))
            )
        ),
        start_tls=boolean(join(path, "start_tls"), raw.get("start_tls", False)),
        verify_tls=boolean(join(path, "verify_tls"), raw.get("verify_tls", True)),
        ca_file=ca_file,
        timeout_s=timeout,
        incremental=boolean(join(path, "incremental"), raw.get("incremental", False)),
        full_import_every_s=parse_duration(
            join(path, "full_import_every"), raw.get("full_import_every", "1d")
        ),
    )


class LdapSource:
    """Streams the entries under a base, a page per batch; see the module docstring."""

    def __init__(self, settings: LdapSourceSettings, *, since: str | None = None) -> None:
        self.settings = settings
        self.since = since
        self.problems: list[SourceProblem] = []
        self.problems_omitted = 0
        self.watermark: str | None = since

    @property
    def full(self) -> bool:
        """Whether a read is a full import (so objects it does not see have left the source)."""
        return self.since is None

    @property
    def problem_count(self) -> int:
        return len(self.problems) + self.problems_omitted

    async def batches(self, size: int) -> AsyncIterator[list[SourceObject]]:
        """Yield the entries a page at a time (pages of at most `size` and `page_size`)."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self.problems, self.problems_omitted = [], 0
        page = min(size, self.settings.page_size)
        conn = await asyncio.to_thread(self._connect)
        try:
            cookie: bytes | None = None
            read = 0
            while True:
                entries, cookie = await asyncio.to_thread(self._page, conn, page, cookie)
                batch = []
                for dn, raw in entries:
                    read += 1
                    obj = self._object(read, dn, raw)
                    if obj is not None:
                        batch.append(obj)
                if batch:
                    yield batch
                if not cookie:
                    return
        finally:
            await asyncio.to_thread(_close, conn)

    def _search_filter(self) -> str:
        if self.since is None:
            return self.settings.filter
        return f"(&{self.settings.filter}(modifyTimestamp>={self.since}))"

    def _connect(self) -> ldap3.Connection:
        s = self.settings
        tls = None
        if s.start_tls or s.url.lower().startswith("ldaps://"):
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED if s.verify_tls else ssl.CERT_NONE,
                ca_certs_file=str(s.ca_file) if s.ca_file else None,
            )
        server = ldap3.Server(
            s.url,
            use_ssl=s.url.lower().startswith("ldaps://"),
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=10,
        )
        conn = ldap3.Connection(
            server,
            user=s.bind_dn,
            password=s.bind_password,
            receive_timeout=max(1, math.ceil(s.timeout_s)),  # ldap3 packs it as a C int
            raise_exceptions=False,
            auto_escape=False,
            check_names=False,
        )
        try:
            conn.open()
            if s.start_tls and not conn.start_tls():
                raise SourceError(f"{s.url}: StartTLS failed: {conn.result.get('description')}")
            if not conn.bind():
                raise SourceError(f"{s.url}: bind as {s.bind_dn} failed: {_said(conn.result)}")
        except (ldap_errors.LDAPException, OSError) as exc:
            _close(conn)
            raise SourceError(f"{s.url}: cannot connect: {type(exc).__name__}: {exc}") from None
        except SourceError:
            _close(conn)
            raise
        return conn

    def _page(
        self, conn: ldap3.Connection, size: int, cookie: bytes | None
    ) -> tuple[list[Any], bytes | None]:
        s = self.settings
        names = list(s.attributes) or ["*"]
        names += [n for n in ("modifyTimestamp", s.id_attribute) if n.lower() != "dn" and n not in names]
        try:
            conn.search(
                s.base_dn,
                self._search_filter(),
                search_scope=_SCOPES[s.scope],
                attributes=names,
                paged_size=size,
                paged_cookie=cookie,
            )
        except (ldap_errors.LDAPException, OSError) as exc:
            raise SourceError(
                f"{s.url}: the search under {s.base_dn} failed: {type(exc).__name__}: {exc}"
            ) from None
        if conn.result.get("result") != 0:
            raise SourceError(f"{s.url}: the search under {s.base_dn} failed: {_said(conn.result)}")
        entries = [
            (item["dn"], item.get("raw_attributes", {}))
            for item in conn.response or ()
            if item.get("type") == "searchResEntry"
        ]
        control = (conn.result.get("controls") or {}).get(_PAGED_RESULTS) or {}
        return entries, (control.get("value") or {}).get("cookie") or None

    def _object(self, number: int, dn: str, raw: Mapping[str, list[bytes]]) -> SourceObject | None:
        s = self.settings
        wanted = {n.lower(): n for n in s.attributes}
        attributes: dict[str, Any] = {"dn": dn}
        stamp = None
        for name, values in raw.items():
            lower = name.lower()
            texts = [v.decode("utf-8", errors="replace") for v in values]
            if lower == "modifytimestamp" and texts:
                stamp = texts[0]
            if not texts or (wanted and lower not in wanted):
                continue
            key = wanted.get(lower, name)
            attributes[key] = texts if lower in s.multi_valued or len(texts) != 1 else texts[0]
        if stamp is not None and (self.watermark is None or stamp > self.watermark):
            self.watermark = stamp
        if s.id_attribute.lower() == "dn":
            source_id: str | None = dn
        else:
            ids = next((v for k, v in raw.items() if k.lower() == s.id_attribute.lower()), [])
            source_id = ids[0].decode("utf-8", errors="replace") if ids else None
        if not source_id:
            self._problem(number, f"{dn} has no {s.id_attribute}; entry skipped")
            return None
        return SourceObject(source_id, attributes, number)

    def _problem(self, number: int, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(SourceProblem(number, message))
        else:
            self.problems_omitted += 1


def _said(result: Mapping[str, Any]) -> str:
    text = f"{result.get('description')} ({result.get('result')})"
    return f"{text}: {result['message']}" if result.get("message") else text


def _close(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except Exception:  # a broken link: closing it is best effort
        pass
    sock = getattr(conn, "socket", None)
    if sock is not None:
        sock.close()
