"""Signing in to the console with OpenID Connect: the authorization code flow with PKCE (S256), a
nonce, and the state bound to the browser that started it.

The provider's endpoints come from its discovery document, its keys from its JWKS (fetched again once
when an ID token names a key not seen yet). The code is redeemed as a confidential client; the ID
token's signature, issuer, audience, expiry and nonce are checked with joserfc (the JOSE library of
the Authlib project); the roles come from one claim's values through `engine.console.oidc.roles`. A
person whose values map to no role is not signed in, and told why.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from engine.api.console.render import message, page
from engine.api.console.sessions import Person, Sessions
from engine.api.console.settings import OidcSettings
from engine.api.console.signin import local_path, signed_in
from engine.store.audit import Outcome

log = logging.getLogger("roster.engine.console.oidc")

LOGIN_COOKIE = "roster_login"
LOGIN_TIMEOUT_S = 600.0
"""How long a started sign-in may take at the provider."""
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_PENDING = 10_000
OTHER_BROWSER = "This sign-in was started in another browser (or a later one in another tab): start again."


class SignInFailed(Exception):
    """The sign-in could not be completed; the message says why, for the person at the browser."""


@dataclass(slots=True)
class _Pending:
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)
    browser: str = field(repr=False)
    next: str
    started: float


Record = Callable[[Person | None, Outcome, str | None], Awaitable[None]]
"""Adds a sign-in to the audit trail: who (None when unknown), outcome, reason."""


class OidcSignIn:
    """The console's sign-in through the configured provider."""

    def __init__(self, settings: OidcSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(settings.ca_file)) if settings.ca_file else True
        )

    # -- Pages -----------------------------------------------------------------------------------------

    async def form(self, request: web.Request) -> web.Response:
        target = local_path(request.query.get("next"))
        return page(
            "signin_oidc.html",
            person=None,
            issuer=self.settings.issuer,
            login=f"/ui/auth/login?{urlencode({'next': target})}",
            error=None,
        )

    async def login(self, request: web.Request) -> web.StreamResponse:
        """Off to the provider, with a new state, nonce and PKCE verifier kept here."""
        try:
            metadata = await self._discovery()
        except SignInFailed as exc:
            return message(503, "Sign-in is unavailable", str(exc))
        self._expire()
        state, browser = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        pending = _Pending(
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),
            browser=browser,
            next=local_path(request.query.get("next")),
            started=self._clock(),
        )
        self._pending[state] = pending
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_url,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": pending.nonce,
            "code_challenge": s256(pending.verifier),
            "code_challenge_method": "S256",
        }
        response = web.HTTPFound(f"{metadata['authorization_endpoint']}?{urlencode(query)}")
        response.set_cookie(
            LOGIN_COOKIE,
            _digest(browser),
            path="/ui/auth",
            httponly=True,
            samesite="Lax",
            secure=request.secure,
            max_age=int(LOGIN_TIMEOUT_S),
        )
        return response

    async def callback(self, request: web.Request, sessions: Sessions, record: Record) -> web.StreamResponse:
        """Back from the provider: the state checked against this browser, the code redeemed, the ID
        token checked, the roles mapped, and a fresh session started."""
        pending = self._pending.pop(request.query.get("state", ""), None)
        if pending is None or self._clock() - pending.started > LOGIN_TIMEOUT_S:
            return self._failed("This sign-in is unknown or took too long: start again.", 400)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not hmac.compare_digest(cookie.encode(), _digest(pending.browser).encode()):
            return self._failed(OTHER_BROWSER, 400)
        if "error" in request.query:
            said = request.query.get("error_description") or request.query["error"]
            return self._failed(f"The provider did not sign you in: {said}", 403)
        try:
            claims = await self._redeem(request.query.get("code", ""), pending)
        except SignInFailed as exc:
            log.warning("event=console_signin_failed reason=%s", exc)
            return self._failed(str(exc), 403)
        person = self._person(claims)
        if not person.roles:
            held = claims.get(self.settings.roles_claim)
            reason = (
                f"{person.name} signed in, but no value of the claim {self.settings.roles_claim!r} "
                f"({held if held else 'none'}) gives a role in Roster: ask an administrator to map "
                "one in engine.console.oidc.roles"
            )
            await record(person, "refused", reason)
            return self._failed(reason, 403)
        await record(person, "done", None)
        response = signed_in(request, sessions, person, pending.next)
        response.del_cookie(LOGIN_COOKIE, path="/ui/auth")
        return response

    # -- The provider --------------------------------------------------------------------------------

    async def _discovery(self) -> dict[str, Any]:
        if self._metadata is None:
            url = f"{self.settings.issuer.rstrip('/')}/.well-known/openid-configuration"
            metadata = await self._get(url)
            if metadata.get("issuer") != self.settings.issuer:
                raise SignInFailed(
                    f"the provider at {url} names itself {metadata.get('issuer')!r}, not "
                    f"{self.settings.issuer!r}: set engine.console.oidc.issuer to exactly what it says"
                )
            self._metadata = metadata
        return self._metadata

    async def _keyset(self, kid: str | None) -> KeySet:
        if self._keys is None or (kid is not None and not any(k.kid == kid for k in self._keys.keys)):
            metadata = await self._discovery()
            self._keys = KeySet.import_key_set(cast(Any, await self._get(metadata["jwks_uri"])))
        return self._keys

    async def _redeem(self, code: str, pending: _Pending) -> dict[str, Any]:
        metadata = await self._discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_url,
            "code_verifier": pending.verifier,
        }
        # aiohttp.BasicAuth is deprecated (3.14): the header made with encode_basic_auth instead.
        headers = {
            "Authorization": aiohttp.encode_basic_auth(self.settings.client_id, self.settings.client_secret)
        }
        methods = metadata.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        if "client_secret_basic" not in methods:  # the default of the spec, unless the provider says not
            form |= {"client_id": self.settings.client_id, "client_secret": self.settings.client_secret}
            headers = {}
        try:
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
                endpoint = metadata["token_endpoint"]
                async with http.post(endpoint, data=form, headers=headers, ssl=self._ssl) as answer:
                    tokens = await answer.json(content_type=None)
                    status = answer.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SignInFailed(
                f"the provider's token endpoint did not answer: {type(exc).__name__}"
            ) from None
        if status != 200 or not isinstance(tokens, dict):
            said = _said(tokens)
            raise SignInFailed(
                f"the provider refused the sign-in's code ({status}{': ' + said if said else ''})"
            )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the provider sent no ID token: is openid among engine.console.oidc.scopes?")
        try:
            kid = extract_compact(id_token.encode()).headers().get("kid")
            token = jwt.decode(id_token, await self._keyset(kid), algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": pending.nonce},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SignInFailed(f"the ID token did not check out: {exc}") from None
        return dict(token.claims)

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
                async with http.get(url, ssl=self._ssl) as answer:
                    answer.raise_for_status()
                    found = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SignInFailed(f"the provider did not answer at {url}: {type(exc).__name__}") from None
        if not isinstance(found, dict):
            raise SignInFailed(f"the provider's answer at {url} is not a JSON object")
        return found

    # -- Helpers -------------------------------------------------------------------------------------

    def _person(self, claims: dict[str, Any]) -> Person:
        name = claims.get(self.settings.name_claim) or claims.get("preferred_username") or claims["sub"]
        return Person(
            name=str(name),
            kind="oidc_user",
            roles=frozenset(self.settings.roles_of(claims)),
            issuer=self.settings.issuer,
            subject=str(claims["sub"]),
        )

    def _failed(self, text: str, status: int) -> web.Response:
        response = message(status, "Not signed in", text, back="/ui/signin")
        response.del_cookie(LOGIN_COOKIE, path="/ui/auth")
        return response

    def _expire(self) -> None:
        now = self._clock()
        for state in [s for s, p in self._pending.items() if now - p.started > LOGIN_TIMEOUT_S]:
            del self._pending[state]
        while len(self._pending) >= MAX_PENDING:  # a flood of unfinished sign-ins: drop the oldest
            del self._pending[next(iter(self._pending))]


def s256(verifier: str) -> str:
    """The PKCE challenge of `verifier` (RFC 7636, 4.2): BASE64URL(SHA256(verifier)), unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _said(answer: Any) -> str:
    """What an error answer of the provider says, if it says anything."""
    if isinstance(answer, dict):
        return str(answer.get("error_description") or answer.get("error") or "")
    return ""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
