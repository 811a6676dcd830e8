"""Serving the admin API beside a running engine, with its token, and the provisioning log's pruner.

Both `roster engine` and `roster run --serve` run an engine that people steer, so both go through
`operated()`. The API listens on 127.0.0.1:8477 unless told otherwise. Its token comes from
`ROSTER_API_TOKEN` or a token file; with neither, one is generated once into `api-token` beside the
state (mode 0600) and kept for later runs, and only the file's path is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiohttp import web

from common.errors import ConfigError
from common.process.exposure import MIN_TOKEN_CHARS, WEAK_TOKENS, is_loopback
from common.process.status_server import HealthCheck, parse_listen, serve
from engine.api.accounts import ApiAccount
from engine.api.admin import Admin
from engine.api.app import ApiGate, api_app
from engine.api.console.settings import ConsoleSettings
from engine.store.history import prune_forever

log = logging.getLogger("roster.engine.apiserver")

TOKEN_FILE = "api-token"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    """Where the API listens and the token it wants (kept out of the repr, so out of any log)."""

    host: str = "127.0.0.1"
    port: int = 8477
    token: str = field(repr=False)
    token_file: Path | None = None
    """Where the token was read from or written to; None when it came from the environment."""
    accounts: tuple[ApiAccount, ...] = ()
    """The named service accounts besides the token's own (`admin`), from `engine.api_accounts`."""
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    """The console's sign-in and sessions, from `engine.console`."""


def api_settings(
    listen: str,
    *,
    token: str | None,
    token_file: Path | None,
    state_location: str,
    base_dir: Path,
    accounts: tuple[ApiAccount, ...] = (),
    console: ConsoleSettings | None = None,
) -> ApiSettings:
    """Read at the entry point: the token from `token` (ROSTER_API_TOKEN), else `token_file`, else
    the generated file beside the state; `accounts` besides it."""
    return replace(
        _token_settings(
            listen, token=token, token_file=token_file, state_location=state_location, base_dir=base_dir
        ),
        accounts=accounts,
        console=console or ConsoleSettings(),
    )


def _token_settings(
    listen: str, *, token: str | None, token_file: Path | None, state_location: str, base_dir: Path
) -> ApiSettings:
    try:
        host, port = parse_listen(listen)
    except ValueError:
        raise ConfigError(
            "--api-listen", f"expected HOST:PORT, got {listen!r}", "such as 127.0.0.1:8477"
        ) from None
    if token:
        settings = ApiSettings(host=host, port=port, token=token.strip())
    elif token_file is not None:
        settings = ApiSettings(host=host, port=port, token=read_token(token_file), token_file=token_file)
    elif is_loopback(host):
        path = default_token_file(state_location, base_dir)
        return ApiSettings(host=host, port=port, token=_kept_or_new(path), token_file=path)
    else:
        raise _exposed(host, port, "has no token of its own")
    if not is_loopback(host) and (
        settings.token.lower() in WEAK_TOKENS or len(settings.token) < MIN_TOKEN_CHARS
    ):
        raise _exposed(
            host, port, f"has a placeholder token or one shorter than {MIN_TOKEN_CHARS} characters"
        )
    return settings


def _exposed(host: str, port: int, problem: str) -> ConfigError:
    return ConfigError(
        "ROSTER_API_TOKEN / --api-token-file",
        f"the admin API on {host}:{port} is reachable from other machines and {problem}",
        "set a long random token (openssl rand -hex 32), or listen on 127.0.0.1 with --api-listen",
    )


def default_token_file(state_location: str, base_dir: Path) -> Path:
    """`api-token` beside a SQLite state file, else in `.roster/` beside the jobs file."""
    prefix = "sqlite+aiosqlite:///"
    if state_location.startswith(prefix):
        return Path(state_location.removeprefix(prefix)).absolute().parent / TOKEN_FILE
    return base_dir.absolute() / ".roster" / TOKEN_FILE


def read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError("--api-token-file", f"cannot read {path}: {exc.strerror}") from None
    if not token:
        raise ConfigError("--api-token-file", f"{path} is empty", "put the token on its first line")
    return token


def _kept_or_new(path: Path) -> str:
    """The token in `path`, or a new one written there readable by its owner only."""
    if path.exists():
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            path.chmod(0o600)
            log.warning("event=api_token_mode_fixed path=%s mode=0600", path)
        return read_token(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    log.info("event=api_token_written path=%s", path)
    return token


class ApiServer:
    """The admin API application on `settings.host:settings.port`; port 0 picks a free one. While
    `gate` is closed, every route but the health check answers 503 with the gate's reason."""

    def __init__(
        self,
        admin: Admin,
        settings: ApiSettings,
        *,
        health: HealthCheck | None = None,
        gate: ApiGate | None = None,
    ) -> None:
        self.settings = settings
        self.port = settings.port
        self.app = api_app(
            admin,
            settings.token,
            accounts=settings.accounts,
            console=settings.console,
            health=health,
            gate=gate,
        )
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        self._runner, self.port = await serve(
            web.AppRunner(self.app, access_log=None, shutdown_timeout=5.0),
            self.settings.host,
            self.settings.port,
            what="the admin API",
            setting="--api-listen / ROSTER_API_LISTEN",
        )
        where = self.settings.token_file or "env:ROSTER_API_TOKEN"
        names = ",".join(a.name for a in self.settings.accounts) or "none"
        log.info("event=api_listening url=%s token_from=%s accounts=%s", self.url, where, names)

    async def aclose(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


@asynccontextmanager
async def operated(
    admin: Admin,
    settings: ApiSettings | None,
    *,
    retention_days: float,
    on_listening: Callable[[ApiServer], None] | None = None,
) -> AsyncIterator[ApiServer | None]:
    """The API (when `settings` are given) and the log pruner around a working engine. On the way
    out the API stops first, so no request starts new work, then the cycles it triggered are
    cancelled, then the pruner."""
    pruner = asyncio.create_task(prune_forever(admin.runner.state, retention_days), name="roster-pruner")
    try:
        if settings is None:
            yield None
            return
        async with ApiServer(admin, settings) as server:
            if on_listening is not None:
                on_listening(server)
            yield server
    finally:
        await admin.aclose()
        pruner.cancel()
        await asyncio.gather(pruner, return_exceptions=True)
