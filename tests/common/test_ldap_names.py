"""DN and filter escaping: any value survives a trip through a DN, and a filter value is never syntax."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.peers.ldap_names import (
    DnError,
    DnTemplate,
    canonical_dn,
    dn_key,
    escape_dn_value,
    escape_filter_value,
    same_dn,
    split_dn,
)


@given(st.text(min_size=1).filter(lambda v: "\x00" not in v))
def test_any_value_comes_back_from_a_dn_unchanged(value: str) -> None:
    dn = f"uid={escape_dn_value(value)},ou=people,dc=example,dc=org"
    assert split_dn(dn) == [[("uid", value)], [("ou", "people")], [("dc", "example")], [("dc", "org")]]


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("Nuñez, Jr.", "Nuñez\\, Jr."),
        ("a+b", "a\\+b"),
        ('say "hi"', 'say \\"hi\\"'),
        ("#hash", "\\#hash"),
        (" padded ", "\\ padded\\ "),
        ("semi;<x>=\\", "semi\\;\\<x\\>\\=\\\\"),
    ],
)
def test_dn_values_are_escaped_per_rfc_4514(value: str, escaped: str) -> None:
    assert escape_dn_value(value) == escaped


def test_filter_values_are_escaped_per_rfc_4515() -> None:
    assert escape_filter_value("a*(b)\\c\x00ü") == "a\\2a\\28b\\29\\5cc\\00ü"


def test_dns_compare_without_case_escaping_or_spacing() -> None:
    assert same_dn("uid=\\23renamed\\2C again,ou=People,dc=x", "UID=\\#Renamed\\, again, ou=people,dc=x")
    assert dn_key("cn=a+uid=b,dc=x") == dn_key("uid=b+cn=a,dc=x")
    assert not same_dn("uid=a,ou=people,dc=x", "uid=a,ou=disabled,dc=x")
    spelled = canonical_dn("UID=\\#Renamed\\, again, ou=people,dc=x")
    assert spelled == canonical_dn("uid=\\23renamed\\2C again,ou=People,dc=x") == canonical_dn(spelled)
    assert canonical_dn("uid=a\\,b,dc=x") != canonical_dn("uid=a,b=,dc=x")


@pytest.mark.parametrize("bad", ["uid", "uid=a,,dc=x", "=a", "uid=a,", "uid=a\\"])
def test_bad_dns_are_refused(bad: str) -> None:
    with pytest.raises(DnError):
        split_dn(bad)


def test_a_template_escapes_its_fields_and_names_a_missing_one() -> None:
    template = DnTemplate("uid={userName},ou=people,dc=example,dc=org")
    assert template.render({"userName": "a,b+c"}) == "uid=a\\,b\\+c,ou=people,dc=example,dc=org"
    with pytest.raises(KeyError):
        template.render({"userName": ""})
    with pytest.raises(DnError):
        DnTemplate("uid={userName},,dc=x")
