"""The admin API as an aiohttp application: the routes of `engine.api.routes.Api` behind a middleware
that wants the bearer token on every route but the public ones and answers every failure as JSON
(`{"error": code, "detail": sentence}`), logging the route's pattern, never its values.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from common.errors import RosterError, SourceError, StateError
from common.process.status_server import HealthCheck
from engine.api.admin import Admin, NotNow, UnknownJob
from engine.api.console.app import console_app
from engine.api.console.sessions import ROLES, Person
from engine.api.console.signin import Authenticate, TokenSignIn
from engine.api.route import ApiProblem, Query, Route
from engine.api.routes import Api, problem
from engine.pipeline.ondemand import UnknownObject

log = logging.getLogger("roster.engine.api")

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="roster"'}
CONSOLE = "/ui/"
"""Where the console's pages are; it signs people in itself (engine.api.console)."""
RETRY_AFTER_S = 5
"""What a closed gate asks clients to wait: about the time a standby takes to become active."""


class ApiGate:
    """Whether the API serves requests: closed with an error code and a reason (a standby engine,
    an engine stopping), it answers 503 and `Retry-After` on every route but the health check."""

    def __init__(self, error: str | None = None, reason: Callable[[], str] = str) -> None:
        self.error = error
        self.reason = reason

    def close(self, error: str, reason: Callable[[], str]) -> None:
        self.error, self.reason = error, reason

    def open(self) -> None:
        self.error = None

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        """Open while the block runs; closed again (the engine is stopping) once it ends."""
        self.open()
        try:
            yield
        finally:
            self.close("stopping", lambda: "stopping: this engine is shutting down")


def api_app(
    admin: Admin,
    token: str,
    *,
    health: HealthCheck | None = None,
    gate: ApiGate | None = None,
    console: bool = True,
) -> web.Application:
    """The admin API for `admin`, guarded by the bearer `token` (and by `gate`, when given), with the
    console at `/ui/` (which has sessions of its own instead of the bearer token)."""
    if not token:
        raise ValueError("the API needs a token")
    if health is None:
        runner = getattr(admin, "runner", None)  # a stand-in admin of a test may have none
        health = runner.tracker.health if runner is not None else (lambda: (True, {}))
    api = Api(admin, health)
    public = frozenset(route.path for route in api.routes if route.public)
    health_path = next(route.path for route in api.routes if route.operation_id == "health")
    app = web.Application(
        middlewares=[_guard(token.encode(), public, gate or ApiGate(), health_path)],
        handler_args={"max_field_size": 16_384},
    )
    for route in api.routes:
        pattern = route.path.replace("{source_id}", "{source_id:.+}")
        app.router.add_route(route.method, pattern, _checked(route))
    if console:
        app.add_subapp(CONSOLE.rstrip("/"), console_app(admin, TokenSignIn(_service_account(token))))
    return app


def _service_account(token: str) -> Authenticate:
    """Until accounts of their own: the API's one token signs in as `admin`, with every role."""
    admin = Person(name="admin", kind="service_account", roles=frozenset(ROLES))

    def authenticate(given: str) -> Person | None:
        return admin if hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()) else None

    return authenticate


def _console(path: str) -> bool:
    return path.startswith(CONSOLE) or path == CONSOLE.rstrip("/")


def _checked(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route's handler, after its query string is checked against the parameters it takes."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await route.handler(request, Query(request, route.query))

    return handle


def _guard(token: bytes, public: frozenset[str], gate: ApiGate, health_path: str) -> Any:
    """Middleware: the gate, then the bearer token on every route but the public ones, and every
    failure as JSON."""

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            if gate.error is not None and request.path != health_path:
                raise ApiProblem(503, gate.error, gate.reason(), {"Retry-After": str(RETRY_AFTER_S)})
            if request.path not in public and not _console(request.path):
                _authorize(request, token)
            response = await handler(request)
        except ApiProblem as exc:
            response = problem(exc.status, exc.error, exc.detail, exc.headers)
        except NotNow as exc:
            response = problem(409, exc.error, str(exc))
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
