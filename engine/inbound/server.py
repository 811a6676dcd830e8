"""The inbound SCIM service's own listener, beside a working engine (never on the admin API's port).

Embedded (`roster run --serve`), `served` runs it with the engine's work. `roster engine` listens
from its start, standby or not, behind the admin API's gate: a standby answers 503 with Retry-After
(so a client or its load balancer moves on) until it takes over, and an engine that stops closes the
gate before its work ends, so no push starts work that would be cut off. TLS is served from a certificate
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
from engine.api.app import ApiGate
from engine.config import JobConfig
from engine.inbound.http import inbound_app
from engine.inbound.service import InboundService
from engine.inbound.settings import InboundSettings
from engine.pipeline.cycles import CycleRunner

log = logging.getLogger("roster.engine.inbound.server")


class InboundServer:
    """The inbound application on `settings.host:settings.port`; port 0 picks a free one."""

    def __init__(
        self,
        settings: InboundSettings,
        runner: CycleRunner,
        jobs: Sequence[JobConfig],
        *,
        gate: ApiGate | None = None,
    ) -> None:
        self.settings = settings
        self.service = InboundService(settings, runner, jobs)
        self.gate = gate
        """Closed (a standby engine, one stopping): every request is answered 503 with Retry-After, so
        the client or its load balancer tries again or moves on; nothing is stored."""
        self.port = settings.port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.cert_file else "http"
        return f"{scheme}://{self.settings.host}:{self.port}{self.settings.base_path}"

    async def start(self) -> None:
        self._runner, self.port = await serve(
            web.AppRunner(
                inbound_app(self.service, gate=self._closed), access_log=None, shutdown_timeout=5.0
            ),
            self.settings.host,
            self.settings.port,
            what="the inbound SCIM service",
            setting="inbound.listen",
            ssl_context=self._tls(),
        )
        log.info("event=inbound_listening url=%s tokens=%d", self.url, len(self.settings.tokens))

    def _closed(self) -> str | None:
        gate = self.gate
        return None if gate is None or gate.error is None else gate.reason()

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
