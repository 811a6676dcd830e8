"""The LDAP connector's `flavor: active_directory` passes the conformance kit against a private Samba AD
DC, read back with ldap3 searches by `<GUID=...>` (the target ids it reports)."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import ldap3
import pytest
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from roster.testing import Profile, Refusal, Sample
from roster.testing.plugin import ConnectorConformance
from tests.samba import SambaDC

NAMES = {
    "user": {
        "userName": "sAMAccountName",
        "familyName": "sn",
        "givenName": "givenName",
        "displayName": "displayName",
        "employeeNumber": "employeeNumber",
    },
    "group": {"displayName": "cn"},
}
CLASSES = {"user": ["user"], "group": ["group"]}
RDN = {"user": "displayName", "group": "displayName"}
EXTENDED_DN = "1.2.840.113556.1.4.529"


def bases(dc: SambaDC) -> dict[str, str]:
    return {"user": f"OU=People,{dc.base_dn}", "group": f"OU=Groups,{dc.base_dn}"}


def guid_id(raw: bytes) -> str:
    return f"<GUID={uuid.UUID(bytes_le=raw)}>"


class AdProbe:
    """Reads the domain as its administrator, with a connection of its own (in a thread)."""

    def __init__(self, dc: SambaDC) -> None:
        self.dc = dc

    def _connection(self) -> ldap3.Connection:
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.dc.ca_file))
        server = ldap3.Server(self.dc.address, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
        return ldap3.Connection(
            server,
            self.dc.admin,
            self.dc.password,
            auto_bind=True,
            check_names=False,
            return_empty_attributes=False,
        )

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        return await asyncio.to_thread(self._read, object_type, target_id)

    def _read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        conn = self._connection()
        try:
            controls = [(EXTENDED_DN, False, None)]
            if not conn.search(target_id, "(objectClass=*)", ldap3.BASE, attributes=["*"], controls=controls):
                return None
            raw = conn.response[0]["raw_attributes"]
        finally:
            conn.unbind()
        text = {
            name.lower(): [v.decode("utf-8", "replace") for v in values]
            for name, values in raw.items()
            if name.lower() not in ("objectguid", "objectsid")
        }
        found: dict[str, Any] = dict(text)
        for name, ldap_name in NAMES[object_type].items():
            found[name] = text.get(ldap_name.lower())
        found["members"] = [guid_id(bytes.fromhex(v[6 : v.index(">")])) for v in text.get("member", [])]
        found["userAccountControl"] = text.get("useraccountcontrol")
        return found

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        return await asyncio.to_thread(self._find, object_type, attribute, value)

    def _find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        ldap_name = NAMES[object_type].get(attribute, attribute)
        conn = self._connection()
        try:
            query = f"(&(objectClass={CLASSES[object_type][0]})({ldap_name}={escape_filter_chars(value)}))"
            conn.search(self.dc.base_dn, query, attributes=["objectGUID"])
            return [
                guid_id(entry["raw_attributes"]["objectGUID"][0])
                for entry in conn.response
                if entry.get("type") == "searchResEntry"
            ]
        finally:
            conn.unbind()

    async def plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        return await asyncio.to_thread(self._plant, object_type, attributes)

    def _plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        entry = {NAMES[object_type].get(name, name): value for name, value in attributes.items()}
        rdn = entry[NAMES[object_type][RDN[object_type]]]
        dn = f"CN={escape_rdn(rdn)},{bases(self.dc)[object_type]}"
        conn = self._connection()
        try:
            assert conn.add(dn, CLASSES[object_type], entry), conn.result
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
            return guid_id(conn.response[0]["raw_attributes"]["objectGUID"][0])
        finally:
            conn.unbind()

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
            match="employeeNumber",
            attributes={
                "employeeNumber": "{key}",
                "userName": "{id}",
                "displayName": "Ada {key}",
                "givenName": "Ada",
                "familyName": "{key}",
            },
            changes={"displayName": "Ada Renamed {key}"},
            disabled={"userAccountControl": ["514"]},
            unmapped={"description": "set outside Roster"},
        ),
        "group": Sample(
            match="displayName",
            attributes={"displayName": "{key}"},
            changes={"displayName": "{key} renamed"},
            unmapped={"description": "set outside Roster"},
        ),
    },
    refusal=Refusal(attributes={"userName": "no/slash"}, message="which AD refuses"),
    members=True,
    patience_s=30.0,
)


class TestActiveDirectory(ConnectorConformance):
    not_applicable: ClassVar[Mapping[str, str]] = {
        "group/crud:disable": "an AD group has no disabled state: it is deleted instead",
        "group/crud:create-disabled": "the same: a group is never disabled (such an operation fails)",
        "group/crud:update-disabled": "the same: a group is never disabled (such an operation fails)",
        "group/batch:isolation": "the refused value is a user's; groups take the same per-operation path",
    }

    @pytest.fixture
    def target_yaml(self, samba_dc: SambaDC) -> dict[str, Any]:
        conn = AdProbe(samba_dc)._connection()
        for dn in bases(samba_dc).values():
            assert conn.add(dn, ["organizationalUnit"]), conn.result
        conn.unbind()
        return {
            "name": "kit-ad",
            "type": "ldap",
            "flavor": "active_directory",
            "url": samba_dc.ldaps_url,
            "ca_file": str(samba_dc.ca_file),
            "bind_dn": f"CN=Administrator,CN=Users,{samba_dc.base_dn}",
            "bind_password": samba_dc.password,
            "base_dn": samba_dc.base_dn,
            "timeout_s": 5,  # a peer that never answers (the kit's stalled listener) fails in time
            "connect_timeout_s": 2,
            "users": {
                "dn": f"CN={{displayName}},{bases(samba_dc)['user']}",
                "base": bases(samba_dc)["user"],
                "attributes": {"userName": "sAMAccountName", "familyName": "sn"},
                "match": "employeeNumber",
                "password": {"generate": True},
            },
            "groups": {
                "dn": f"CN={{displayName}},{bases(samba_dc)['group']}",
                "base": bases(samba_dc)["group"],
                "attributes": {"displayName": "cn"},
            },
        }

    @pytest.fixture
    def probe(self, samba_dc: SambaDC) -> AdProbe:
        return AdProbe(samba_dc)

    @pytest.fixture
    def profile(self) -> Profile:
        return PROFILE
