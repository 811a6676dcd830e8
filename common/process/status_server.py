"""The small HTTP server every Roster process runs: `/metrics` for Prometheus and `/healthz`.

The engine mounts its admin API on the same application (`app` is exposed for that).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from common.errors import ConfigError

log = logging.getLogger("roster.http")

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]
"""Returns (healthy, details): 200 with the details when healthy, 503 otherwise."""


class StatusServer:
    """Serves `/metrics` from `registry` and `/healthz` from `health` on `host:port`."""

    def __init__(self, registry: CollectorRegistry, health: HealthCheck, *, host: str, port: int) -> None:
        self.registry = registry
        self.health = health
        self.host = host
        self.port = port
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/healthz", self._healthz)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner, self.port = await serve(
            web.AppRunner(self.app, access_log=None),
            self.host,
            self.port,
            what="/metrics",
            setting="--listen / ROSTER_LISTEN",
        )
        log.info("event=http_listening host=%s port=%d", self.host, self.port)

    async def aclose(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        healthy, details = self.health()
        return web.json_response({"healthy": healthy, **details}, status=200 if healthy else 503)


async def serve(
    runner: web.AppRunner,
    host: str,
    port: int,
    *,
    what: str,
    setting: str,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, int]:
    """Set `runner` up and listen on `host:port` (0: a free port), over TLS with `ssl_context`;
    returns the runner and the port. An address that is taken or not this machine's is a
    `ConfigError` naming `setting`."""
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        problem = f"cannot serve {what} on {host}:{port}: {reason.lower()}"
        raise ConfigError(setting, problem, "pick a free port, or stop what listens there") from None
    return runner, runner.addresses[0][1]


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (127.0.0.1) from the command line."""
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--listen takes HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)
