"""The admin API as an aiohttp application: the routes of `engine.api.routes.Api` behind a middleware
that wants the bearer token of a service account (`engine.api.accounts`) on every route but the public
ones and answers every failure as JSON (`{"error": code, "detail": sentence}`), logging the route's
pattern, never its values. Each route wants its role of the account (403 without it); each route that
changes something adds an entry to the audit trail, done or refused, with the account and the client's
address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from common.errors import RosterError, SourceError, StateError
from common.process.status_server import HealthCheck
from engine.api.accounts import Accounts, ApiAccount, admin_account
from engine.api.admin import Admin, NotNow, UnknownJob
from engine.api.answers import Forbidden
from engine.api.console.app import console_app
from engine.api.console.oidc import OidcSignIn
from engine.api.console.sessions import Person, Sessions
from engine.api.console.settings import ConsoleSettings
from engine.api.console.signin import Authenticate, TokenSignIn
from engine.api.route import ApiProblem, Query, Route, audit_note
from engine.api.routes import Api, answer, problem
from engine.pipeline.ondemand import UnknownObject
from engine.store.audit import Actor, Entry, Outcome

log = logging.getLogger("roster.engine.api")

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="roster"'}
ACCOUNT = web.RequestKey("roster.account", ApiAccount)
"""The account whose token a request carried (none on the public routes)."""
DEFAULT_CONSOLE = ConsoleSettings()
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
    accounts: Sequence[ApiAccount] = (),
    health: HealthCheck | None = None,
    gate: ApiGate | None = None,
    console: ConsoleSettings | None = DEFAULT_CONSOLE,
) -> web.Application:
    """The admin API for `admin`, guarded by the bearer `token` (the account `admin`, with every
    role) and those of `accounts` (and by `gate`, when given), with the console at `/ui/` (which has
    sessions of its own instead of the bearer token; None leaves it out)."""
    if not token:
        raise ValueError("the API needs a token")
    known = Accounts([admin_account(token), *accounts])
    if health is None:
        runner = getattr(admin, "runner", None)  # a stand-in admin of a test may have none
        health = runner.tracker.health if runner is not None else (lambda: (True, {}))
    api = Api(admin, health)
    public = frozenset(route.path for route in api.routes if route.public)
    health_path = next(route.path for route in api.routes if route.operation_id == "health")
    app = web.Application(
        middlewares=[_guard(known, public, gate or ApiGate(), health_path)],
        handler_args={"max_field_size": 16_384},
    )
    for route in api.routes:
        pattern = route.path.replace("{source_id}", "{source_id:.+}")
        app.router.add_route(route.method, pattern, _checked(route, admin))
    if console is not None:
        sign_in = OidcSignIn(console.oidc) if console.oidc else TokenSignIn(_signs_in(known))
        sessions = Sessions(idle_timeout_s=console.idle_timeout_minutes * 60)
        app.add_subapp(CONSOLE.rstrip("/"), console_app(admin, sign_in, sessions=sessions))
    return app


def _signs_in(accounts: Accounts) -> Authenticate:
    """Without OpenID Connect: an API token signs in to the console as its service account."""

    def authenticate(given: str) -> Person | None:
        account = accounts.find(given)
        if account is None:
            return None
        return Person(name=account.name, kind="service_account", roles=frozenset(account.roles))

    return authenticate


def _console(path: str) -> bool:
    return path.startswith(CONSOLE) or path == CONSOLE.rstrip("/")


def _checked(route: Route, admin: Admin) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route's handler, once the account holds the route's role and the query string is checked
    against the parameters it takes; a route that changes something is recorded in the audit trail,
    done (a 2xx) or refused (a 403 for want of the role, a 409 for the job's state)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        account = request.get(ACCOUNT)
        if not isinstance(account, ApiAccount):  # a public route
            return await route.handler(request, Query(request, route.query))
        if not account.holds(route.role):
            refusal = Forbidden(
                detail=f"{route.method} {route.path} needs the role {route.role}; the account "
                f"{account.name!r} has: {', '.join(account.role_names)}",
                role=route.role,
                account=account.name,
                roles=account.role_names,
            )
            await _record(admin, request, route, account, "refused", refusal.detail)
            return answer(refusal, 403)
        if route.audited is None:
            return await route.handler(request, Query(request, route.query))
        try:
            response = await route.handler(request, Query(request, route.query))
        except NotNow as exc:
            await _record(admin, request, route, account, "refused", str(exc))
            raise
        if response.status < 300:
            await _record(admin, request, route, account, "done", None)
        return response

    return handle


async def _record(
    admin: Admin,
    request: web.Request,
    route: Route,
    account: ApiAccount,
    outcome: Outcome,
    reason: str | None,
) -> None:
    if route.audited is None:
        return
    note = audit_note(request)
    entry = Entry(
        actor=Actor(kind="service_account", name=account.name),
        address=request.remote or "unknown",
        action=route.audited,
        job=request.match_info.get("job"),
        object=note.object,
        outcome=outcome,
        reason=reason,
        comment=note.comment,
    )
    await admin.record(entry)


def _guard(accounts: Accounts, public: frozenset[str], gate: ApiGate, health_path: str) -> Any:
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
                request[ACCOUNT] = _authorize(request, accounts)
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


def _authorize(request: web.Request, accounts: Accounts) -> ApiAccount:
    """The account whose bearer token the request carries."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiProblem(
            401, "unauthorized", "send the API token as `Authorization: Bearer <token>`", CHALLENGE
        )
    account = accounts.find(given.strip())
    if account is None:
        raise ApiProblem(
            401, "unauthorized", "the bearer token is not one of this engine's API tokens", CHALLENGE
        )
    return account


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
