"""The console as an aiohttp sub-application mounted at `/ui`: static assets and sign-in are open,
every other page wants a live session, and every state-changing request a same-origin `Origin` and the
session's CSRF token. Each answer carries headers that keep it out of frames, caches and other origins.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.api.admin import Admin, NotNow, UnknownJob
from engine.api.console.oidc import OidcSignIn, Record
from engine.api.console.pages import CONTROLS, Pages
from engine.api.console.render import message, static_file
from engine.api.console.sessions import COOKIE, SESSION, Person, Sessions
from engine.api.console.signin import TokenSignIn, signin_url
from engine.pipeline.ondemand import UnknownObject
from engine.store.audit import Entry, Outcome

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STALE_FORM = "This form is stale or was not made by the console: reload the page and try again."
OPEN = ("/ui/static/", "/ui/signin", "/ui/auth/")


def console_app(
    admin: Admin, sign_in: TokenSignIn | OidcSignIn, *, sessions: Sessions | None = None
) -> web.Application:
    sessions = sessions if sessions is not None else Sessions()
    pages = Pages(admin)
    app = web.Application(middlewares=[_headers, _session_and_csrf(sessions)])

    async def signout(request: web.Request) -> web.Response:
        sessions.end(request[SESSION])
        response = web.HTTPSeeOther("/ui/signin")
        response.del_cookie(COOKIE, path="/ui")
        raise response

    app.router.add_get("/signin", sign_in.form)
    if isinstance(sign_in, OidcSignIn):

        async def callback(request: web.Request) -> web.StreamResponse:
            return await sign_in.callback(request, sessions, _recorder(admin, request))

        app.router.add_get("/auth/login", sign_in.login)
        app.router.add_get("/auth/callback", callback)
    else:

        async def submit(request: web.Request) -> web.Response:
            return await sign_in.submit(request, sessions)

        app.router.add_post("/signin", submit)
    app.router.add_post("/signout", signout)
    actions = "{action:" + "|".join(CONTROLS) + "}"
    app.router.add_get("/", pages.overview)
    app.router.add_get("/approvals", pages.approvals)
    app.router.add_get("/jobs/{job}", pages.job)
    app.router.add_get("/jobs/{job}/running", pages.running)
    app.router.add_get("/jobs/{job}/cycles/{cycle_id}", pages.cycle)
    app.router.add_get("/jobs/{job}/approval", pages.approval)
    app.router.add_post("/jobs/{job}/decide", pages.decide)
    app.router.add_get(f"/jobs/{{job}}/{actions}", pages.confirm)
    app.router.add_post(f"/jobs/{{job}}/{actions}", pages.act)
    app.router.add_get("/logs", pages.logs)
    app.router.add_get("/logs/export", pages.export)
    app.router.add_get("/audit", pages.audit)
    app.router.add_get("/people", pages.find)
    app.router.add_get("/people/{source_id:.+}", pages.person)
    app.router.add_get("/jobs/{job}/provision/{source_id:.+}", pages.preview)
    app.router.add_post("/jobs/{job}/provision/{source_id:.+}", pages.provision)
    app.router.add_get("/static/{name}", _static)
    return app


def _recorder(admin: Admin, request: web.Request) -> Record:
    """Records a sign-in through the provider (done, or refused for want of a role)."""

    async def record(person: Person | None, outcome: Outcome, reason: str | None) -> None:
        if person is not None:
            address = request.remote or "unknown"
            entry = Entry(
                actor=person.actor(), address=address, action="sign_in", outcome=outcome, reason=reason
            )
            await admin.record(entry)

    return record


async def _static(request: web.Request) -> web.Response:
    body = static_file(request.match_info["name"])
    if body is None:
        raise web.HTTPNotFound()
    kind = "text/css" if request.match_info["name"].endswith(".css") else "text/javascript"
    response = web.Response(body=body, content_type=kind, charset="utf-8")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"  # named by its hash
    return response


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.path == "/ui":
            raise web.HTTPPermanentRedirect("/ui/")
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    except UnknownJob as exc:
        response = message(404, "No such job", str(exc))
    except UnknownObject as exc:
        response = message(404, "Not found", str(exc))
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _session_and_csrf(sessions: Sessions) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD") and not _same_origin(request):
            return _refusal(403, "This request did not come from the console's own pages.")
        if request.path.startswith(OPEN):
            return await handler(request)
        session = next(filter(None, map(sessions.find, _cookies(request))), None)
        if session is None:
            if request.method in ("GET", "HEAD") and not request.path.endswith("/running"):
                raise web.HTTPSeeOther(signin_url(request))
            return _refusal(401, "Your session has ended: sign in again.")
        if request.method not in ("GET", "HEAD"):
            form = await request.post()
            if not hmac.compare_digest(str(form.get("csrf", "")).encode(), session.csrf.encode()):
                return _refusal(
                    403, "This form is stale or was not made by the console: reload and try again."
                )
        request[SESSION] = session
        try:
            return await handler(request)
        except NotNow as exc:
            return _refusal(409, str(exc))

    return guard


def _cookies(request: web.Request) -> list[str]:
    """Every value sent under the session cookie's name: another cookie of that name planted for a
    wider path (sent after ours) must not hide the real one."""
    header = request.headers.get("Cookie", "")
    pairs = (part.strip().partition("=") for part in header.split(";"))
    return [value.strip('"') for name, _, value in pairs if name == COOKIE]


def _same_origin(request: web.Request) -> bool:
    """Browsers send `Origin` on every POST; one that names another site is refused. (Without it, the
    CSRF token still has to match.)"""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _refusal(status: int, text: str) -> web.Response:
    return message(status, "Refused", text)
