"""The OpenAPI document is read from the route table and the answer types: a field added to an answer is
in the document, with the schema its type hint gives."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

import orjson

from engine.api.admin import Admin
from engine.api.answers import JobStatus, LogRecord
from engine.api.openapi import Schemas
from engine.api.routes import Api, answer


@dataclass(frozen=True, slots=True)
class Inner:
    """An inner value."""

    count: Annotated[int, {"minimum": 0}]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outer:
    name: str
    """Its name"""
    ratio: float | None
    flags: list[bool]
    pair: tuple[Inner, str]
    kind: Literal["a", "b"]
    always: Literal[True]
    inner: Inner | None
    extra: dict[str, Any]
    _hidden: int = 0


def _document() -> dict[str, Any]:
    return Api(Admin(None), lambda: (True, {})).document  # type: ignore[arg-type]


def test_each_kind_of_type_hint_has_its_schema_and_private_fields_are_left_out() -> None:
    schemas = Schemas()
    assert schemas.of(Outer) == {"$ref": "#/components/schemas/Outer"}
    inner = {"$ref": "#/components/schemas/Inner"}
    assert schemas.components["Outer"] == {
        "type": "object",
        "required": ["name", "ratio", "flags", "pair", "kind", "always", "inner", "extra"],
        "properties": {
            "name": {"type": "string", "description": "Its name"},
            "ratio": {"type": ["number", "null"]},
            "flags": {"type": "array", "items": {"type": "boolean"}},
            "pair": {
                "type": "array",
                "prefixItems": [inner, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
            "kind": {"enum": ["a", "b"]},
            "always": {"const": True},
            "inner": {"anyOf": [inner, {"type": "null"}]},
            "extra": {"type": "object", "additionalProperties": {}},
        },
    }
    assert schemas.components["Inner"] == {
        "type": "object",
        "required": ["count"],
        "properties": {"count": {"type": "integer", "minimum": 0}},
        "description": "An inner value.",
    }


def test_the_document_describes_every_field_of_the_answers_and_every_route() -> None:
    document = _document()
    schemas = document["components"]["schemas"]
    for answer_type in (JobStatus, LogRecord):
        described = schemas[answer_type.__name__]["properties"]
        assert list(described) == [f.name for f in fields(answer_type)]
    assert schemas["JobStatus"]["properties"]["state"] == {
        "enum": ["active", "paused", "quarantined", "waiting_for_approval"]
    }
    operations = {(m, p) for p, item in document["paths"].items() for m in item}
    assert len(operations) == 19 and ("post", "/jobs/{job}/approve") in operations
    assert ("get", "/audit") in operations
    assert ("get", "/agents") in operations
    assert ("post", "/jobs/{job}/reconcile") in operations
    job = document["paths"]["/jobs/{job}/cycles"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in job] == [("job", "path"), ("limit", "query")]
    assert job[1]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}


def test_an_answer_is_serialized_with_its_public_fields_in_order() -> None:
    sent = answer(
        Outer(
            name="x",
            ratio=None,
            flags=[True],
            pair=(Inner(1), "y"),
            kind="a",
            always=True,
            inner=None,
            extra={},
        )
    )
    assert sent.body == orjson.dumps(
        {
            "name": "x",
            "ratio": None,
            "flags": [True],
            "pair": [{"count": 1}, "y"],
            "kind": "a",
            "always": True,
            "inner": None,
            "extra": {},
        }
    )


def test_each_operation_names_the_role_it_needs_and_its_403() -> None:
    paths = _document()["paths"]
    roles = {(m, p): op.get("x-roster-role") for p, item in paths.items() for m, op in item.items()}
    assert roles.pop(("get", "/healthz")) is None  # public
    operator = {("post", f"/jobs/{{job}}/{verb}") for verb in ("cycles", "provision", "pause", "resume")}
    operator |= {("post", f"/jobs/{{job}}/{verb}") for verb in ("restart", "reset", "reconcile")}
    approver = {("post", "/jobs/{job}/approve"), ("post", "/jobs/{job}/reject")}
    assert {k for k, role in roles.items() if role == "operator"} == operator
    assert {k for k, role in roles.items() if role == "approver"} == approver
    assert {role for k, role in roles.items() if k not in operator | approver} == {"viewer"}
    for method, path in roles:
        forbidden = paths[path][method]["responses"]["403"]
        assert forbidden["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Forbidden"
        }
    approve = paths["/jobs/{job}/approve"]["post"]["requestBody"]
    assert approve["required"] is False  # a comment is welcome, not needed: clients without one go on
