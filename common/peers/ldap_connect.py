"""A bound ldap3 connection for a `LinkSettings`: opening it, what a failed open says, the entries a search
found on it, and closing it.

`open_connection` dials, upgrades with StartTLS when the link asks, and binds (simple bind), with the
link's timeouts; it is synchronous, as ldap3 is, so callers run it in a thread. Every way it fails is one
`LinkError` whose `stage` says where, so that the LDAP source and the LDAP target each word it as their
own error (`link_failure` words it plainly). `close_connection` unbinds, or at least closes the socket of
a connection that broke.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import ldap3
from ldap3.core import exceptions as ldap_errors

from common.errors import RosterError
from common.peers.ldap_link import LinkSettings, ldap_server

Stage = Literal["tls_settings", "start_tls", "bind", "connect"]


class LinkError(RosterError):
    """Opening a connection failed; the connection is closed already.

    `stage` says where: `tls_settings` (the ldap3 TLS objects could not be built from the link, e.g. its CA
    file went away), `start_tls` and `bind` (the server refused: `result` holds its answer), `connect`
    (ldap3 or the socket raised `cause` while dialing, upgrading or binding). Never holds the password.
    """

    def __init__(
        self,
        stage: Stage,
        *,
        result: Mapping[str, Any] | None = None,
        cause: Exception | None = None,
    ) -> None:
        super().__init__(stage, cause or dict(result or {}))
        self.stage: Stage = stage
        self.result: Mapping[str, Any] = result or {}
        self.cause = cause


def open_connection(link: LinkSettings) -> ldap3.Connection:
    """A connection to `link`'s server, opened, upgraded when `start_tls` says so, and bound.

    Results come back as codes, not exceptions (`raise_exceptions=False`); filters and names are sent
    as written (the caller escapes them) and attributes the server leaves out are left out."""
    try:
        server = ldap_server(link)  # a fresh one: ldap3 would shun an address that failed once
    except ldap_errors.LDAPException as exc:
        raise LinkError("tls_settings", cause=exc) from None
    conn = ldap3.Connection(
        server,
        user=link.bind_dn,
        password=link.bind_password,
        authentication=ldap3.SIMPLE,
        client_strategy=ldap3.SYNC,
        receive_timeout=link.receive_timeout,
        raise_exceptions=False,
        auto_escape=False,
        check_names=False,
        return_empty_attributes=False,
    )
    try:
        conn.open()
        if link.start_tls and not conn.start_tls():
            raise LinkError("start_tls", result=dict(conn.result))
        if not conn.bind():
            raise LinkError("bind", result=dict(conn.result))
    except LinkError:
        close_connection(conn)
        raise
    except (ldap_errors.LDAPException, OSError) as exc:
        close_connection(conn)
        raise LinkError("connect", cause=exc) from None
    except BaseException:
        close_connection(conn)
        raise
    return conn


PAGED_RESULTS: Final = "1.2.840.113556.1.4.319"
"""The simple paged results control (RFC 2696)."""


def next_cookie(conn: ldap3.Connection) -> bytes | None:
    """The cookie that asks for the next page of the last paged search on `conn`; None after the last."""
    control = (conn.result.get("controls") or {}).get(PAGED_RESULTS) or {}
    return (control.get("value") or {}).get("cookie") or None


def found_entries(conn: ldap3.Connection) -> list[tuple[str, dict[str, list[Any]]]]:
    """The entries the last search on `conn` returned, as (DN, raw attributes); referrals left out."""
    return [
        (item["dn"], item.get("raw_attributes", {}))
        for item in conn.response or ()
        if item.get("type") == "searchResEntry"
    ]


def link_failure(link: LinkSettings, failed: LinkError) -> str:
    """What a connection that could not be opened says, in words (never the password)."""
    if failed.stage == "tls_settings":  # e.g. the CA file went away since the config was read
        return f"{link.url}: the TLS settings cannot be used: {failed.cause}"
    if failed.stage == "start_tls":
        return f"{link.url}: StartTLS failed: {failed.result.get('description')}"
    if failed.stage == "bind":
        return f"{link.url}: bind as {link.bind_dn} failed: {server_said(failed.result)}"
    return f"{link.url}: cannot connect: {type(failed.cause).__name__}: {failed.cause}"


def server_said(result: Mapping[str, Any]) -> str:
    """An LDAP result in words: `noSuchObject (32): <the server's message>`."""
    text = f"{result.get('description')} ({result.get('result')})"
    return f"{text}: {result['message']}" if result.get("message") else text


def close_connection(conn: ldap3.Connection) -> None:
    """Unbind, or at least close the socket of a connection that broke (ldap3 may leave it open)."""
    try:
        conn.unbind()
    except Exception:  # the link is already broken: closing it is best effort
        pass
    if conn.socket is not None:  # None once ldap3 closed it itself
        conn.socket.close()
