"""The LDAP connector passes the conformance kit against a private slapd, read back with ldap3 searches."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import ldap3
import pytest
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from common.peers.ldap_names import join_dn, split_dn
from roster.testing import Profile, Refusal, Sample
from roster.testing.plugin import ConnectorConformance
from tests.slapd import ROOT_DN, SUFFIX, Slapd, target_settings

NAMES = {
    "user": {
        "userName": "uid",
        "givenName": "givenName",
        "familyName": "sn",
        "displayName": "cn",
        "email": "mail",
    },
    "group": {"displayName": "cn"},
}
BASES = {"user": f"ou=people,{SUFFIX}", "group": f"ou=groups,{SUFFIX}"}
CLASSES = {"user": ["inetOrgPerson"], "group": ["groupOfNames"]}
RDN = {"user": "uid", "group": "cn"}


def written(dn: str) -> str:
    """A DN as the connector writes the ids it reports."""
    return join_dn(split_dn(dn))


class LdapProbe:
    """Reads the directory as its root, with a connection of its own (ldap3 is blocking: in a thread)."""

    def __init__(self, server: Slapd) -> None:
        self.server = server

    def _connection(self) -> ldap3.Connection:
        conn = ldap3.Connection(
            ldap3.Server(self.server.url, get_info=ldap3.NONE), ROOT_DN, self.server.password
        )
        conn.bind()
        return conn

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        return await asyncio.to_thread(self._read, object_type, target_id)

    def _read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        conn = self._connection()
        try:
            if not conn.search(target_id, "(objectClass=*)", ldap3.BASE, attributes=["*"]):
                return None
            raw = {
                name.lower(): [v.decode() for v in values]
                for name, values in conn.response[0]["raw_attributes"].items()
            }
        finally:
            conn.unbind()
        found: dict[str, Any] = {name: values for name, values in raw.items()}
        for name, ldap_name in NAMES[object_type].items():
            found[name] = raw.get(ldap_name.lower())
        found["members"] = [written(dn) for dn in raw.get("member", []) if dn.lower() != ROOT_DN.lower()]
        found["employeeType"] = raw.get("employeetype")
        return found

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        return await asyncio.to_thread(self._find, object_type, attribute, value)

    def _find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        ldap_name = NAMES[object_type].get(attribute, attribute)
        conn = self._connection()
        try:
            conn.search(BASES[object_type], f"({ldap_name}={escape_filter_chars(value)})", attributes=[])
            return [written(entry["dn"]) for entry in conn.response if entry.get("type") == "searchResEntry"]
        finally:
            conn.unbind()

    async def plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        return await asyncio.to_thread(self._plant, object_type, attributes)

    def _plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        entry = {NAMES[object_type].get(name, name): value for name, value in attributes.items()}
        dn = f"{RDN[object_type]}={escape_rdn(entry[RDN[object_type]])},{BASES[object_type]}"
        if object_type == "group":
            entry["member"] = ROOT_DN
        conn = self._connection()
        try:
            assert conn.add(dn, CLASSES[object_type], entry), conn.result
        finally:
            conn.unbind()
        return written(dn)

    async def set(self, object_type: str, target_id: str, attributes: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self._set, target_id, attributes)

    def _set(self, target_id: str, attributes: Mapping[str, Any]) -> None:
        conn = self._connection()
        try:
            changes = {name: [(ldap3.MODIFY_REPLACE, [value])] for name, value in attributes.items()}
            assert conn.modify(target_id, changes), conn.result
        finally:
            conn.unbind()


PROFILE = Profile(
    samples={
        "user": Sample(
            match="userName",
            attributes={
                "userName": "{key}",
                "displayName": "Ada {key}",
                "givenName": "Ada",
                "familyName": "{key}",
                "email": "{id}@example.org",
            },
            changes={"displayName": "Ada Renamed {key}"},
            disabled={"employeeType": "disabled"},
            unmapped={"description": "set outside Roster"},
        ),
        "group": Sample(
            match="displayName",
            attributes={"displayName": "{key}"},
            changes={"displayName": "{key} renamed"},
            unmapped={"description": "set outside Roster"},
        ),
    },
    refusal=Refusal(attributes={"email": "zoë@exämple.org"}, message="invalid per syntax"),
    members=True,
    patience_s=20.0,
)


class TestLdap(ConnectorConformance):
    not_applicable: ClassVar[Mapping[str, str]] = {
        "group/crud:disable": "a group has no active flag to disable: it is deleted instead",
        "group/crud:create-disabled": "the same: a group is never disabled (such an operation fails)",
        "group/crud:update-disabled": "the same: a group is never disabled (such an operation fails)",
        "group/batch:isolation": "the refused value is a user's; groups take the same per-operation path",
    }

    @pytest.fixture
    def target_yaml(self, slapd: Slapd) -> dict[str, Any]:
        return {"name": "kit-ldap", "type": "ldap", **target_settings(slapd)}

    @pytest.fixture
    def probe(self, slapd: Slapd) -> LdapProbe:
        return LdapProbe(slapd)

    @pytest.fixture
    def profile(self) -> Profile:
        return PROFILE
