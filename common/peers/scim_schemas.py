"""The names SCIM 2.0 gives its resources (RFC 7643, RFC 7644): schema URNs and endpoints."""

from __future__ import annotations

from typing import Final, Literal

USER_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

ObjectType = Literal["user", "group"]
ENDPOINTS: Final = {"user": "/Users", "group": "/Groups"}

IDENTIFIERS: Final = frozenset({"externalid"})
"""Matching attributes that identify an object rather than name it (lowercase, core schema): one that
another object holds is that object's, whatever later attribute matches (`engine.core.links`, the SCIM
connector's search)."""
