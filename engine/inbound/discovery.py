"""What the inbound service says about itself (RFC 7644 §4, RFC 7643 §5-7): `/ServiceProviderConfig`,
`/ResourceTypes` and `/Schemas`, so a client (or scim2-tester) learns what it may send.

Only what the service does is advertised: PATCH, filters and bulk (with its limits) yes; sorting and
password changes no; ETags yes (each resource's version). The schemas list the core User and Group
attributes and the enterprise extension, with the mutability and uniqueness the service keeps (`id`
read-only, `userName` unique).
"""

from __future__ import annotations

from typing import Any

from common.peers.scim_schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
_SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def service_provider_config(
    base: str, max_results: int, max_payload: int, *, max_operations: int
) -> dict[str, Any]:
    return {
        "schemas": [_CONFIG_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": max_operations, "maxPayloadSize": max_payload},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A token from the inbound: section of the engine's jobs file",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }


def resource_types(base: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": [_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False}],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"},
        },
        {
            "schemas": [_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/Group"},
        },
    ]


def _attribute(
    name: str,
    kind: str = "string",
    *,
    multi: bool = False,
    required: bool = False,
    mutability: str = "readWrite",
    returned: str = "default",
    uniqueness: str = "none",
    case_exact: bool = False,
    sub: list[dict[str, Any]] | None = None,
    references: list[str] | None = None,
) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": name,
        "required": required,
        "mutability": mutability,
        "returned": returned,
        "uniqueness": uniqueness,
    }
    if kind in ("string", "reference"):
        attribute["caseExact"] = case_exact
    if sub is not None:
        attribute["subAttributes"] = sub
    if references is not None:
        attribute["referenceTypes"] = references
    return attribute


def _multi(name: str, *extra: dict[str, Any]) -> dict[str, Any]:
    """A multi-valued attribute with `value`, `display`, `type` and `primary` (emails, phoneNumbers...)."""
    return _attribute(
        name,
        "complex",
        multi=True,
        sub=[
            _attribute("value"),
            _attribute("display"),
            _attribute("type"),
            _attribute("primary", "boolean"),
            *extra,
        ],
    )


_USER = [
    _attribute("userName", required=True, uniqueness="server"),
    _attribute(
        "name",
        "complex",
        sub=[
            _attribute(n)
            for n in (
                "formatted",
                "familyName",
                "givenName",
                "middleName",
                "honorificPrefix",
                "honorificSuffix",
            )
        ],
    ),
    *(
        _attribute(n)
        for n in ("displayName", "nickName", "title", "userType", "preferredLanguage", "locale", "timezone")
    ),
    _attribute("profileUrl", "reference", references=["external"]),
    _attribute("active", "boolean"),
    _attribute("password", mutability="writeOnly", returned="never"),
    _multi("emails"),
    _multi("phoneNumbers"),
    _multi("ims"),
    _multi("photos"),
    _attribute(
        "addresses",
        "complex",
        multi=True,
        sub=[
            _attribute(n)
            for n in ("formatted", "streetAddress", "locality", "region", "postalCode", "country", "type")
        ]
        + [_attribute("primary", "boolean")],
    ),
    _attribute(
        "groups",
        "complex",
        multi=True,
        mutability="readOnly",
        sub=[_attribute("value", mutability="readOnly"), _attribute("display", mutability="readOnly")],
    ),
    _multi("entitlements"),
    _multi("roles"),
]

_GROUP = [
    _attribute("displayName", required=True),
    _attribute(
        "members",
        "complex",
        multi=True,
        sub=[
            _attribute("value", mutability="immutable"),
            _attribute("display", mutability="immutable"),
            _attribute("type", mutability="immutable"),
            _attribute("$ref", "reference", mutability="immutable", references=["User", "Group"]),
        ],
    ),
]

_ENTERPRISE = [
    *(_attribute(n) for n in ("employeeNumber", "costCenter", "organization", "division", "department")),
    _attribute(
        "manager",
        "complex",
        sub=[
            _attribute("value"),
            _attribute("$ref", "reference", references=["User"]),
            _attribute("displayName", mutability="readOnly"),
        ],
    ),
]


def schemas(base: str) -> list[dict[str, Any]]:
    return [
        _schema(USER_SCHEMA, "User", "User Account", _USER, base),
        _schema(GROUP_SCHEMA, "Group", "Group", _GROUP, base),
        _schema(ENTERPRISE_SCHEMA, "EnterpriseUser", "Enterprise User", _ENTERPRISE, base),
    ]


def _schema(
    urn: str, name: str, description: str, attributes: list[dict[str, Any]], base: str
) -> dict[str, Any]:
    return {
        "schemas": [_SCHEMA_SCHEMA],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{urn}"},
    }
