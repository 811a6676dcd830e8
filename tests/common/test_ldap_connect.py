"""Opening a bound connection from the link settings against a real slapd: each failure says its stage."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from common.peers.ldap_connect import LinkError, close_connection, open_connection
from common.peers.ldap_link import LinkSettings
from tests.slapd import ROOT_DN, Slapd


def link(server: Slapd, **overrides: Any) -> LinkSettings:
    return replace(LinkSettings(url=server.url, bind_dn=ROOT_DN, bind_password=server.password), **overrides)


@pytest.mark.parametrize("mode", ["plain", "ldaps", "start_tls"])
def test_a_connection_is_bound_as_the_link_says(slapd: Slapd, mode: str) -> None:
    tls = {"ldaps": {"url": slapd.ldaps_url}, "start_tls": {"start_tls": True}}.get(mode, {})
    conn = open_connection(link(slapd, ca_file=slapd.ca_file, **tls))
    try:
        assert conn.bound and conn.extend.standard.who_am_i() == f"dn:{ROOT_DN}"
        assert conn.tls_started or conn.server.ssl or mode == "plain"
    finally:
        close_connection(conn)
    assert conn.closed
    close_connection(conn)  # twice is harmless


def test_a_refused_bind_keeps_the_servers_answer_and_never_the_password(slapd: Slapd) -> None:
    secret = "not-the-password-42"
    with pytest.raises(LinkError) as caught:
        open_connection(link(slapd, bind_password=secret))
    failed = caught.value
    assert failed.stage == "bind" and failed.result["result"] == 49 and failed.cause is None
    assert failed.result["description"] == "invalidCredentials"
    assert secret not in str(failed) and secret not in repr(failed)


def test_a_server_that_does_not_answer_fails_the_connect_stage(slapd: Slapd) -> None:
    slapd.stop()
    with pytest.raises(LinkError) as caught:
        open_connection(link(slapd))
    assert caught.value.stage == "connect" and caught.value.cause is not None


def test_a_certificate_without_its_ca_fails_the_connect_stage(slapd: Slapd) -> None:
    with pytest.raises(LinkError) as caught:
        open_connection(link(slapd, url=slapd.ldaps_url))
    assert caught.value.stage == "connect" and "certificate" in str(caught.value.cause).lower()


def test_a_ca_file_that_went_away_fails_before_dialing(slapd: Slapd, tmp_path: Path) -> None:
    with pytest.raises(LinkError) as caught:
        open_connection(link(slapd, url=slapd.ldaps_url, ca_file=tmp_path / "gone.pem"))
    assert caught.value.stage == "tls_settings" and caught.value.cause is not None
