"""The inbound SCIM service's own OpenAPI 3.1 document (`{base_path}/openapi.json`), so a client's
tooling (and schemathesis, in the tests) knows every route, what it takes and what it may answer.

Resources are described loosely on purpose: SCIM's schemas (`/Schemas`) say what a User or Group
holds, and extensions add attributes; the document pins down the shapes of the protocol's own messages
(PatchOp, SearchRequest, BulkRequest, ListResponse, Error) and the answers each route can give.
"""

from __future__ import annotations

from typing import Any

from common.peers.scim_schemas import GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA

_SCIM = "application/scim+json"
_ERROR = {"$ref": "#/components/responses/Error"}
_REFUSALS = {str(code): _ERROR for code in (400, 401, 403, 404, 409, 412, 413, 503)}


def inbound_openapi(base_path: str, *, oauth: bool) -> dict[str, Any]:
    """The document for a service under `base_path`; `oauth`: it serves the token endpoint."""
    paths: dict[str, Any] = {
        "/ServiceProviderConfig": {"get": _read("What the service supports", "Object")},
        "/ResourceTypes": {"get": _read("The resource types", "ListResponse")},
        "/ResourceTypes/{name}": {"get": _read("One resource type", "Object", parameter="name")},
        "/Schemas": {"get": _read("The schemas", "ListResponse")},
        "/Schemas/{urn}": {"get": _read("One schema", "Object", parameter="urn")},
        "/.search": {"post": _search("Search Users and Groups")},
        "/Bulk": {
            "post": {
                "summary": "Several operations in one request (RFC 7644 §3.7)",
                "requestBody": _body("BulkRequest"),
                "responses": {"200": _answer("Object"), **_REFUSALS},
            }
        },
    }
    for endpoint in ("Users", "Groups"):
        kind = endpoint[:-1]
        paths[f"/{endpoint}"] = {
            "get": {
                "summary": f"List {endpoint}",
                "parameters": [
                    _query("filter", "string"),
                    _query("startIndex", "integer"),
                    _query("count", "integer"),
                    _query("attributes", "string"),
                    _query("excludedAttributes", "string"),
                ],
                "responses": {"200": _answer("ListResponse"), **_REFUSALS},
            },
            "post": {
                "summary": f"Create a {kind}",
                "requestBody": _body(kind),
                "responses": {"201": _answer("Object"), **_REFUSALS},
            },
        }
        paths[f"/{endpoint}/.search"] = {"post": _search(f"Search {endpoint}")}
        one = [_path("id")]
        paths[f"/{endpoint}/{{id}}"] = {
            "get": {
                "summary": f"One {kind}",
                "parameters": one,
                "responses": {"200": _answer("Object"), **_REFUSALS},
            },
            "put": {
                "summary": f"Replace a {kind}",
                "parameters": one,
                "requestBody": _body(kind),
                "responses": {"200": _answer("Object"), **_REFUSALS},
            },
            "patch": {
                "summary": f"Change a {kind} (RFC 7644 §3.5.2)",
                "parameters": one,
                "requestBody": _body("PatchOp"),
                "responses": {"200": _answer("Object"), **_patched_group(kind), **_REFUSALS},
            },
            "delete": {
                "summary": f"Delete a {kind}",
                "parameters": one,
                "responses": {"204": {"description": "Deleted"}, **_REFUSALS},
            },
        }
    if oauth:
        paths["/oauth/token"] = {
            "post": {
                "summary": "A bearer token for an OAuth 2.0 client (client credentials)",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "grant_type": {"type": "string"},
                                    "client_id": {"type": "string"},
                                    "client_secret": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The token",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": {"description": "Not a client credentials grant"},
                    "401": {"description": "Unknown client or wrong secret"},
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Roster inbound SCIM 2.0 service", "version": "1"},
        "servers": [{"url": base_path or "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "SCIM's error (RFC 7644 §3.12)",
                    "content": {_SCIM: {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
            "schemas": _SCHEMAS,
        },
    }


def _read(summary: str, schema: str, *, parameter: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {"200": _answer(schema), **_REFUSALS}}
    if parameter is not None:
        operation["parameters"] = [_path(parameter)]
    return operation


def _search(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "requestBody": _body("SearchRequest"),
        "responses": {"200": _answer("ListResponse"), **_REFUSALS},
    }


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {_SCIM: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _answer(schema: str) -> dict[str, Any]:
    return {"description": "OK", "content": {_SCIM: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _patched_group(kind: str) -> dict[str, Any]:
    """A Group PATCH that asks for no attributes is answered 204, without the members (see `http`)."""
    return {"204": {"description": "Changed"}} if kind == "Group" else {}


def _query(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _resource(core: str, name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["schemas", name],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}, "examples": [[core]]},
            name: {"type": "string"},
            "externalId": {"type": "string"},
        },
        "additionalProperties": True,
    }


_SCHEMAS: dict[str, Any] = {
    "Object": {"type": "object"},
    "User": _resource(USER_SCHEMA, "userName"),
    "Group": _resource(GROUP_SCHEMA, "displayName"),
    "PatchOp": {
        "type": "object",
        "required": ["schemas", "Operations"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}, "examples": [[PATCH_SCHEMA]]},
            "Operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["op"],
                    "properties": {"op": {"type": "string"}, "path": {"type": "string"}, "value": {}},
                },
            },
        },
    },
    "SearchRequest": {
        "type": "object",
        "required": ["schemas"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "filter": {"type": "string"},
            "startIndex": {"type": "integer"},
            "count": {"type": "integer"},
            "attributes": {"type": "array", "items": {"type": "string"}},
            "excludedAttributes": {"type": "array", "items": {"type": "string"}},
        },
    },
    "BulkRequest": {
        "type": "object",
        "required": ["schemas", "Operations"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "failOnErrors": {"type": "integer"},
            "Operations": {"type": "array", "items": {"type": "object"}},
        },
    },
    "ListResponse": {
        "type": "object",
        "required": ["schemas", "totalResults", "Resources"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "totalResults": {"type": "integer"},
            "startIndex": {"type": "integer"},
            "itemsPerPage": {"type": "integer"},
            "Resources": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Error": {
        "type": "object",
        "required": ["schemas", "status"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string"},
            "scimType": {"type": "string"},
            "detail": {"type": "string"},
        },
    },
}
