"""Active Directory's values as text, its USN watermarks, tombstone scope and settings, without a DC
(tests/ad reads a real one)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from common.errors import ConfigError
from engine.sources.ad import UsnWatermark, in_scope
from engine.sources.ad_values import ad_text, enabled, filetime_text, guid_bytes, guid_text, sid_text
from engine.sources.ldap import AD_FILTER, parse_ldap_source

BASE = "OU=Staff,DC=example,DC=org"


def test_a_guid_reads_as_windows_writes_it_and_back() -> None:
    text = "f4b2c3d1-1a2b-4c5d-8e9f-0123456789ab"
    assert guid_bytes(text)[:4] == bytes.fromhex("d1c3b2f4")  # the first field is little-endian
    assert guid_text(guid_bytes(text)) == text == str(uuid.UUID(text))
    with pytest.raises(ValueError, match="16 bytes"):
        guid_text(b"short")


def test_a_sid_reads_as_s_1_5_21() -> None:
    sid = bytes([1, 5, 0, 0, 0, 0, 0, 5]) + b"".join(
        n.to_bytes(4, "little") for n in (21, 3129192461, 8328969, 1853966673, 1104)
    )
    assert sid_text(sid) == "S-1-5-21-3129192461-8328969-1853966673-1104"
    with pytest.raises(ValueError):
        sid_text(sid[:-1])


def test_filetimes_and_generalized_times_read_as_iso_and_never_as_nothing() -> None:
    assert filetime_text(b"133485408000000000") == "2024-01-01T00:00:00Z"
    assert filetime_text(b"0") is None and filetime_text(b"9223372036854775807") is None
    assert ad_text("accountexpires", [b"0"]) == []
    assert ad_text("whencreated", [b"20240102030405.0Z"]) == ["2024-01-02T03:04:05Z"]
    assert ad_text("department", [b"Sales"]) is None  # not one of AD's own forms: the caller's


def test_enabled_is_the_account_disable_bit_cleared() -> None:
    assert enabled("512") is True and enabled("514") is False and enabled("66050") is False


def test_a_usn_watermark_names_its_dc_and_anything_else_is_none() -> None:
    mark = UsnWatermark("2d7b7785-5807-4146-96f6-d319e3b2db42", 6968)
    assert UsnWatermark.parse(str(mark)) == mark
    assert UsnWatermark.parse("20240101000000Z") is None
    assert UsnWatermark.parse("usn:dc:") is None and UsnWatermark.parse(None) is None


def test_a_tombstone_is_in_scope_by_its_last_known_parent() -> None:
    assert in_scope(BASE, BASE, one_level=True) and in_scope(BASE.lower(), BASE, one_level=False)
    assert in_scope(f"OU=Sales,{BASE}", BASE, one_level=False)
    assert not in_scope(f"OU=Sales,{BASE}", BASE, one_level=True)
    assert not in_scope("CN=Users,DC=example,DC=org", BASE, one_level=False)


def test_the_active_directory_flavor_sets_its_defaults_and_range_size_needs_it() -> None:
    raw = {
        "type": "ldap",
        "url": "ldaps://dc1",
        "bind_dn": "CN=r,DC=x",
        "bind_password": "p",
        "base_dn": BASE,
    }
    settings = parse_ldap_source("source", {**raw, "flavor": "active_directory"}, base_dir=Path("."))
    assert (settings.id_attribute, settings.filter, settings.range_size) == ("objectGUID", AD_FILTER, 1500)
    with pytest.raises(
        ConfigError, match=r"source\.range_size: applies only with `flavor: active_directory`"
    ):
        parse_ldap_source("source", {**raw, "range_size": 1000}, base_dir=Path("."))
    with pytest.raises(ConfigError, match=r"source\.flavor"):
        parse_ldap_source("source", {**raw, "flavor": "ad"}, base_dir=Path("."))
    with pytest.raises(ConfigError, match=r"source\.range_size"):
        parse_ldap_source(
            "source", {**raw, "flavor": "active_directory", "range_size": 0}, base_dir=Path(".")
        )
