"""The OpenAPI 3.1 document of the admin API, built from its route table and its answer types.

`document()` describes exactly the routes it is handed. Each dataclass an operation answers or takes
becomes a schema under `components`, read from its fields and their type hints (str, int, float, bool,
None, unions, lists, tuples, dicts, Literal enums, `Annotated[..., {schema}]`, nested dataclasses);
the class docstring and the docstring under a field become descriptions. Fields whose name starts
with `_` are never sent, so never described.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
import types
from collections.abc import Iterable
from dataclasses import MISSING, fields, is_dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from engine.api.answers import Error, Forbidden
from engine.api.route import Route, Schema

TITLE = "Roster admin API"
DESCRIPTION = (
    "See and steer a Roster engine's jobs: status, cycles, the provisioning log, "
    "and the switches (pause, resume, restart, reset, approve, reject). Each operation needs its role "
    "(`x-roster-role`: viewer, operator or approver) of the service account whose token is sent; "
    "each that changes something is recorded in the audit trail (GET /audit), with the comment "
    "its body may carry."
)
ERRORS = {
    400: "A query value, a path value or the body is wrong; `detail` says which",
    401: "No bearer token, or not this engine's",
    403: "The token's account lacks the role the route needs (`x-roster-role`); `roles` says which it has",
    404: "No such job (`detail` names the jobs there are), object or route",
    409: "The job is not in a state that allows this now",
    503: "Unavailable now: the source or the state store cannot be read (or, for /healthz, the engine is"
    " unhealthy); retry later",
}
PATH_PARAMETERS = {
    "job": "The job's name, as in the jobs file",
    "source_id": "The object's id in the source (slashes allowed)",
}
_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class Schemas:
    """The components of one document: a dataclass's schema is made once and referred to by name."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}

    def of(self, hint: Any) -> Schema:
        """The JSON schema of values of type `hint`, as the API serializes them."""
        origin, args = get_origin(hint), get_args(hint)
        if hint is Any:
            return {}
        if isinstance(hint, type) and hint in _SIMPLE:
            return {"type": _SIMPLE[hint]}
        if hint is dict:
            return {"type": "object"}
        if origin is Annotated:
            return {**self.of(args[0]), **{k: v for extra in args[1:] for k, v in extra.items()}}
        if origin is Literal:
            return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
        if origin in (Union, types.UnionType):
            return _union([self.of(arg) for arg in args])
        if origin in (list, set, frozenset) or (origin is tuple and args[1:] == (...,)):
            return {"type": "array", "items": self.of(args[0])}
        if origin is tuple:
            items = [self.of(arg) for arg in args]
            return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of(args[1])}
        if isinstance(hint, type) and is_dataclass(hint):
            return self.ref(hint)
        raise TypeError(f"no JSON schema for {hint!r}: the API cannot promise its shape")

    def ref(self, cls: type, *, closed: bool = False) -> Schema:
        """A reference to the schema of dataclass `cls`; `closed` refuses fields it does not declare."""
        name = cls.__name__
        if name not in self.components:
            self.components[name] = {}  # a placeholder, so a type that holds itself ends
            self.components[name] = self._object(cls, closed)
        return {"$ref": f"#/components/schemas/{name}"}

    def _object(self, cls: type, closed: bool) -> Schema:
        hints = get_type_hints(cls, include_extras=True)
        notes = _field_docs(cls)
        properties: dict[str, Schema] = {}
        for field in fields(cls):
            if field.name.startswith("_"):
                continue
            described = self.of(hints[field.name])
            if field.name in notes:
                described = {**described, "description": notes[field.name]}
            properties[field.name] = described
        schema: Schema = {"type": "object", "required": list(properties), "properties": properties}
        if closed:
            schema["additionalProperties"] = False
            schema["required"] = [
                f.name for f in fields(cls) if f.default is MISSING and f.name in properties
            ]
        doc = inspect.getdoc(cls)
        if doc and not doc.startswith(f"{cls.__name__}("):  # not the signature dataclass writes itself
            schema["description"] = doc
        return schema


def _union(options: list[Schema]) -> Schema:
    """`{"type": [...]}` when every option is a bare type, `anyOf` otherwise."""
    if all(option.keys() == {"type"} for option in options):
        return {"type": [option["type"] for option in options]}
    return {"anyOf": options}


@cache
def _field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under the fields of `cls` and its bases, by field name."""
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for first, second in itertools.pairwise(body):
            if (
                isinstance(first, ast.AnnAssign)
                and isinstance(first.target, ast.Name)
                and isinstance(second, ast.Expr)
                and isinstance(second.value, ast.Constant)
                and isinstance(second.value.value, str)
            ):
                notes[first.target.id] = inspect.cleandoc(second.value.value)
    return notes


def _json(schema: Schema, text: str) -> Schema:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _operation(route: Route, schemas: Schemas) -> Schema:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": text}
        for name, text in PATH_PARAMETERS.items()
        if f"{{{name}}}" in route.path
    ]
    parameters += [
        {"name": p.name, "in": "query", "required": False, "schema": p.schema(), "description": p.description}
        for p in route.query
    ]
    if route.answer is not None:
        success = _json(schemas.of(route.answer), "Done")
    else:
        success = {
            "description": "Done",
            "content": {kind: {"schema": {"type": "string"}} for kind in route.media},
        }
    error = schemas.ref(route.failure)
    operation: Schema = {"operationId": route.operation_id, "summary": route.summary}
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": schemas.ref(route.body, closed=True)}},
        }
    responses = {str(route.status): success}
    if route.public:
        operation["security"] = []
    else:
        challenge = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses["401"] = {**_json(schemas.ref(Error), ERRORS[401]), "headers": challenge}
        responses["403"] = _json(schemas.ref(Forbidden), ERRORS[403])
        operation["x-roster-role"] = route.role
    for status in route.errors:
        responses[str(status)] = _json(error, ERRORS[status])
    operation["responses"] = responses
    return operation


def document(routes: Iterable[Route]) -> dict[str, Any]:
    """The OpenAPI document of `routes`."""
    schemas = Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": "1", "description": DESCRIPTION},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
