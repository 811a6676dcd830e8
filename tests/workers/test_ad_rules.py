"""Active Directory's account rules and error words, without a DC: userAccountControl bits, passwords,
sAMAccountName limits, accountExpires, GUID ids, and the extended error codes."""

from __future__ import annotations

import string
import uuid

import pytest

from common.errors import PermanentError, TransientError
from workers.connectors.ldap import ad
from workers.connectors.ldap.ad_errors import explain, worded


def test_enable_and_disable_flip_bit_2_and_keep_the_others() -> None:
    dont_expire, smartcard = 0x10000, 0x40000
    assert ad.enabled(None) == 512 and ad.disabled(None) == 514
    assert ad.disabled(512 | dont_expire | smartcard) == 514 | dont_expire | smartcard
    assert ad.enabled(514 | dont_expire) == 512 | dont_expire
    assert ad.disabled(ad.disabled(512)) == 514


def test_a_generated_password_meets_the_complexity_rule() -> None:
    for length in (8, 20, 64):
        password = ad.generated_password(length)
        assert len(password) == length
        for kind in (string.ascii_uppercase, string.ascii_lowercase, string.digits):
            assert any(c in kind for c in password)
        assert any(not c.isalnum() for c in password)
    assert len({ad.generated_password(20) for _ in range(100)}) == 100


def test_a_password_is_written_as_the_utf16_of_its_quoted_text() -> None:
    assert ad.password_value("Zoë-1") == '"Zoë-1"'.encode("utf-16-le")


@pytest.mark.parametrize("name", ["jsmith", "a" * 20, "j.smith-1_x"])
def test_valid_sam_account_names_pass(name: str) -> None:
    ad.check_sam_account_name(name)


@pytest.mark.parametrize(
    ("name", "says"),
    [("j/smith", "'/'"), ('a"b', "'\"'"), ("x" * 21, "at most 20"), ("ends.", "final '.'"), ("a[b]", "'[]'")],
)
def test_invalid_sam_account_names_are_refused_saying_why(name: str, says: str) -> None:
    with pytest.raises(PermanentError) as refused:
        ad.check_sam_account_name(name)
    assert says in refused.value.message


def test_account_expires_takes_dates_and_file_times_and_none_is_never() -> None:
    assert ad.account_expires(None) == ad.account_expires("") == "0"
    assert ad.account_expires("1970-01-01T00:00:00+00:00") == str(11_644_473_600 * 10_000_000)
    assert ad.account_expires("2027-01-31") == ad.account_expires("2027-01-31T00:00:00Z")
    assert ad.account_expires("133500000000000000") == "133500000000000000"
    with pytest.raises(PermanentError):
        ad.account_expires("next tuesday")


def test_guid_ids_from_raw_bytes_and_from_extended_dn_values_agree() -> None:
    guid = uuid.uuid4()
    assert ad.guid_id(guid.bytes_le) == f"<GUID={guid}>"
    extended = f"<GUID={guid.bytes_le.hex()}>;<SID=010500>;CN=Ada,OU=People,DC=roster,DC=test"
    assert ad.extended_guid(extended) == f"<GUID={guid}>"
    assert ad.extended_guid("CN=Ada,DC=roster,DC=test") is None


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (
            "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 52e, v4563",
            "invalid cred",
        ),
        (
            "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 773, v4563",
            "must change",
        ),
        (
            "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 532, v4563",
            "has expired",
        ),
        (
            "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 533, v4563",
            "disabled",
        ),
        (
            "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 701, v4563",
            "accountExp",
        ),
        (
            "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data 775, v4563",
            "locked out",
        ),
        ("0000052D: Constraint violation - check_password_restrictions: too short", "complexity policy"),
        ("0000208D: NameErr: DSID-0310028D, problem 2001 (NO_OBJECT), data 0, best match of:", "OU does not"),
        ("0000202B: RefErr: DSID-0310082F, data 0, 1 access points", "OU does not exist"),
        ("00002071: samldb: samAccountName 'u3' already in use!", "in use by another"),
    ],
)
def test_ad_error_codes_are_put_in_words(message: str, says: str) -> None:
    assert says in (explain(message) or "")


def test_a_worded_error_keeps_its_kind_code_and_the_servers_message() -> None:
    error = worded(
        TransientError("bind: invalidCredentials (49): 80090308: LdapErr: x, data 52e, v1", code="49")
    )
    assert isinstance(error, TransientError) and error.code == "49"
    assert error.message.startswith("invalid credentials") and "data 52e" in error.message
    plain = PermanentError("something else", code="1")
    assert worded(plain) is plain
