"""The warnings a process gives about what it exposes without protection."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.peers.http_settings import parse_http_settings
from common.process.exposure import broker_unverified, is_loopback, plain_http, unverified_tls


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("10.0.0.5", False),
        ("engine.example.org", False),
    ],
)
def test_only_addresses_of_this_machine_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plain_http_beyond_the_loopback_names_the_address_the_setting_and_the_fix() -> None:
    assert plain_http("the admin API", "127.0.0.1", 8477, "--api-listen") is None
    warning = plain_http("the admin API", "0.0.0.0", 8477, "--api-listen / ROSTER_API_LISTEN")
    assert warning is not None
    assert warning.startswith(
        "the admin API serves plain HTTP on 0.0.0.0:8477 (--api-listen / ROSTER_API_LISTEN)"
    )
    assert "TLS proxy" in warning and "127.0.0.1" in warning


def test_an_amqps_url_without_verification_is_warned_of_without_its_password() -> None:
    assert broker_unverified("amqps://u:pw@mq.example.org:5671/v") is None
    assert broker_unverified("amqp://u:pw@mq.example.org/v?no_verify_ssl=1") is None  # no TLS at all
    warning = broker_unverified("amqps://u:hunter2@mq.example.org:5671/v?no_verify_ssl=1")
    assert warning is not None and "mq.example.org" in warning and "hunter2" not in warning
    assert "--broker-ca-file" in warning


def test_verify_tls_false_is_found_inside_the_settings_that_hold_it(tmp_path: Path) -> None:
    checked = parse_http_settings("targets[0]", {"url": "https://a.example.org/scim"}, base_dir=tmp_path)
    unchecked = parse_http_settings(
        "targets[1]", {"url": "https://b.example.org/scim", "verify_tls": False}, base_dir=tmp_path
    )

    class Holder:  # not a dataclass: nothing to look into
        verify_tls = False

    warnings = unverified_tls([("target 'a'", checked), ("target 'b'", unchecked), ("other", Holder())])
    assert len(warnings) == 1
    assert warnings[0].startswith("target 'b': verify_tls is false")
    assert "set verify_tls: true" in warnings[0]
