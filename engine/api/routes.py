"""The admin API: an aiohttp application over `engine.api.admin.Admin`, JSON in and out.

Every route is declared once, in `Api.routes`; the router and the OpenAPI document (`engine.api.openapi`) are
both built from that table, so neither can name a route the other lacks. Every route but `/healthz`
wants `Authorization: Bearer <token>`. Bad input (a malformed body, a query value of the wrong kind,
an unknown job) gets a 4xx whose JSON names the problem: `{"error": "invalid_parameter", "detail":
"limit: expected a whole number, got 'ten'"}`; the token never appears in an answer or a log line.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from common.errors import RosterError, SourceError, StateError
from common.process.status_server import HealthCheck
from engine.api.admin import Admin, UnknownJob
from engine.api.openapi import LOG_ACTIONS, LOG_STATUSES, document
from engine.pipeline.ondemand import UnknownObject
from engine.store.history import LogFilter

log = logging.getLogger("roster.engine.api")

Handler = Callable[[web.Request, "Query"], Awaitable[web.StreamResponse]]

PUBLIC = frozenset({"/healthz"})
SWITCHES = ("pause", "resume", "restart", "reset", "approve", "reject")
LOG_QUERY = ("job", "status", "action", "source_id", "cycle_id", "since", "until", "after_id", "limit")
EXPORT_QUERY = (*LOG_QUERY[:-1], "format")
MAX_LOG_LIMIT = 10_000
MAX_ID = 2**63 - 1  # the largest id a database column holds
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="roster"'}
EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


class ApiProblem(Exception):
    """An answer other than success, with its status, a short code and a sentence for people."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    """As the OpenAPI document writes it; `{source_id}` may hold slashes."""
    handler: Handler
    query: tuple[str, ...] = ()
    """The query parameters the route takes; any other is refused."""


def answer(data: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(body=body, status=status, content_type="application/json")


def problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    response = answer({"error": error, "detail": detail}, status)
    response.headers.update(headers or {})
    return response


# -- Reading requests --------------------------------------------------------------------------------


class Query:
    """The request's query string, read and checked value by value."""

    def __init__(self, request: web.Request, allowed: Iterable[str]) -> None:
        self._values = request.query
        allowed = tuple(allowed)
        for name in self._values:
            if name not in allowed:
                known = ", ".join(allowed) or "none"
                raise ApiProblem(
                    400, "invalid_parameter", f"{name}: unknown query parameter (known: {known})"
                )
            if len(self._values.getall(name)) > 1:
                raise ApiProblem(400, "invalid_parameter", f"{name}: given more than once")

    def text(self, name: str, options: Iterable[str] | None = None) -> str | None:
        value = self._values.get(name)
        if value is None:
            return None
        if not value:
            raise _invalid(name, "must not be empty")
        if options is not None and value not in options:
            raise _invalid(name, f"{value!r} is not one of {', '.join(sorted(options))}")
        return value

    def whole(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        value = self._values.get(name)
        if value is None:
            return default
        try:
            number = int(value.strip(), 10)
        except ValueError:
            raise _invalid(name, f"expected a whole number, got {value!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise _invalid(name, f"must be at least {minimum}{upper}, got {number}")
        return number

    def seconds(self, name: str) -> float | None:
        """A moment as Unix seconds (`since=1718000000.5`)."""
        value = self._values.get(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise _invalid(name, f"expected Unix seconds such as 1718000000, got {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise _invalid(name, f"must be a finite number of seconds, 0 or more, got {value!r}")
        return number


def _invalid(name: str, what: str) -> ApiProblem:
    return ApiProblem(400, "invalid_parameter", f"{name}: {what}")


async def _json_object(request: web.Request) -> dict[str, Any]:
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


def _log_filter(query: Query, *, limit: int) -> LogFilter:
    return LogFilter(
        job=query.text("job"),
        status=query.text("status", LOG_STATUSES),
        action=query.text("action", LOG_ACTIONS),
        source_id=query.text("source_id"),
        cycle_id=query.text("cycle_id"),
        since=query.seconds("since"),
        until=query.seconds("until"),
        after_id=query.whole("after_id", 0, minimum=0, maximum=MAX_ID),
        limit=limit,
    )


# -- Handlers ----------------------------------------------------------------------------------------


class Api:
    """The handlers, bound to one engine's `Admin`."""

    def __init__(self, admin: Admin, health: HealthCheck) -> None:
        self.admin = admin
        self.health = health
        self.routes: tuple[Route, ...] = (
            Route("GET", "/healthz", self.healthz),
            Route("GET", "/openapi.json", self.openapi),
            Route("GET", "/jobs", self.jobs),
            Route("GET", "/jobs/{job}", self.status),
            Route("GET", "/jobs/{job}/cycles", self.cycles, ("limit",)),
            Route("POST", "/jobs/{job}/cycles", self.trigger),
            Route("GET", "/jobs/{job}/preview/{source_id}", self.preview),
            Route("POST", "/jobs/{job}/provision", self.provision),
            *(Route("POST", f"/jobs/{{job}}/{name}", self.switch) for name in SWITCHES),
            Route("GET", "/logs", self.logs, LOG_QUERY),
            Route("GET", "/logs/export", self.export, EXPORT_QUERY),
        )
        self.document = document((r.method, r.path) for r in self.routes)

    async def healthz(self, _request: web.Request, _query: Query) -> web.Response:
        healthy, details = self.health()
        return answer({"healthy": healthy, **details}, 200 if healthy else 503)

    async def openapi(self, _request: web.Request, _query: Query) -> web.Response:
        return answer(self.document)

    async def jobs(self, _request: web.Request, _query: Query) -> web.Response:
        return answer({"jobs": await self.admin.jobs()})

    async def status(self, request: web.Request, _query: Query) -> web.Response:
        return answer(await self.admin.status(request.match_info["job"]))

    async def cycles(self, request: web.Request, query: Query) -> web.Response:
        limit = query.whole("limit", 20, minimum=1, maximum=1_000)
        job = request.match_info["job"]
        return answer({"job": job, "cycles": await self.admin.cycles(job, limit)})

    async def trigger(self, request: web.Request, _query: Query) -> web.Response:
        started = await self.admin.trigger(request.match_info["job"])
        if not started["started"]:
            raise ApiProblem(409, "job_paused", started["reason"])
        return answer(started, 202)

    async def preview(self, request: web.Request, _query: Query) -> web.Response:
        return answer(await self.admin.preview(request.match_info["job"], request.match_info["source_id"]))

    async def provision(self, request: web.Request, _query: Query) -> web.Response:
        self.admin.job(request.match_info["job"])  # an unknown job is a 404 whatever the body
        body = await _json_object(request)
        extra = sorted(set(body) - {"source_id"})
        if extra:
            raise ApiProblem(
                400, "invalid_body", f'{extra[0]}: unknown field (the body is {{"source_id": ...}})'
            )
        source_id = body.get("source_id")
        if not isinstance(source_id, str) or not source_id:
            raise ApiProblem(400, "invalid_body", "source_id: required, a non-empty string")
        return answer(await self.admin.provision(request.match_info["job"], source_id))

    async def switch(self, request: web.Request, _query: Query) -> web.Response:
        """pause, resume, restart, reset, approve or reject, by the last part of the path."""
        name = request.path.rsplit("/", 1)[1]
        done = await getattr(self.admin, name)(request.match_info["job"])
        if name == "approve" and not done["approved"]:
            raise ApiProblem(409, "nothing_to_approve", done["reason"])
        return answer(done)

    async def logs(self, _request: web.Request, query: Query) -> web.Response:
        where = _log_filter(query, limit=query.whole("limit", 1_000, minimum=1, maximum=MAX_LOG_LIMIT))
        records = await self.admin.logs(where)
        next_after = records[-1]["id"] if len(records) == where.limit else None
        return answer({"records": records, "next_after_id": next_after})

    async def export(self, request: web.Request, query: Query) -> web.StreamResponse:
        form = query.text("format", EXPORT_TYPES) or "jsonl"
        where = _log_filter(query, limit=MAX_LOG_LIMIT)
        if where.job is not None:
            self.admin.job(where.job)  # an unknown job is a 404, before the stream starts
        response = web.StreamResponse(
            headers={
                "Content-Type": f"{EXPORT_TYPES[form]}; charset=utf-8",
                "Content-Disposition": f'attachment; filename="roster-log.{form}"',
            }
        )
        await response.prepare(request)
        try:
            async for chunk in self.admin.export_logs(where, form):  # type: ignore[arg-type]
                await response.write(chunk)
        except Exception:
            # The status is sent already: cut the stream, so the client sees it incomplete, not ended.
            log.exception("event=api_export_failed")
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response


# -- The application ---------------------------------------------------------------------------------


def api_app(admin: Admin, token: str, *, health: HealthCheck | None = None) -> web.Application:
    """The admin API for `admin`, guarded by the bearer `token`."""
    if not token:
        raise ValueError("the API needs a token")
    api = Api(admin, health or (lambda: (True, {})))
    app = web.Application(middlewares=[_guard(token.encode())], handler_args={"max_field_size": 16_384})
    for route in api.routes:
        pattern = route.path.replace("{source_id}", "{source_id:.+}")
        app.router.add_route(route.method, pattern, _checked(route))
    return app


def _checked(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route's handler, after its query string is checked against the parameters it takes."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await route.handler(request, Query(request, route.query))

    return handle


def _guard(token: bytes) -> Any:
    """Middleware: the bearer token on every route but the public ones, and every failure as JSON."""

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            if request.path not in PUBLIC:
                _authorize(request, token)
            response = await handler(request)
        except ApiProblem as exc:
            response = problem(exc.status, exc.error, exc.detail, exc.headers)
        except UnknownJob as exc:
            response = problem(404, "unknown_job", str(exc))
        except UnknownObject as exc:
            response = problem(404, "unknown_object", str(exc))
        except (SourceError, StateError) as exc:
            response = problem(503, "unavailable", str(exc), {"Retry-After": "10"})
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = problem(exc.status, _slug(exc.reason), _http_detail(request, exc), _allow(exc))
        except RosterError as exc:
            log.error("event=api_failed method=%s route=%s error=%s", request.method, _route(request), exc)
            response = problem(500, "internal", str(exc))
        except Exception:
            log.exception("event=api_crashed method=%s route=%s", request.method, _route(request))
            response = problem(500, "internal", "the engine failed to answer; its log says why")
        log.debug(
            "event=api_request method=%s route=%s status=%d ms=%.1f",
            request.method,
            _route(request),
            response.status,
            (time.perf_counter() - started) * 1000,
        )
        return response

    return guard


def _authorize(request: web.Request, token: bytes) -> None:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiProblem(
            401, "unauthorized", "send the API token as `Authorization: Bearer <token>`", CHALLENGE
        )
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), token):
        raise ApiProblem(401, "unauthorized", "the bearer token is not this engine's API token", CHALLENGE)


def _route(request: web.Request) -> str:
    """The route's pattern, never its values: paths and queries may hold a person's id."""
    resource = getattr(request.match_info.route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


def _slug(reason: str) -> str:
    return reason.lower().replace(" ", "_").replace("-", "_")


def _http_detail(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no such route: {request.method} {request.path}; GET /openapi.json lists the routes"
    if exc.status == 405:
        return f"{request.method} is not allowed here; allowed: {exc.headers.get('Allow', 'none')}"
    if exc.status == 413:
        return "the body is too large"
    return exc.text or exc.reason


def _allow(exc: web.HTTPException) -> dict[str, str]:
    return {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
