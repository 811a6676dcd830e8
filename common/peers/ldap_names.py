"""Names in LDAP: escaping of DN values (RFC 4514) and filter values (RFC 4515), DN templates, DN comparison.

Pure functions, no connection: a value from the source (`Nuñez, Jr.`, `#1 fan`, `a+b`) must land in a DN
or a filter as that value, never as syntax, and a DN the server hands back must compare equal to the
one rendered here whatever its escaping or case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

_DN_SPECIAL: Final = frozenset(',+"\\<>;=')
_TEMPLATE_FIELD: Final = re.compile(r"\{([^{}]+)\}")
_HEX: Final = re.compile(r"[0-9A-Fa-f]{2}")
_TYPE: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*")


class DnError(ValueError):
    """A DN, or a template, that cannot be read."""


def escape_dn_value(value: str) -> str:
    """An attribute value written for a DN (RFC 4514 §2.4): specials, a leading `#` or space, a trailing
    space and NUL are escaped; other characters, non-ASCII included, stay as UTF-8."""
    if value == "":
        return ""
    out = []
    last = len(value) - 1
    for i, char in enumerate(value):
        if char in _DN_SPECIAL or (i == 0 and char in "# ") or (i == last and char == " "):
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


def escape_filter_value(value: str) -> str:
    """An assertion value written for a filter (RFC 4515 §3): `*`, `(`, `)`, `\\` and NUL as `\\XX`."""
    return (
        value.replace("\\", "\\5c")
        .replace("*", "\\2a")
        .replace("(", "\\28")
        .replace(")", "\\29")
        .replace("\x00", "\\00")
    )


def split_dn(dn: str) -> list[list[tuple[str, str]]]:
    """The RDNs of `dn`, each a list of (type, unescaped value) pairs; raises `DnError` on bad syntax."""
    rdns: list[list[tuple[str, str]]] = []
    if not dn.strip():
        return rdns
    rdn: list[tuple[str, str]] = []
    i, n = 0, len(dn)
    while True:
        eq = dn.find("=", i)
        if eq < 0:
            raise DnError(f"{dn!r}: an RDN has no '='")
        kind = dn[i:eq].strip()
        if not _TYPE.fullmatch(kind):
            raise DnError(f"{dn!r}: {kind!r} is not an attribute type")
        i = eq + 1
        while i < n and dn[i] == " ":  # unescaped leading spaces are not part of the value
            i += 1
        value = bytearray()
        kept = 0  # length of the value up to its last escaped or non-space character
        while i < n and dn[i] not in ",+":
            if dn[i] == "\\":
                if _HEX.fullmatch(dn[i + 1 : i + 3]):
                    value.append(int(dn[i + 1 : i + 3], 16))
                    i += 3
                elif i + 1 < n:
                    value += dn[i + 1].encode()
                    i += 2
                else:
                    raise DnError(f"{dn!r}: ends inside an escape")
                kept = len(value)
                continue
            value += dn[i].encode()
            if dn[i] != " ":
                kept = len(value)
            i += 1
        rdn.append((kind, bytes(value[:kept]).decode("utf-8", errors="replace")))
        if i >= n:
            rdns.append(rdn)
            return rdns
        if dn[i] == ",":
            rdns.append(rdn)
            rdn = []
        i += 1
        if i >= n:
            raise DnError(f"{dn!r}: ends with a separator")


def join_dn(rdns: list[list[tuple[str, str]]]) -> str:
    return ",".join("+".join(f"{kind}={escape_dn_value(value)}" for kind, value in rdn) for rdn in rdns)


def dn_key(dn: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A DN reduced for comparison: types and values without case, escaping or order inside an RDN.

    Naming attributes in common schemas (uid, cn, ou, dc) compare without case, which this follows."""
    return tuple(
        tuple(sorted((kind.lower(), " ".join(value.split()).casefold()) for kind, value in rdn))
        for rdn in split_dn(dn)
    )


def canonical_dn(dn: str) -> str:
    """One text per DN that `dn_key` finds equal: a compact key for a large map of DNs."""
    return ",".join("+".join(f"{kind}={escape_dn_value(value)}" for kind, value in rdn) for rdn in dn_key(dn))


def same_dn(a: str, b: str) -> bool:
    try:
        return dn_key(a) == dn_key(b)
    except DnError:
        return a == b


def parent_dn(dn: str) -> str:
    return join_dn(split_dn(dn)[1:])


def first_rdn(dn: str) -> str:
    rdns = split_dn(dn)
    if not rdns:
        raise DnError("the empty DN has no RDN")
    return join_dn(rdns[:1])


def rdn_values(dn: str) -> dict[str, str]:
    """The attribute values that the first RDN of `dn` sets, by lowercased type."""
    rdns = split_dn(dn)
    return {kind.lower(): value for kind, value in rdns[0]} if rdns else {}


class DnTemplate:
    """A DN with `{attribute}` fields, such as `uid={userName},ou=people,dc=example,dc=org`.

    Each field is filled with the operation's attribute, escaped per RFC 4514, so a value can never add
    an RDN or change the DN's shape."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.fields = tuple(dict.fromkeys(_TEMPLATE_FIELD.findall(text)))
        try:
            probe = split_dn(_TEMPLATE_FIELD.sub("x", text))
        except DnError as exc:
            raise DnError(f"{text!r} is not a DN template: {exc}") from None
        if not probe:
            raise DnError(f"{text!r} is empty")

    def render(self, attributes: Mapping[str, Any]) -> str:
        def fill(found: re.Match[str]) -> str:
            value = attributes.get(found[1])
            if isinstance(value, list):
                value = value[0] if len(value) == 1 else None
            if value is None or value == "":
                raise KeyError(found[1])
            return escape_dn_value(str(value))

        return _TEMPLATE_FIELD.sub(fill, self.text)

    def __repr__(self) -> str:
        return f"DnTemplate({self.text!r})"
