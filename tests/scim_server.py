"""A real SCIM 2.0 server for the tests: scim2-server's ASGI application under uvicorn, in a subprocess.

We did not write the server, so the connector is tested against someone else's reading of RFC 7644.
Run as a script, this file serves (Users with the enterprise extension, and Groups, in memory); imported,
`start_scim_server` runs that script on a free port of 127.0.0.1, waits until it answers, and
`ScimServer.stop` ends it. A server that cannot start raises `ScimServerError` with its own output,
which the fixtures turn into a failed test, never a skip.

Authentication is off unless asked for. With credentials, the server accepts any of: a static bearer
token, HTTP basic, or a bearer token that its own OAuth 2.0 endpoint (`POST /oauth/token`, client
credentials) issued and that has not expired yet. `GET /_test/stats` tells how many tokens it issued,
so a test can see that a client caches its token and refreshes it. `POST /_test/revoke` with `on` makes
it refuse every credential (401 from the server's own auth check) until `off`: revoked credentials.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

START_TIMEOUT_S = 30.0
TOKEN_PATH = "/oauth/token"
STATS_PATH = "/_test/stats"
REVOKE_PATH = "/_test/revoke"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ScimServerError(RuntimeError):
    """The SCIM server did not start or did not answer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What the server accepts. Empty means that it accepts every request."""

    bearer_tokens: tuple[str, ...] = ()
    basic: tuple[str, str] | None = None
    oauth_client: tuple[str, str] | None = None  # client id and secret for the token endpoint
    oauth_ttl_s: int = 3600

    def arguments(self) -> list[str]:
        args: list[str] = []
        for token in self.bearer_tokens:
            args += ["--bearer-token", token]
        if self.basic:
            args += ["--basic", ":".join(self.basic)]
        if self.oauth_client:
            args += ["--oauth-client", ":".join(self.oauth_client), "--oauth-ttl", str(self.oauth_ttl_s)]
        return args


@dataclass(slots=True)
class ScimServer:
    """A running server. `url` is the SCIM base URL (ending in /v2); `root` has no /v2."""

    root: str
    process: subprocess.Popen[bytes]
    log_path: Path
    credentials: Credentials = field(default_factory=Credentials)

    @property
    def url(self) -> str:
        return f"{self.root}/v2"

    @property
    def token_url(self) -> str:
        return f"{self.root}{TOKEN_PATH}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.root}{STATS_PATH}", timeout=5) as answer:
            return json.loads(answer.read())

    def revoke(self, revoked: bool) -> None:
        """Make the server refuse (or accept again) every credential it was started with."""
        body = b"on" if revoked else b"off"
        with urllib.request.urlopen(f"{self.root}{REVOKE_PATH}", data=body, timeout=5) as answer:
            assert answer.status == 200

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the server by its own pid; safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_scim_server(log_dir: Path, credentials: Credentials | None = None) -> ScimServer:
    """Start the server on a free port and wait until it answers, or raise `ScimServerError`."""
    credentials = credentials or Credentials()
    log_path = log_dir / f"scim-server-{os.getpid()}-{secrets.token_hex(4)}.log"
    command = [sys.executable, str(Path(__file__).resolve()), *credentials.arguments()]
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
    finally:
        log.close()
    server: ScimServer | None = None
    try:
        port = _read_port(process, log_path)
        server = ScimServer(f"http://127.0.0.1:{port}", process, log_path, credentials)
        _wait_until_answering(server)
        return server
    except BaseException:
        if server is not None:
            server.stop()
        else:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
        raise


def _read_port(process: subprocess.Popen[bytes], log_path: Path) -> int:
    """The script prints its port once its socket listens; anything else means it failed."""
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith("port="):
        process.wait(timeout=10)
        output = log_path.read_text(errors="replace")[-4000:]
        raise ScimServerError(
            f"scim2-server did not start (exit code {process.returncode}): {output or 'no output'}; "
            "install it with `.venv/bin/pip install scim2-server uvicorn`"
        )
    return int(line.removeprefix("port="))


def _wait_until_answering(server: ScimServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ScimServerError(f"scim2-server exited with {server.process.returncode}: {server.output()}")
        try:
            with urllib.request.urlopen(f"{server.url}/ServiceProviderConfig", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.05)
    raise ScimServerError(
        f"scim2-server did not answer within {START_TIMEOUT_S:.0f} s ({last_error}): {server.output()}"
    )


# -- The server side: runs in the subprocess ------------------------------------------------------


def build_application(
    *,
    bearer_tokens: Sequence[str] = (),
    basic: tuple[str, str] | None = None,
    oauth_client: tuple[str, str] | None = None,
    oauth_ttl_s: int = 3600,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """scim2-server's ASGI application with our credentials check, a token endpoint and stats."""
    from scim2_models import UnauthorizedException
    from scim2_server.applications.asgi import ASGIApplication
    from scim2_server.memory import AsyncInMemoryStorage
    from scim2_server.requests import ScimRequest
    from scim2_server.utils import load_default_provider

    issued: dict[str, float] = {}  # token -> expiry (monotonic)
    stats = {"tokens_issued": 0, "unauthorized": 0}
    revoked = [False]
    auth_on = bool(bearer_tokens or basic or oauth_client)
    basic_header = "Basic " + base64.b64encode(":".join(basic).encode()).decode() if basic else None

    class Application(ASGIApplication):
        def check_auth(self, request: ScimRequest) -> None:
            if not auth_on:
                return
            if revoked[0]:
                stats["unauthorized"] += 1
                raise UnauthorizedException
            header = request.header("Authorization") or ""
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer":
                if value in bearer_tokens or issued.get(value, 0.0) > time.monotonic():
                    return
            elif basic_header is not None and header == basic_header:
                return
            stats["unauthorized"] += 1
            raise UnauthorizedException

    scim = Application(AsyncInMemoryStorage(), load_default_provider())

    async def reply(send: Send, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def read_body(receive: Receive) -> bytes:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                return body

    async def token(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        form = dict(parse_qsl(body.decode()))
        headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
        client = (form.get("client_id"), form.get("client_secret"))
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(encoded).decode().partition(":")
            client = (user, password)
        if form.get("grant_type") != "client_credentials":
            await reply(send, 400, {"error": "unsupported_grant_type"})
        elif oauth_client is None or client != oauth_client:
            await reply(send, 401, {"error": "invalid_client", "error_description": "unknown client"})
        else:
            value = secrets.token_urlsafe(24)
            issued[value] = time.monotonic() + oauth_ttl_s
            stats["tokens_issued"] += 1
            await reply(send, 200, {"access_token": value, "token_type": "Bearer", "expires_in": oauth_ttl_s})

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == TOKEN_PATH and scope["method"] == "POST":
            await token(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == STATS_PATH:
            await reply(send, 200, stats)
        elif scope["type"] == "http" and scope["path"] == REVOKE_PATH and scope["method"] == "POST":
            revoked[0] = (await read_body(receive)) == b"on"
            await reply(send, 200, {"revoked": revoked[0]})
        else:
            await scim(scope, receive, send)

    return application


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="scim2-server under uvicorn, for Roster's tests")
    parser.add_argument("--bearer-token", action="append", default=[])
    parser.add_argument("--basic", help="USER:PASSWORD")
    parser.add_argument("--oauth-client", help="CLIENT_ID:SECRET for POST /oauth/token")
    parser.add_argument("--oauth-ttl", type=int, default=3600)
    args = parser.parse_args(argv)

    import uvicorn

    def pair(text: str | None) -> tuple[str, str] | None:
        if text is None:
            return None
        first, _, second = text.partition(":")
        return (first, second)

    application = build_application(
        bearer_tokens=tuple(args.bearer_token),
        basic=pair(args.basic),
        oauth_client=pair(args.oauth_client),
        oauth_ttl_s=args.oauth_ttl,
    )
    # Bind here and print the port the kernel chose: no race for a "free" port between processes.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    print(f"port={listener.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        application, lifespan="off", access_log=False, log_level="warning", timeout_keep_alive=30
    )
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
