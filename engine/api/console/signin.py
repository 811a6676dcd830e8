"""How people sign in to the console. Without OpenID Connect configured, only on this machine: a
client on a loopback address that presents an API token signs in as that token's service account."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from common.process.exposure import is_loopback
from engine.api.console.render import page
from engine.api.console.sessions import COOKIE, Person, Sessions

Authenticate = Callable[[str], Person | None]
"""The service account a presented API token belongs to, or None."""

NOT_LOOPBACK = (
    "Without single sign-on, the console answers only on this machine (a loopback address). Configure "
    "OpenID Connect for the console to sign in from elsewhere."
)


@dataclass(frozen=True, slots=True)
class TokenSignIn:
    authenticate: Authenticate

    def allowed(self, request: web.Request) -> bool:
        return request.remote is not None and is_loopback(request.remote)

    async def form(self, request: web.Request) -> web.Response:
        allowed = self.allowed(request)
        return page(
            "signin.html",
            status=200 if allowed else 403,
            person=None,
            allowed=allowed,
            refusal=NOT_LOOPBACK,
            next=local_path(request.query.get("next")),
            error=None,
        )

    async def submit(self, request: web.Request, sessions: Sessions) -> web.Response:
        if not self.allowed(request):
            return page(
                "signin.html", status=403, person=None, allowed=False, refusal=NOT_LOOPBACK, error=None
            )
        form = await request.post()
        token, target = str(form.get("token", "")).strip(), local_path(str(form.get("next", "")))
        person = self.authenticate(token) if token else None
        if person is None:
            return page(
                "signin.html",
                status=401,
                person=None,
                allowed=True,
                next=target,
                error="That is not an API token of this engine.",
            )
        return signed_in(request, sessions, person, target)


def signed_in(request: web.Request, sessions: Sessions, person: Person, target: str) -> web.Response:
    """A fresh session for `person` (a new id whatever cookie came in) and the way to `target`."""
    _session, cookie = sessions.start(person)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE, cookie, path="/ui", httponly=True, samesite="Lax", secure=request.secure, max_age=None
    )
    return response


def local_path(value: str | None) -> str:
    """`value` when it is a path of the console, else the console's home: a sign-in never sends
    anyone to another site."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


def signin_url(request: web.Request) -> str:
    return f"/ui/signin?next={quote(request.path_qs, safe='')}"
