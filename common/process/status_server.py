"""The small HTTP server every Roster process runs: `/metrics` for Prometheus and `/healthz`.

The engine mounts its admin API on the same application (`app` is exposed for that).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port: tell the caller which one
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]
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


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `:PORT` (127.0.0.1) from the command line."""
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--listen takes HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)
