"""What a process exposes without protection, said as warnings: plain HTTP beyond the loopback, a
peer whose TLS certificate is not checked, an amqps:// broker URL that turns verification off.

Each warning is one sentence naming the setting and the fix; none holds a secret.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable
from typing import Any

from yarl import URL

WEAK_TOKENS = frozenset({"change-me", "changeme", "change_me", "secret", "token", "password"})
"""Placeholders that sample files carry; a token that anyone can guess."""
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, or "" / 0.0.0.0 (every interface)


def plain_http(what: str, host: str, port: int, setting: str) -> str | None:
    """A warning when `what` serves plain HTTP on an address other machines reach."""
    if is_loopback(host):
        return None
    return (
        f"{what} serves plain HTTP on {host}:{port} ({setting}): its token and answers cross the "
        "network unencrypted; put a TLS proxy in front of it or listen on 127.0.0.1"
    )


def broker_unverified(url: str) -> str | None:
    """A warning for an amqps:// URL that turns certificate verification off (`no_verify_ssl`)."""
    parsed = URL(url)
    if parsed.scheme == "amqps" and parsed.query.get("no_verify_ssl", "0") != "0":
        return (
            f"the broker's TLS certificate is not verified (no_verify_ssl in the broker URL for "
            f"{parsed.host}): drop no_verify_ssl and give its CA with --broker-ca-file"
        )
    return None


def unverified_tls(settings: Iterable[tuple[str, Any]]) -> list[str]:
    """A warning for each (path, settings) whose settings, or any settings inside them, hold
    `verify_tls: false`."""
    return [
        f"{path}: verify_tls is false, so the peer's certificate is not checked and anyone on the way "
        "can read and change what is sent; set verify_tls: true (and ca_file for a private CA)"
        for path, value in settings
        if _verify_off(value)
    ]


def _verify_off(value: Any, depth: int = 0) -> bool:
    if depth > 4 or not dataclasses.is_dataclass(value) or isinstance(value, type):
        return False
    if getattr(value, "verify_tls", True) is False:
        return True
    return any(_verify_off(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
