"""What the inbound service knows of the core User and Group schemas and the enterprise extension
(RFC 7643 §4, §8.7): attribute paths, the few characteristics that change how a value is compared or
patched, and case-insensitive lookup of attribute names (RFC 7643 §2.1)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from common.peers.scim_schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

CORE_SCHEMAS: Final = frozenset({USER_SCHEMA.lower(), GROUP_SCHEMA.lower()})
KNOWN_EXTENSIONS: Final = frozenset({ENTERPRISE_SCHEMA.lower()})

ATTRNAME = re.compile(r"\$ref|[A-Za-z][A-Za-z0-9_-]*")

CASE_EXACT: Final = frozenset(
    {
        # RFC 7643 §3.1: id and externalId are caseExact; meta's resourceType, location and version too.
        "id",
        "externalid",
        "meta.resourcetype",
        "meta.location",
        "meta.version",
        # References and binary values (§8.7.1: profileUrl, photos, x509Certificates).
        "profileurl",
        "photos.value",
        "x509certificates.value",
        # The ids of other resources, compared as their `id` is.
        "members.value",
        "groups.value",
        f"{ENTERPRISE_SCHEMA.lower()}:manager.value",
    }
)
"""Lowercase canonical paths whose strings compare case-sensitively; every other string compares
case-insensitively, as `caseExact: false` (the default of RFC 7643 §2.2) says."""

BOOLEANS: Final = frozenset(
    {"active"}
    | {
        f"{name}.primary"
        for name in (
            "emails",
            "phonenumbers",
            "ims",
            "photos",
            "addresses",
            "entitlements",
            "roles",
            "x509certificates",
        )
    }
)
"""Boolean attributes: a client that sends "True" or "False" means the boolean (see `quirks`)."""

READ_ONLY: Final = frozenset({"id", "meta", "schemas"})
"""Attributes a PATCH may not change: the service owns them."""

REQUIRED: Final = frozenset({"username"})
REQUIRED_GROUP: Final = frozenset({"displayname"})

MULTI_VALUED: Final = frozenset(
    {
        "emails",
        "phonenumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509certificates",
        "members",
        "schemas",
    }
)

SINGLE_STRINGS: Final = frozenset(
    {
        "username",
        "displayname",
        "nickname",
        "profileurl",
        "title",
        "usertype",
        "preferredlanguage",
        "locale",
        "timezone",
        "externalid",
        "password",
    }
    | {
        f"{ENTERPRISE_SCHEMA.lower()}:{name}"
        for name in ("employeenumber", "costcenter", "organization", "division", "department")
    }
)
"""Singular string attributes (RFC 7643 §4.1.1, §4.3): a one-element list of `{"value": x}` sent for
one of these means `x` (see `quirks`)."""

MANAGER: Final = f"{ENTERPRISE_SCHEMA.lower()}:manager"
NEVER_RETURNED: Final = frozenset({"password"})
ALWAYS_RETURNED: Final = frozenset({"id", "schemas"})


@dataclass(frozen=True, slots=True)
class AttrPath:
    """`[URI ":"] ATTRNAME ["." subAttr]` (RFC 7644 §3.4.2.2); `urn` is None for the core schema."""

    urn: str | None
    name: str
    sub: str | None = None

    @property
    def key(self) -> str:
        """The lowercase canonical path of the attribute itself, as the tables above spell it."""
        return self.name.lower() if self.urn is None else f"{self.urn.lower()}:{self.name.lower()}"

    @property
    def full_key(self) -> str:
        return self.key if self.sub is None else f"{self.key}.{self.sub.lower()}"

    def __str__(self) -> str:
        text = self.name if self.urn is None else f"{self.urn}:{self.name}"
        return text if self.sub is None else f"{text}.{self.sub}"


def split_path(text: str) -> AttrPath | None:
    """The attribute path spelled by `text`, or None when it is not one. A core schema's URN prefix is
    dropped: `urn:...:core:2.0:User:userName` is `userName`."""
    urn: str | None = None
    rest = text
    if text[:4].lower() == "urn:":
        urn, _, rest = text.rpartition(":")
        if ":" not in urn:
            return None
        if urn.lower() in CORE_SCHEMAS:
            urn = None
    name, _, sub = rest.partition(".")
    if not ATTRNAME.fullmatch(name) or (sub and not ATTRNAME.fullmatch(sub)):
        return None
    return AttrPath(urn, name, sub or None)


def qualified(path: AttrPath, sub: str) -> AttrPath:
    """`path` with `sub` as its sub-attribute, for a value filter's attributes inside `path`'s values."""
    return AttrPath(path.urn, path.name, sub)


def find_key(obj: Mapping[str, Any], name: str) -> str | None:
    """The key of `obj` that names `name`, ignoring case (RFC 7643 §2.1), or None."""
    if name in obj:
        return name
    lowered = name.lower()
    return next((key for key in obj if key.lower() == lowered), None)


def get(obj: Mapping[str, Any], name: str) -> Any:
    key = find_key(obj, name)
    return None if key is None else obj[key]


def container(resource: Mapping[str, Any], path: AttrPath) -> Mapping[str, Any] | None:
    """The object that holds `path`'s attribute: the resource, or its extension object."""
    if path.urn is None:
        return resource
    found = get(resource, path.urn)
    return found if isinstance(found, Mapping) else None


def schema_urns(resource: Any) -> set[str]:
    """The lowercase extension URNs a resource may hold as objects: the known ones and those it lists."""
    listed = resource.get("schemas") if isinstance(resource, Mapping) else None
    names = {s.lower() for s in listed if isinstance(s, str)} if isinstance(listed, list) else set()
    return (names | KNOWN_EXTENSIONS) - CORE_SCHEMAS


def iter_values(value: Any) -> Iterator[Any]:
    """The values of an attribute: each element of a multi-valued one, else the value itself."""
    if isinstance(value, list):
        yield from value
    elif value is not None:
        yield value


def is_group(resource: Mapping[str, Any]) -> bool:
    listed = resource.get("schemas")
    return isinstance(listed, list) and any(
        isinstance(s, str) and s.lower() == GROUP_SCHEMA.lower() for s in listed
    )
