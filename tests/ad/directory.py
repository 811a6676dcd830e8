"""Test data in a private Samba AD DC: an administrator's connection, an OU of users, groups, and the
source settings that read them."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import ldap3

from tests.samba import SambaDC

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]
NORMAL_ACCOUNT = 0x200
PASSWORD_NOT_REQUIRED = 0x20
DISABLED = 0x2
ENABLED_WITHOUT_PASSWORD = NORMAL_ACCOUNT | PASSWORD_NOT_REQUIRED
"""An enabled account a test can make without setting a password."""


def admin_dn(dc: SambaDC) -> str:
    return f"CN=Administrator,CN=Users,{dc.base_dn}"


def connect(dc: SambaDC) -> ldap3.Connection:
    """The administrator, over LDAPS (Samba refuses a simple bind on plain LDAP)."""
    server = ldap3.Server(
        dc.address, port=636, use_ssl=True, tls=ldap3.Tls(validate=ssl.CERT_NONE), get_info=ldap3.NONE
    )
    return ldap3.Connection(
        server,
        user=dc.admin,
        password=dc.password,
        auto_bind=True,
        check_names=False,
        raise_exceptions=False,
        auto_range=False,
        return_empty_attributes=False,
    )


def add_ou(conn: ldap3.Connection, dn: str) -> str:
    assert conn.add(dn, ["top", "organizationalUnit"]), conn.result
    return dn


def user_dn(ou: str, number: int) -> str:
    return f"CN=user{number:06d},{ou}"


def add_users(conn: ldap3.Connection, ou: str, numbers: Iterable[int], **extra: Any) -> list[str]:
    """Users `user000001`... in `ou` (enabled, department `d0`), their DNs."""
    dns = []
    for number in numbers:
        dn = user_dn(ou, number)
        attributes = {
            "sAMAccountName": f"user{number:06d}",
            "givenName": f"Given{number}",
            "sn": f"Family{number}",
            "mail": f"user{number}@roster.test",
            "department": "d0",
            "userAccountControl": ENABLED_WITHOUT_PASSWORD,
            **extra,
        }
        assert conn.add(dn, USER_CLASSES, attributes), (dn, conn.result)
        dns.append(dn)
    return dns


def add_group(conn: ldap3.Connection, dn: str, members: list[str], *, chunk: int = 1000) -> str:
    name = ldap3.utils.dn.parse_dn(dn)[0][1]
    assert conn.add(dn, ["top", "group"], {"sAMAccountName": name}), conn.result
    for start in range(0, len(members), chunk):
        assert conn.modify(dn, {"member": [(ldap3.MODIFY_ADD, members[start : start + chunk])]}), conn.result
    return dn


def guid_of(conn: ldap3.Connection, dn: str) -> str:
    """An entry's objectGUID as ldap3 itself formats it (not through Roster's conversion)."""
    conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["objectGUID"])
    raw = conn.response[0]["raw_attributes"]["objectGUID"][0]
    return ldap3.protocol.formatters.formatters.format_uuid_le(raw).strip("{}")


def source(dc: SambaDC, base: str, **settings: Any) -> dict[str, Any]:
    """A job's `source:` reading Active Directory under `base` as the administrator."""
    return {
        "type": "ldap",
        "flavor": "active_directory",
        "url": dc.ldaps_url,
        "verify_tls": False,  # Samba's certificate names VM.roster.test, not the test's 127.0.0.N
        "bind_dn": admin_dn(dc),
        "bind_password": dc.password,
        "base_dn": base,
        **settings,
    }
