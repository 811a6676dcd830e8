"""The inbound SCIM service's own listener, beside a working engine (never on the admin API's port).

It runs while the engine is the active one: `served` starts it with the engine's work and stops it
first on the way out, so no push starts work that would be cut off. TLS is served from a certificate
file when `inbound.tls` gives one; otherwise put a TLS-terminating proxy in front of it.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from aiohttp import web

from common.errors import ConfigError
from common.process.status_server import serve
from engine.config import JobConfig
from engine.inbound.http import inbound_app
from engine.inbound.service import InboundService
from engine.inbound.settings import InboundSettings
from engine.pipeline.cycles import CycleRunner

log = logging.getLogger("roster.engine.inbound.server")


class InboundServer:
    """The inbound application on `settings.host:settings.port`; port 0 picks a free one."""

    def __init__(self, settings: InboundSettings, runner: CycleRunner, jobs: Sequence[JobConfig]) -> None:
        self.settings = settings
        self.service = InboundService(settings, runner, jobs)
        self.port = settings.port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.cert_file else "http"
        return f"{scheme}://{self.settings.host}:{self.port}{self.settings.base_path}"

    async def start(self) -> None:
        self._runner, self.port = await serve(
            web.AppRunner(inbound_app(self.service), access_log=None, shutdown_timeout=5.0),
            self.settings.host,
            self.settings.port,
            what="the inbound SCIM service",
            setting="inbound.listen",
            ssl_context=self._tls(),
        )
        log.info("event=inbound_listening url=%s tokens=%d", self.url, len(self.settings.tokens))

    async def aclose(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.service.aclose()

    def _tls(self) -> ssl.SSLContext | None:
        if self.settings.cert_file is None or self.settings.key_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.settings.cert_file, self.settings.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("inbound.tls", f"cannot load the certificate or its key: {exc}") from None
        return context


@asynccontextmanager
async def served(runner: CycleRunner, jobs: Sequence[JobConfig]) -> AsyncIterator[InboundServer | None]:
    """The inbound service around a working engine, when its jobs file has an `inbound:` section."""
    settings = runner.config.inbound
    if settings is None:
        yield None
        return
    server = InboundServer(settings, runner, jobs)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()
