"""A real embedded engine (CSV source, SQLite target) with the admin API and its console, signing people
in through OpenID Connect, on an event loop in a thread of its own (`running_engine`), so a synchronous
browser test can drive it. `Engine.call` runs a coroutine on that loop (the engine's objects belong to
it) and waits for its answer.

The target's connector sits behind a FaultInjector whose `stall_s` a test may set, so a cycle lasts
long enough to be watched.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.api.admin import Admin
from engine.api.console.settings import ConsoleSettings, OidcSettings
from engine.api.server import ApiSettings, operated
from engine.cli.embedded import Embedded
from engine.model import CycleSummary
from tests.integration.pipeline import FaultInjector, pipeline, target_rows, write_csv

T = TypeVar("T")
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0


@dataclass
class Engine:
    """The running engine: its API's `url`, its `admin`, the CSV it reads and the target it writes."""

    url: str
    token: str = field(repr=False)
    admin: Admin
    pipeline: Embedded
    csv_path: Path
    target_url: str
    injectors: list[FaultInjector]
    loop: asyncio.AbstractEventLoop

    def call(self, work: Coroutine[Any, Any, T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """`work` run on the engine's loop; its result (or its exception)."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout_s)

    def stall(self, seconds: float) -> None:
        """Every batch waits `seconds` before the target's connector applies it (0: no wait)."""
        for injector in self.injectors:
            injector.stall_s = seconds

    def write_source(self, rows: Sequence[dict[str, Any]]) -> None:
        write_csv(self.csv_path, rows)

    def run_cycle(self, job: str = "people") -> CycleSummary:
        runner = self.pipeline.runner
        return self.call(runner.run_cycle(runner.config.job(job)))

    def rows(self) -> dict[str, dict[str, Any]]:
        """The target table's rows by key, read with a connection of the test's own."""
        return self.call(target_rows(self.target_url))


@contextmanager
def running_engine(
    tmp_path: Path, raw: dict[str, Any], *, port: int, token: str, oidc: OidcSettings
) -> Iterator[Engine]:
    """The engine for `raw` (one cycle of each job run already) with the API on 127.0.0.1:`port` and
    the console signing in through `oidc`; stopped, API first, when the block ends."""
    ready = threading.Event()
    started: list[Engine] = []
    failed: list[BaseException] = []
    injectors: list[FaultInjector] = []
    settings = ApiSettings(port=port, token=token, console=ConsoleSettings(oidc=oidc))

    def stalling(connector: Any) -> FaultInjector:
        injector = FaultInjector(connector)
        injectors.append(injector)
        return injector

    async def serve(stop: asyncio.Event) -> None:
        async with pipeline(tmp_path, raw, wrap=stalling) as p:
            for job in p.runner.config.jobs:
                await p.runner.run_cycle(job)
            admin = Admin(p.runner)
            async with operated(admin, settings, retention_days=30) as server:
                assert server is not None
                target = raw["targets"][0]["url"]
                loop = asyncio.get_running_loop()
                csv_path = Path(raw["jobs"][0]["source"]["path"])
                started.append(Engine(server.url, token, admin, p, csv_path, target, injectors, loop))
                ready.set()
                await stop.wait()

    stops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def run() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            stops.append((asyncio.get_running_loop(), stop))
            await serve(stop)

        try:
            asyncio.run(main())
        except BaseException as exc:
            failed.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="roster-engine", daemon=True)
    thread.start()
    ready.wait(START_TIMEOUT_S)
    if failed or not started:
        if stops:
            stops[0][0].call_soon_threadsafe(stops[0][1].set)
        thread.join(START_TIMEOUT_S)
        raise RuntimeError(f"the engine did not start on port {port}: {failed!r}")
    try:
        yield started[0]
    finally:
        loop, stop = stops[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT_S)
        if failed:
            raise RuntimeError(f"the engine did not stop cleanly: {failed!r}")
