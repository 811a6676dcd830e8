"""Active Directory's extended error codes in words a person can act on.

AD (and Samba) answer with an LDAP result code and a diagnostic message that holds the real reason as
a Windows code: `80090308: LdapErr: ... data 52e` (a bind refused because of the password), `0000052D:
Constraint violation` (a password the domain's policy refuses), `0000208D`/`00002030` (the parent OU
is missing), `00002071` (the sAMAccountName or UPN is in use). `explain()` reads those; the server's own
message stays in the error after the explanation, never a password (AD never echoes one).
"""

from __future__ import annotations

import re
from typing import Final

from common.errors import ConnectorError

_BIND_DATA: Final = re.compile(r"\bdata ([0-9a-f]{3,8})\b", re.IGNORECASE)
_BIND_REASONS: Final = {
    "52e": "invalid credentials: the account or its password is wrong",
    "525": "the account does not exist",
    "530": "the account may not log on at this time",
    "531": "the account may not log on from this workstation",
    "532": "the account's password has expired: set a new one",
    "533": "the account is disabled",
    "701": "the account has expired (accountExpires)",
    "773": "the account must change its password before it binds: set a new one",
    "775": "the account is locked out: wait, or unlock it",
}
_CODES: Final = {
    "0000052D": "the password does not meet the domain's complexity policy (length, history, complexity "
    "or minimum age): choose a stronger password, or a longer `password.length`",
    "0000208D": "the OU does not exist: create it, or fix the DN template",
    "00002030": "the OU does not exist: create it, or fix the DN template",
    "0000202B": "the OU does not exist (the server sent a referral): check the DN and base_dn",
    "00002071": "the sAMAccountName or userPrincipalName is in use by another account in the domain",
    "00000005": "the service account lacks the right to do this in that OU: delegate it",
    "00002098": "the service account lacks the right to do this in that OU: delegate it",
    "0000001F": "AD refused the value (e.g. a password over a connection that is not encrypted)",
    "00002083": "AD refused the value: check its syntax and the attribute's range",
    "0000200B": "AD refused a value: too long for its attribute (AD limits many, e.g. employeeID to 16), "
    "or not of its syntax",
}
_LEADING_CODE: Final = re.compile(r"\b(0000[0-9A-F]{4}):")


def explain(message: str) -> str | None:
    """What AD's diagnostic `message` means, or None when it holds nothing AD-specific we know."""
    if "AcceptSecurityContext" in message or "LdapErr" in message:
        found = _BIND_DATA.search(message)
        if found:
            return _BIND_REASONS.get(found[1].lower().lstrip("0") or "0")
    for code in _LEADING_CODE.findall(message):
        if code.upper() in _CODES:
            return _CODES[code.upper()]
    if "check_password_restrictions" in message:
        return _CODES["0000052D"]
    if "parent does not exist" in message:
        return _CODES["00002030"]
    return None


def worded(error: ConnectorError) -> ConnectorError:
    """`error` with AD's reason put in words first, or `error` as it is."""
    reason = explain(error.message)
    if reason is None or error.message.startswith(reason):
        return error
    return type(error)(f"{reason} ({error.message})", code=error.code)
