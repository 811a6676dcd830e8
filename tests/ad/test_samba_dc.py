"""The private Samba AD DC the Active Directory tests run against: it binds over LDAPS, sets a password
a user can then bind with, and reports its highest committed USN."""

from __future__ import annotations

import ssl

import ldap3

from tests.samba import SambaDC


def test_a_private_dc_takes_a_user_with_a_password_that_user_binds_with(samba_dc: SambaDC) -> None:
    server = ldap3.Server(
        samba_dc.address, port=636, use_ssl=True, tls=ldap3.Tls(validate=ssl.CERT_NONE), get_info=ldap3.NONE
    )
    admin = ldap3.Connection(server, user=samba_dc.admin, password=samba_dc.password, auto_bind=True)
    dn = f"CN=Ada Lovelace,CN=Users,{samba_dc.base_dn}"
    attributes = {"sAMAccountName": "ada", "userPrincipalName": "ada@roster.test"}
    assert admin.add(dn, ["top", "person", "organizationalPerson", "user"], attributes), admin.result
    password = '"Secret-Pass-123"'.encode("utf-16-le")
    changes = {
        "unicodePwd": [(ldap3.MODIFY_REPLACE, [password])],
        "userAccountControl": [(ldap3.MODIFY_REPLACE, [512])],
    }
    assert admin.modify(dn, changes), admin.result

    ada = ldap3.Connection(server, user="ada@roster.test", password="Secret-Pass-123")
    try:
        assert ada.bind()
    finally:
        ada.unbind()
    admin.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["highestCommittedUSN"])
    assert int(admin.entries[0].highestCommittedUSN.value) > 0
    admin.unbind()
