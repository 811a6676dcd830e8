"""Console sessions: kept in the engine's memory, named by a random id in a signed, HttpOnly,
SameSite cookie.

Kept server-side so that signing out ends a session at once and an idle one expires whatever its cookie
says. An id is made only when someone signs in (never taken from a request), so an id planted before
sign-in can never become a signed-in session (session fixation). Each session holds its own CSRF token,
which every state-changing request must carry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from engine.api.accounts import ROLES
from engine.store.audit import Actor, ActorKind

COOKIE = "roster_console"
IDLE_TIMEOUT_S = 15 * 60
MAX_AGE_S = 12 * 3600
"""A session ends after this long even when used all along: a stolen cookie does not live forever."""

VIEWER, OPERATOR, APPROVER = ROLES


@dataclass(frozen=True, slots=True)
class Person:
    """Who a session belongs to: a service account (an API token) or a person signed in through
    OpenID Connect (`issuer` and `subject` are then the ID token's `iss` and `sub`)."""

    name: str
    kind: ActorKind
    roles: frozenset[str]
    issuer: str | None = None
    subject: str | None = None

    def may(self, role: str) -> bool:
        return role in self.roles

    def actor(self) -> Actor:
        """As the audit trail names who acted."""
        return Actor(kind=self.kind, name=self.name, issuer=self.issuer, subject=self.subject)


@dataclass(slots=True)
class Session:
    id: str = field(repr=False)
    person: Person
    csrf: str = field(repr=False)
    created: float
    seen: float
    notices: list[str] = field(default_factory=list)
    """What the next page shows once: the outcome of the action just taken (post, redirect, get)."""


SESSION = web.RequestKey("session", Session)
"""The request's live session, set by the console's guard before any page runs."""


class Sessions:
    """The signed-in sessions of this engine's console."""

    def __init__(
        self,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = secrets.token_bytes(32)
        self._by_id: dict[str, Session] = {}
        self.idle_timeout_s, self.max_age_s, self._clock = idle_timeout_s, max_age_s, clock

    def start(self, person: Person) -> tuple[Session, str]:
        """A new session for `person` and the cookie value that names it."""
        now = self._clock()
        self._expire(now)
        session = Session(secrets.token_urlsafe(32), person, secrets.token_urlsafe(32), now, now)
        self._by_id[session.id] = session
        return session, f"{session.id}.{self._sign(session.id)}"

    def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, its idle clock restarted; None for a missing, forged,
        expired or ended one."""
        if not cookie:
            return None
        sid, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(sid).encode()):
            return None
        session = self._by_id.get(sid)
        now = self._clock()
        if session is None or self._expired(session, now):
            self._by_id.pop(sid, None)
            return None
        session.seen = now
        return session

    def end(self, session: Session) -> None:
        self._by_id.pop(session.id, None)

    def __len__(self) -> int:
        return len(self._by_id)

    def _sign(self, sid: str) -> str:
        return hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.seen > self.idle_timeout_s or now - session.created > self.max_age_s

    def _expire(self, now: float) -> None:
        for sid in [sid for sid, s in self._by_id.items() if self._expired(s, now)]:
            del self._by_id[sid]
