"""Active Directory's account rules for the LDAP target (`flavor: active_directory`): its settings, and
the values AD wants written, without a call.

AD has no attribute that says "disabled": `userAccountControl` is a set of bits, of which 512 is a normal
account and 2 disables it; the other bits (password never expires, smart card required, ...) are the
administrator's, so enabling and disabling flip bit 2 and keep the rest. `accountExpires` is a Windows
file time (100 ns ticks since 1601), 0 for never. A password is written to `unicodePwd` as the UTF-16-LE
of the quoted password, and AD takes it only over an encrypted connection. An entry is named by its
`objectGUID`, which moves and renames keep (`<GUID=...>` is a DN to AD). Settings (under `users:` and
`groups:` of the target)::

    users:
      password: {generate: true, length: 20}     # or {attribute: initialPassword}; default: none
      must_change_password: true                 # pwdLastSet 0: the user sets their own at first logon
    groups:
      group_type: security                       # or distribution
      group_scope: global                        # or universal, domain_local
"""

from __future__ import annotations

import re
import secrets
import string as text
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from common.config.validation import as_mapping, boolean, check_keys, integer, join, string
from common.errors import ConfigError, PermanentError
from common.peers.ldap_link import LinkSettings

# The first class is the one matching searches and listings filter on: the most specific.
USER_CLASSES: Final = ("user", "organizationalPerson", "person", "top")
GROUP_CLASSES: Final = ("group", "top")
NORMAL_ACCOUNT: Final = 512
ACCOUNT_DISABLE: Final = 2
UAC: Final = "userAccountControl"
GUID: Final = "objectGUID"
MEMBER_CHUNK_MAX: Final = 1000  # AD's own limit on values per modify is higher; 1,000 stays well under
USER_KEYS: Final = ("password", "must_change_password")
GROUP_KEYS: Final = ("group_type", "group_scope")
_PASSWORD_KEYS: Final = ("generate", "length", "attribute")
_SECURITY: Final = -0x80000000  # groupType's security bit, as AD writes the signed 32-bit value
_SCOPES: Final = {"global": 0x2, "domain_local": 0x4, "universal": 0x8}
_SAM_INVALID: Final = re.compile(r'["/\\\[\]:;|=,+*?<>]')
SAM_MAX: Final = 20
_EPOCH_OFFSET_S: Final = 11_644_473_600  # 1601-01-01 to 1970-01-01


@dataclass(frozen=True, slots=True, kw_only=True)
class Passwords:
    """Initial passwords: generated (of `length`), or read from the operation attribute `attribute`."""

    generate: bool = False
    length: int = 20
    attribute: str | None = None
    must_change: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AdSettings:
    """What `flavor: active_directory` adds to an LDAP target."""

    passwords: Passwords | None = None
    group_type: int = _SECURITY | _SCOPES["global"]


def parse_ad(
    path: str, users: Mapping[str, Any] | None, groups: Mapping[str, Any] | None, link: LinkSettings
) -> AdSettings:
    """The AD keys of `users:` and `groups:` (found at `path`); passwords need LDAPS or StartTLS."""
    passwords = None
    if users is not None and users.get("password") is not None:
        where = join(join(path, "users"), "password")
        raw = as_mapping(where, users["password"])
        check_keys(where, raw, _PASSWORD_KEYS)
        generate = boolean(join(where, "generate"), raw.get("generate", False))
        attribute = string(join(where, "attribute"), raw["attribute"]) if "attribute" in raw else None
        if generate == (attribute is not None):
            raise ConfigError(
                where, "needs exactly one of `generate: true` and `attribute:`", "e.g. {generate: true}"
            )
        if not link.tls:
            raise ConfigError(
                where,
                f"AD takes passwords only over an encrypted connection, and {link.url} is plain LDAP",
                "use an ldaps:// URL, or `start_tls: true`",
            )
        passwords = Passwords(
            generate=generate,
            length=integer(join(where, "length"), raw.get("length", 20), minimum=8),
            attribute=attribute,
            must_change=boolean(
                join(join(path, "users"), "must_change_password"), users.get("must_change_password", False)
            ),
        )
    elif users is not None and "must_change_password" in users:
        raise ConfigError(
            join(join(path, "users"), "must_change_password"),
            "is for initial passwords, and `users.password` is not set",
            "add `password: {generate: true}`, or remove this key",
        )
    group_type = _SECURITY | _SCOPES["global"]
    if groups is not None:
        kind = string(join(join(path, "groups"), "group_type"), groups.get("group_type", "security"))
        scope = string(join(join(path, "groups"), "group_scope"), groups.get("group_scope", "global"))
        if kind not in ("security", "distribution"):
            raise ConfigError(
                join(join(path, "groups"), "group_type"), f"is {kind!r}", "security or distribution"
            )
        if scope not in _SCOPES:
            raise ConfigError(
                join(join(path, "groups"), "group_scope"),
                f"is {scope!r}",
                "global, universal or domain_local",
            )
        group_type = (_SECURITY if kind == "security" else 0) | _SCOPES[scope]
    return AdSettings(passwords=passwords, group_type=group_type)


def enabled(current: int | None) -> int:
    """The `userAccountControl` of an enabled account that had `current` (bits kept)."""
    return (NORMAL_ACCOUNT if not current else current) & ~ACCOUNT_DISABLE


def disabled(current: int | None) -> int:
    """The `userAccountControl` of a disabled account that had `current` (bits kept)."""
    return (NORMAL_ACCOUNT if not current else current) | ACCOUNT_DISABLE


def password_value(password: str) -> bytes:
    """`unicodePwd` as AD takes it: the quoted password in UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")


def generated_password(length: int) -> str:
    """A random password meeting AD's complexity rule: upper, lower, digit and symbol, in any order."""
    classes = (text.ascii_uppercase, text.ascii_lowercase, text.digits, "!#%+-.:=?@_~")
    chosen = [secrets.choice(c) for c in classes]
    everything = "".join(classes)
    chosen += [secrets.choice(everything) for _ in range(length - len(chosen))]
    secrets.SystemRandom().shuffle(chosen)
    return "".join(chosen)


def check_sam_account_name(value: str) -> None:
    """A `PermanentError` saying why `value` cannot be a sAMAccountName (at most 20 characters, none of
    `"/\\[]:;|=,+*?<>`); nothing is changed silently."""
    bad = sorted(set(_SAM_INVALID.findall(value)))
    if bad:
        raise PermanentError(
            f"sAMAccountName {value!r} holds {''.join(bad)!r}, which AD refuses "
            '(none of "/\\[]:;|=,+*?<> may appear); change the mapping',
            code="invalid_value",
        )
    if len(value) > SAM_MAX or value.endswith("."):
        raise PermanentError(
            f"sAMAccountName {value!r} is {len(value)} characters long; AD takes at most {SAM_MAX} "
            "(and no final '.'): shorten it in the mapping, e.g. Left(..., 20)",
            code="invalid_value",
        )


def account_expires(value: Any) -> str:
    """`accountExpires` from a mapped value: a date or ISO date-time (UTC unless it says), or an
    integer file time; none (None, "", 0) is never ("0")."""
    if value in (None, "", 0, "0"):
        return "0"
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return str(int(value))
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise PermanentError(
            f"accountExpires {value!r} is neither a date (2027-01-31), a date-time, nor a file time",
            code="invalid_value",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return str(int((when.timestamp() + _EPOCH_OFFSET_S) * 10_000_000))


def guid_id(raw: bytes) -> str:
    """The target id of an entry whose `objectGUID` is `raw`: `<GUID=...>`, a DN AD resolves."""
    return f"<GUID={uuid.UUID(bytes_le=raw)}>"


def is_guid_id(value: str) -> bool:
    return value[:6].upper() == "<GUID="


def extended_guid(value: str) -> str | None:
    """The `<GUID=...>` id in a value read with the extended DN control (`<GUID=hex>;<SID=...>;DN`)."""
    if not is_guid_id(value):
        return None
    end = value.find(">")
    try:
        return guid_id(bytes.fromhex(value[6:end]))
    except ValueError:
        return f"<GUID={uuid.UUID(value[6:end])}>"
