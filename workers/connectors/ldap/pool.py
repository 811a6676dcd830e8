"""Connections to one LDAP server for a connector: a pool, and result codes as errors.

ldap3 is synchronous, so each pooled connection is used by one worker thread at a time and the event loop
only awaits the thread: a whole chunk of operations runs in one hop. A connection that breaks (the server
went away, a timeout) is dropped and the next use dials again. LDAP result codes become `TransientError`
(busy, unavailable, server down, timeouts) or `PermanentError` (everything the server refused on its
merits: constraint and object class violations, insufficient access, invalid syntax, ...), keeping the
server's own message. The bind password never appears in a message or a repr.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import ldap3
from ldap3.core import exceptions as ldap_errors

from common.errors import ConnectorError, PermanentError, TransientError
from common.peers.ldap_connect import (
    LinkError,
    close_connection,
    found_entries,
    next_cookie,
    open_connection,
)
from common.peers.ldap_link import LinkSettings

T = TypeVar("T")

# Result codes worth a retry: timeLimitExceeded, busy, unavailable, other (slapd's internal errors),
# and the client-side server down, timeout and connect error.
TRANSIENT_CODES: Final = frozenset({3, 51, 52, 80, 81, 85, 91})
NO_SUCH_OBJECT: Final = 32
ALREADY_EXISTS: Final = 68
OBJECT_CLASS_VIOLATION: Final = 65
NO_SUCH_ATTRIBUTE: Final = 16  # also: deleting a value that is not there
VALUE_EXISTS: Final = 20  # attributeOrValueExists: adding a value that is there
_MESSAGE_MAX: Final = 500
BROKEN_LINK: Final = (ldap_errors.LDAPCommunicationError, ldap_errors.LDAPResponseTimeoutError, OSError)
"""What ldap3 raises when the connection fails under a call: the connection is then dropped."""


class LdapFailure(Exception):
    """A result code other than success, raised inside a worker thread and mapped by `error()`."""

    def __init__(self, what: str, result: Mapping[str, Any]) -> None:
        super().__init__(what)
        self.what = what
        self.code = int(result.get("result", 80))
        self.description = str(result.get("description") or "")
        self.message = str(result.get("message") or "")

    def error(self) -> ConnectorError:
        text = f"{self.what}: {self.description or 'result'} ({self.code})"
        if self.message:
            text += f": {self.message[:_MESSAGE_MAX]}"
        kind = TransientError if self.code in TRANSIENT_CODES else PermanentError
        return kind(text, code=str(self.code))


def broken_link(what: str, exc: Exception) -> TransientError:
    """The error of a connection that failed under a call (server down, reset, timeout)."""
    if isinstance(exc, ldap_errors.LDAPResponseTimeoutError | TimeoutError):
        return TransientError(f"{what}: no answer in time", code="timeout")
    return TransientError(f"{what}: {type(exc).__name__}: {exc}", code="unavailable")


class Session:
    """One bound ldap3 connection, used by one thread at a time. Each call raises `LdapFailure` on a
    result other than success (and the codes in `ok`), or an ldap3 communication error."""

    def __init__(self, conn: ldap3.Connection) -> None:
        self.conn = conn
        self.broken = False  # set by a caller that met a broken link, so that the pool drops it

    def search(
        self, base: str, search_filter: str, attributes: list[str], *, scope: str = ldap3.SUBTREE
    ) -> list[tuple[str, dict[str, list[Any]]]]:
        """Entries as (dn, attributes); a base that does not exist gives none."""
        conn = self.conn
        conn.search(base, search_filter, search_scope=scope, attributes=attributes)
        code = conn.result.get("result", 80)
        if code not in (0, NO_SUCH_OBJECT):
            raise LdapFailure(f"search under {base}", conn.result)
        return found_entries(conn)

    def search_paged(
        self, base: str, search_filter: str, attributes: list[str], *, size: int
    ) -> list[list[tuple[str, dict[str, list[Any]]]]]:
        """Every entry of a subtree search, as the pages of a paged search (RFC 2696) of `size`: a
        cookie belongs to its connection, so the whole search runs on this one."""
        conn = self.conn
        pages = []
        cookie: bytes | None = None
        while True:
            conn.search(base, search_filter, attributes=attributes, paged_size=size, paged_cookie=cookie)
            code = conn.result.get("result", 80)
            if code not in (0, NO_SUCH_OBJECT):
                raise LdapFailure(f"search under {base}", conn.result)
            pages.append(found_entries(conn))
            cookie = next_cookie(conn)
            if not cookie:
                return pages

    def read(self, dn: str, attributes: list[str]) -> tuple[str, dict[str, list[Any]]] | None:
        found = self.search(dn, "(objectClass=*)", attributes, scope=ldap3.BASE)
        return found[0] if found else None

    def add(self, dn: str, attributes: dict[str, list[str]]) -> None:
        if not self.conn.add(dn, attributes=attributes):
            raise LdapFailure(f"add {dn}", self.conn.result)

    def modify(
        self, dn: str, changes: dict[str, list[tuple[str, list[str]]]], *, ok: tuple[int, ...] = ()
    ) -> int:
        self.conn.modify(dn, changes)
        code = int(self.conn.result.get("result", 80))
        if code != 0 and code not in ok:
            raise LdapFailure(f"modify {dn}", self.conn.result)
        return code

    def rename(self, dn: str, new_rdn: str, new_superior: str | None) -> None:
        if not self.conn.modify_dn(dn, new_rdn, delete_old_dn=True, new_superior=new_superior):
            raise LdapFailure(f"rename {dn}", self.conn.result)

    def delete(self, dn: str) -> bool:
        """Delete `dn`; False when it was not there."""
        if self.conn.delete(dn):
            return True
        if self.conn.result.get("result") == NO_SUCH_OBJECT:
            return False
        raise LdapFailure(f"delete {dn}", self.conn.result)


class _Slot:
    __slots__ = ("session",)

    def __init__(self) -> None:
        self.session: Session | None = None


class Pool:
    """At most `size` connections to one server, each used by one thread at a time."""

    def __init__(self, link: LinkSettings, size: int, *, name: str) -> None:
        self.link = link
        self.size = size
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"ldap-{name}")
        self._slots: asyncio.Queue[_Slot] = asyncio.Queue()
        for _ in range(size):
            self._slots.put_nowait(_Slot())
        self._closed = False
        self.connects = 0

    async def run(self, call: Callable[[Session], T]) -> T:
        """Run `call` with a bound session in a worker thread. A broken link is dropped (and a
        `TransientError` raised); any other exception passes through with the session kept."""
        if self._closed:
            raise TransientError("the LDAP connection pool is closed")
        slot = await self._slots.get()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, slot, call)
        finally:
            self._slots.put_nowait(slot)

    def _call(self, slot: _Slot, call: Callable[[Session], T]) -> T:
        try:
            if slot.session is None:
                slot.session = self._connect()
            return call(slot.session)
        except BROKEN_LINK as exc:
            self._drop(slot)
            raise broken_link(f"LDAP server {self.link.url}", exc) from None
        except LdapFailure as failure:
            if failure.code in (81, 91):
                self._drop(slot)
            raise failure.error() from None
        finally:
            if slot.session is not None and slot.session.broken:
                self._drop(slot)

    def _connect(self) -> Session:
        try:
            conn = open_connection(self.link)
        except LinkError as failed:
            raise _open_failure(self.link, failed) from None
        self.connects += 1
        return Session(conn)

    @staticmethod
    def _drop(slot: _Slot) -> None:
        session, slot.session = slot.session, None
        if session is not None:
            close_connection(session.conn)

    async def aclose(self) -> None:
        """Unbind every idle connection and stop the threads; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        slots = [await self._slots.get() for _ in range(self.size)]  # waits for calls in flight
        await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: [self._drop(slot) for slot in slots]
        )
        self._executor.shutdown(wait=True)


def _open_failure(link: LinkSettings, failed: LinkError) -> Exception:
    """The error of a connection that could not be opened: TLS that cannot work is permanent (`tls`),
    a refused bind is mapped as any result; a dial that failed is left as ldap3 raised it, a broken link."""
    cause = failed.cause
    if failed.stage == "tls_settings":  # e.g. the CA file went away since the config was read
        return PermanentError(f"TLS settings for {link.url} cannot be used: {cause}", code="tls")
    if failed.stage == "start_tls":
        return TransientError(f"StartTLS with {link.url} failed: {failed.result.get('description')}")
    if failed.stage == "bind":
        return LdapFailure(f"bind to {link.url} as {link.bind_dn}", failed.result).error()
    if isinstance(cause, ldap_errors.LDAPStartTLSError):
        return PermanentError(f"StartTLS with {link.url} failed: {cause}", code="tls")
    if isinstance(cause, ldap_errors.LDAPSocketOpenError) and "certificate" in str(cause).lower():
        return PermanentError(f"TLS with {link.url} failed: {cause}", code="tls")
    assert cause is not None
    return cause
