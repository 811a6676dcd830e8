"""Active Directory's attribute values as text: GUIDs, SIDs, FILETIME and generalized times, and the
`enabled` flag of `userAccountControl`.

AD keeps some attributes in forms no one maps directly: `objectGUID` and `objectSid` are binary,
`accountExpires`, `pwdLastSet`, `lastLogonTimestamp` (and the other `Interval` attributes) count 100 ns
ticks since 1601 (FILETIME, with 0 and 2^63-1 meaning never), and `whenCreated`/`whenChanged` are
generalized times (`20240102030405.0Z`). `ad_text` turns each value of such an attribute into the text
a mapping wants (`f4b2...-...` GUIDs as Windows writes them, `S-1-5-21-...`, ISO 8601 UTC); an attribute
it does not know is left to the caller.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

GUID_ATTRIBUTES: Final = frozenset({"objectguid"})
SID_ATTRIBUTES: Final = frozenset({"objectsid"})
FILETIME_ATTRIBUTES: Final = frozenset(
    {
        "accountexpires",
        "pwdlastset",
        "lastlogontimestamp",
        "lastlogon",
        "lastlogoff",
        "badpasswordtime",
        "lockouttime",
    }
)
GENERALIZED_TIME_ATTRIBUTES: Final = frozenset({"whencreated", "whenchanged", "dscorepropagationdata"})
USER_ACCOUNT_CONTROL: Final = "useraccountcontrol"
ACCOUNT_DISABLED: Final = 0x2
"""`userAccountControl`'s ACCOUNTDISABLE bit."""

_EPOCH_1601: Final = datetime(1601, 1, 1, tzinfo=UTC)
_NEVER: Final = (0, 0x7FFF_FFFF_FFFF_FFFF)
"""FILETIME values that mean "never" (an account that does not expire, a password never set)."""


def guid_text(value: bytes) -> str:
    """A binary GUID (little-endian fields, as AD stores `objectGUID`) as Windows writes it."""
    if len(value) != 16:
        raise ValueError(f"a GUID has 16 bytes, this value {len(value)}")
    return str(uuid.UUID(bytes_le=value))


def guid_bytes(text: str) -> bytes:
    """The binary form of a GUID's text (to search for it: `(objectGUID=\\xx\\xx...)`)."""
    return uuid.UUID(text).bytes_le


def sid_text(value: bytes) -> str:
    """A binary SID as `S-1-5-21-...` (MS-DTYP 2.4.2.2)."""
    if len(value) < 8 or len(value) != 8 + 4 * value[1]:
        raise ValueError(f"not a binary SID ({len(value)} bytes)")
    authority = int.from_bytes(value[2:8], "big")
    subs = [str(int.from_bytes(value[8 + 4 * i : 12 + 4 * i], "little")) for i in range(value[1])]
    return "-".join(["S", str(value[0]), str(authority), *subs])


def filetime_text(value: bytes) -> str | None:
    """A FILETIME (100 ns ticks since 1601, UTC) as ISO 8601 text; None for "never" (0, 2^63-1)."""
    ticks = int(value)
    if ticks in _NEVER:
        return None
    try:
        return _iso(_EPOCH_1601 + timedelta(microseconds=ticks // 10))
    except OverflowError:
        raise ValueError(f"FILETIME {ticks} is out of range") from None


def generalized_time_text(value: bytes) -> str:
    """A generalized time as AD writes it (`YYYYmmddHHMMSS.0Z`) as ISO 8601 text."""
    text = value.decode("ascii")
    try:
        moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{text!r} is not a generalized time") from None
    return _iso(moment)


def enabled(user_account_control: str) -> bool:
    """Whether an account whose `userAccountControl` is this may sign in (ACCOUNTDISABLE not set)."""
    return not int(user_account_control) & ACCOUNT_DISABLED


def ad_text(name: str, values: list[bytes]) -> list[str] | None:
    """The values of AD attribute `name` (lower case) as text, for those AD keeps in a form of its own;
    None when `name` is not one of them. Raises `ValueError` for a value not in the attribute's form."""
    if name in GUID_ATTRIBUTES:
        return [guid_text(v) for v in values]
    if name in SID_ATTRIBUTES:
        return [sid_text(v) for v in values]
    if name in FILETIME_ATTRIBUTES:
        return [t for v in values if (t := filetime_text(v)) is not None]
    if name in GENERALIZED_TIME_ATTRIBUTES:
        return [generalized_time_text(v) for v in values]
    return None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
