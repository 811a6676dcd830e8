"""A tiny OpenID Connect relying party (an aiohttp app) standing in for the console until it exists: the
authorization code flow with PKCE (S256) and a nonce, built with Authlib's RFC 6749 and RFC 7636 pieces,
the code exchanged as a confidential client, and the ID token's signature and claims checked against the
provider's discovery document and JWKS with joserfc (Authlib's JOSE library).

`GET /` signs in (a redirect to the provider) or shows the signed-in user's validated claims as JSON in
`<pre id="claims">`; `GET /auth/callback` finishes the flow. It serves on 127.0.0.1 in a thread of its own
(`serving`), so a synchronous browser test can drive it.
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

SCOPE = "openid roster"
COOKIE = "rp_session"


@dataclass(slots=True)
class RelyingParty:
    """Settings and in-memory state: pending sign-ins by `state`, signed-in claims by session id."""

    discovery_url: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    pending: dict[str, dict[str, str]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    async def metadata(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(self.discovery_url) as answer:
            answer.raise_for_status()
            document: dict[str, Any] = await answer.json()
            return document


RP = web.AppKey("rp", RelyingParty)


def make_app(rp: RelyingParty) -> web.Application:
    app = web.Application()
    app[RP] = rp
    app.router.add_get("/", _home)
    app.router.add_get("/auth/callback", _callback)
    return app


async def _home(request: web.Request) -> web.StreamResponse:
    rp = request.app[RP]
    claims = rp.sessions.get(request.cookies.get(COOKIE, ""))
    if claims is not None:
        body = f'<h1>Signed in</h1><pre id="claims">{html.escape(json.dumps(claims, sort_keys=True))}</pre>'
        return web.Response(text=body, content_type="text/html")
    async with aiohttp.ClientSession() as http:
        metadata = await rp.metadata(http)
    state, nonce, verifier = generate_token(24), generate_token(24), generate_token(64)
    rp.pending[state] = {"nonce": nonce, "verifier": verifier}
    uri = prepare_grant_uri(
        metadata["authorization_endpoint"],
        rp.client_id,
        "code",
        redirect_uri=rp.redirect_uri,
        scope=SCOPE,
        state=state,
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    raise web.HTTPFound(uri)


async def _callback(request: web.Request) -> web.StreamResponse:
    rp = request.app[RP]
    pending = rp.pending.pop(request.query.get("state", ""), None)
    if pending is None or "code" not in request.query:
        reason = request.query.get("error", "no pending sign-in for this state")
        rp.failures.append(reason)
        return web.Response(status=403, text=f"sign-in failed: {reason}")
    try:
        claims = await _redeem(rp, request.query["code"], pending)
    except (JoseError, ValueError, aiohttp.ClientError) as exc:
        rp.failures.append(f"{type(exc).__name__}: {exc}")
        return web.Response(status=403, text=f"sign-in failed: {exc}")
    session = secrets.token_urlsafe(16)
    rp.sessions[session] = claims
    answer = web.HTTPFound("/")
    answer.set_cookie(COOKIE, session, httponly=True, samesite="Lax")
    raise answer


async def _redeem(rp: RelyingParty, code: str, pending: dict[str, str]) -> dict[str, Any]:
    """The code exchanged for tokens; the ID token's claims once signature, iss, aud, exp and nonce hold."""
    async with aiohttp.ClientSession() as http:
        metadata = await rp.metadata(http)
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=rp.redirect_uri, code_verifier=pending["verifier"]
        )
        async with http.post(
            metadata["token_endpoint"],
            data=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": aiohttp.encode_basic_auth(rp.client_id, rp.client_secret),
            },
        ) as answer:
            tokens = await answer.json(content_type=None)
            if answer.status != 200:
                raise ValueError(f"token endpoint answered {answer.status}: {tokens}")
        async with http.get(metadata["jwks_uri"]) as answer:
            answer.raise_for_status()
            keys = KeySet.import_key_set(await answer.json(content_type=None))
    token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": rp.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": pending["nonce"]},
    ).validate(token.claims)
    return dict(token.claims)


@contextmanager
def serving(app: web.Application, port: int) -> Iterator[str]:
    """`app` served on 127.0.0.1:`port` by an event loop in a thread of its own (the thread that drives
    Playwright's sync API may run no loop of its own); yields its base URL."""
    ready, failed = threading.Event(), []
    stopping: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            stop = asyncio.Event()
            stopping.append((asyncio.get_running_loop(), stop))
            ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="relying-party", daemon=True)
    thread.start()
    ready.wait(10)
    if failed or not stopping:
        raise RuntimeError(f"the relying party did not start on port {port}: {failed}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop, stop = stopping[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
