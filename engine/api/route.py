"""`Route`: one operation of the admin API, declared once (its path, query parameters, body and answer
type), and the reading of a request that those declarations drive.

A query parameter is one object (`Text`, `Whole`, `Seconds`) that both reads its value from a request
and describes itself to the OpenAPI document, so the checks and the document cannot drift apart. A
value that fails its check raises `ApiProblem`, which the API answers as a 4xx naming the problem.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from engine.api.accounts import Role
from engine.api.answers import Error

Schema = dict[str, Any]
Handler = Callable[[web.Request, "Query"], Awaitable[web.StreamResponse]]


class ApiProblem(Exception):
    """An answer other than success, with its status, a short code and a sentence for people."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


# -- Query parameters --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """A non-empty string, optionally one of `options`; `default` when not given."""

    name: str
    description: str
    options: frozenset[str] | None = None
    default: str | None = None

    def read(self, query: Query) -> str | None:
        value = query.raw(self.name)
        if value is None:
            return self.default
        if not value:
            raise _invalid(self.name, "must not be empty")
        if self.options is not None and value not in self.options:
            raise _invalid(self.name, f"{value!r} is not one of {', '.join(sorted(self.options))}")
        return value

    def schema(self) -> Schema:
        schema: Schema = (
            {"enum": sorted(self.options)} if self.options else {"type": "string", "minLength": 1}
        )
        return schema if self.default is None else {**schema, "default": self.default}


@dataclass(frozen=True, slots=True, kw_only=True)
class Whole:
    """A whole number within `minimum` and `maximum`, `default` when not given."""

    name: str
    description: str
    default: int
    minimum: int
    maximum: int | None = None

    def read(self, query: Query) -> int:
        value = query.raw(self.name)
        if value is None:
            return self.default
        try:
            number = int(value.strip(), 10)
        except ValueError:
            raise _invalid(self.name, f"expected a whole number, got {value!r}") from None
        if number < self.minimum or (self.maximum is not None and number > self.maximum):
            upper = f" and at most {self.maximum}" if self.maximum is not None else ""
            raise _invalid(self.name, f"must be at least {self.minimum}{upper}, got {number}")
        return number

    def schema(self) -> Schema:
        bounds = {"maximum": self.maximum} if self.maximum is not None else {}
        return {"type": "integer", "minimum": self.minimum, **bounds, "default": self.default}


@dataclass(frozen=True, slots=True)
class Seconds:
    """A moment as Unix seconds (`since=1718000000.5`)."""

    name: str
    description: str

    def read(self, query: Query) -> float | None:
        value = query.raw(self.name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise _invalid(self.name, f"expected Unix seconds such as 1718000000, got {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise _invalid(self.name, f"must be a finite number of seconds, 0 or more, got {value!r}")
        return number

    def schema(self) -> Schema:
        return {"type": "number", "minimum": 0}


Param = Text | Whole | Seconds


class Query:
    """The request's query string, checked against the parameters its route takes."""

    def __init__(self, request: web.Request, allowed: Iterable[Param]) -> None:
        self._values = request.query
        names = tuple(param.name for param in allowed)
        for name in self._values:
            if name not in names:
                known = ", ".join(names) or "none"
                raise ApiProblem(
                    400, "invalid_parameter", f"{name}: unknown query parameter (known: {known})"
                )
            if len(self._values.getall(name)) > 1:
                raise ApiProblem(400, "invalid_parameter", f"{name}: given more than once")

    def raw(self, name: str) -> str | None:
        return self._values.get(name)


def _invalid(name: str, what: str) -> ApiProblem:
    return ApiProblem(400, "invalid_parameter", f"{name}: {what}")


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's body, which must be a JSON object."""
    raw = await request.read()
    if not raw.strip():
        raise ApiProblem(400, "invalid_body", "a JSON object is required as the body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiProblem(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiProblem(400, "invalid_body", f"expected a JSON object, got {type(body).__name__}")
    return body


MAX_COMMENT_CHARS = 2_000


async def comment_of(request: web.Request, body: dict[str, Any] | None = None) -> str | None:
    """The `comment` of the request's JSON body (`body`, when read already); none without a body."""
    if body is None:
        if not (await request.read()).strip():
            return None
        body = await json_object(request)
        extra = sorted(set(body) - {"comment"})
        if extra:
            raise ApiProblem(
                400, "invalid_body", f'{extra[0]}: unknown field (the body is {{"comment": ...}})'
            )
    comment = body.get("comment")
    if comment is None:
        return None
    if not isinstance(comment, str) or not comment.strip():
        raise ApiProblem(400, "invalid_body", "comment: a non-empty string when given")
    if len(comment) > MAX_COMMENT_CHARS:
        raise ApiProblem(400, "invalid_body", f"comment: at most {MAX_COMMENT_CHARS} characters")
    return comment.strip()


@dataclass(slots=True)
class AuditNote:
    """What a state-changing handler tells the audit trail of its request, besides who and where:
    the object acted on (a source id, a cycle id) and the comment the request carried."""

    object: str | None = None
    comment: str | None = None


def audit_note(request: web.Request) -> AuditNote:
    """The request's note for the audit trail, made on first use."""
    note = request.get(_NOTE)
    if note is None:
        note = request[_NOTE] = AuditNote()
    return note


_NOTE = web.RequestKey("roster.audit_note", AuditNote)


# -- Routes ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One operation: what the router registers and what the OpenAPI document says of it."""

    method: str
    path: str
    """As the OpenAPI document writes it; `{source_id}` may hold slashes."""
    handler: Handler
    operation_id: str
    summary: str
    answer: type | None
    """The dataclass of the success answer's JSON; None for an answer that is not JSON."""
    status: int = 200
    query: tuple[Param, ...] = ()
    """The query parameters the route takes; any other is refused."""
    body: type | None = None
    """The dataclass of the JSON body the route wants."""
    errors: tuple[int, ...] = (400,)
    """The error statuses it may answer besides 401 (every route but the public ones)."""
    failure: type = Error
    """The dataclass of its error answers."""
    public: bool = False
    """Served without the bearer token."""
    role: Role = "viewer"
    """The role the token's account must hold (every route but the public ones); 403 without it."""
    audited: str | None = None
    """The action the audit trail records each call as, done or refused (the routes that change
    something); None: not recorded."""
    body_required: bool = True
    """Whether `body`, when the route takes one, must be sent."""
    media: tuple[str, ...] = ("application/json",)
