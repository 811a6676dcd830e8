"""The names SCIM 2.0 gives its resources (RFC 7643, RFC 7644): schema URNs and endpoints."""

from __future__ import annotations

from typing import Final, Literal

USER_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

ObjectType = Literal["user", "group"]
ENDPOINTS: Final = {"user": "/Users", "group": "/Groups"}
