"""The LDAP link settings both LDAP sides read: each wrong key is named with its fix, never the password."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from common.peers.ldap_link import LinkSettings, ldap_server, parse_link

SECRET = "s3cret-pw-1234"
RAW = {"url": "ldap://ldap.example.org", "bind_dn": "cn=reader,dc=example,dc=org", "bind_password": SECRET}


def test_a_minimal_link_gets_the_defaults_and_hides_the_password(tmp_path: Path) -> None:
    link = parse_link("s", {**RAW, "base_dn": "dc=example,dc=org"}, base_dir=tmp_path)  # others' keys pass
    assert link == LinkSettings(
        url="ldap://ldap.example.org", bind_dn="cn=reader,dc=example,dc=org", bind_password=SECRET
    )
    assert (link.start_tls, link.verify_tls, link.ca_file) == (False, True, None)
    assert (link.timeout_s, link.connect_timeout_s, link.receive_timeout) == (30.0, 10.0, 30)
    assert SECRET not in repr(link)


def test_every_key_is_read(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    raw = {
        **RAW,
        "start_tls": True,
        "ca_file": "certs/ca.pem",
        "verify_tls": False,
        "timeout_s": 2.5,
        "connect_timeout_s": 3,
    }
    link = parse_link("s", raw, base_dir=tmp_path)
    assert link.start_tls and link.tls and not link.ldaps and not link.verify_tls
    assert link.ca_file == tmp_path / "certs" / "ca.pem"
    assert (link.timeout_s, link.connect_timeout_s, link.receive_timeout) == (2.5, 3.0, 3)


@pytest.mark.parametrize(
    ("override", "where", "words"),
    [
        ({"url": "https://ldap.example.org"}, "jobs[0].source.url", "ldap:// or ldaps://"),
        ({"url": None}, "jobs[0].source.url", "is required"),
        ({"url": "ldaps://h", "start_tls": True}, "jobs[0].source.start_tls", "ldaps:// is TLS already"),
        ({"start_tls": "yes"}, "jobs[0].source.start_tls", "true or false"),
        ({"ca_file": "missing.pem"}, "jobs[0].source.ca_file", "no file"),
        ({"verify_tls": "no"}, "jobs[0].source.verify_tls", "true or false"),
        ({"bind_dn": "reader"}, "jobs[0].source.bind_dn", "write a DN such as"),
        ({"bind_dn": None}, "jobs[0].source.bind_dn", "is required"),
        ({"bind_password": ""}, "jobs[0].source.bind_password", "non-empty string"),
        ({"bind_password": 1234}, "jobs[0].source.bind_password", "non-empty string"),
        ({"timeout_s": 0}, "jobs[0].source.timeout_s", "above 0"),
        ({"connect_timeout_s": "10s"}, "jobs[0].source.connect_timeout_s", "expected a number"),
    ],
)
def test_a_wrong_setting_names_its_key_and_the_fix(
    tmp_path: Path, override: dict[str, Any], where: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_link("jobs[0].source", {**RAW, **override}, base_dir=tmp_path)
    message = str(caught.value)
    assert where in message and words in message, message
    assert SECRET not in message and "1234" not in message


def test_the_server_speaks_tls_as_the_link_says(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")  # ldap3 wants the file there
    link = LinkSettings(url="ldap://h", bind_dn="cn=r", bind_password=SECRET)

    plain = ldap_server(link)
    assert not plain.ssl and plain.tls is None and plain.connect_timeout == 10.0

    ldaps = ldap_server(replace(link, url="LDAPS://h", ca_file=ca_file, connect_timeout_s=2))
    assert ldaps.ssl and ldaps.port == 636 and ldaps.connect_timeout == 2
    assert ldaps.tls.validate == ssl.CERT_REQUIRED and ldaps.tls.ca_certs_file == str(ca_file)

    start_tls = ldap_server(replace(link, start_tls=True, verify_tls=False))
    assert not start_tls.ssl and start_tls.tls.validate == ssl.CERT_NONE
