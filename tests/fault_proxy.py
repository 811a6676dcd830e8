"""An HTTP proxy that stands in front of a real server and misbehaves on purpose, reproducibly.

Every request is drawn against the rates in `Faults` with a seeded `random.Random`, so a test fails the
same way each run. Faults, at most one per request, in this order of drawing:

* `status_429` / `status_503`: answer that status without forwarding (with `Retry-After` if set);
* `drop`: close the connection without forwarding;
* `drop_after_write`: forward, let the server act, then close the connection instead of answering:
  the server wrote, the client saw an error (the case that makes naive retries create duplicates);
* `slow`: wait `slow_s` before forwarding.

`force()` queues faults for the next requests whatever the rates, for tests that need one exact event.
The proxy records the arrival time of every request, so a test can check the client's request rate,
and its method, path and query, so a test can check what the client asked.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web

Fault = Literal["429", "503", "drop", "drop_after_write", "slow"]
_HOP_BY_HOP = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade", "trailer"}
)


@dataclass(slots=True)
class Faults:
    """Rates (0 to 1) of each fault; settable between and during a test."""

    status_429: float = 0.0
    status_503: float = 0.0
    drop: float = 0.0
    drop_after_write: float = 0.0
    slow: float = 0.0
    slow_s: float = 0.5
    retry_after: str | None = "1"  # sent with each 429
    retry_after_503: str | None = None  # sent with each 503


@dataclass(frozen=True, slots=True)
class Hit:
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    fault: Fault | None
    status: int | None  # what the client got, None when its connection was dropped
    query: str = ""  # the query string as sent, still percent-encoded


@dataclass(slots=True)
class FaultProxy:
    """Forwards to `upstream` (scheme://host:port) from `url`, injecting `faults`."""

    upstream: str
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    hits: list[Hit] = field(default_factory=list)
    forced: deque[Fault | None] = field(default_factory=deque)
    url: str = ""
    _random: random.Random = field(init=False)
    _runner: web.AppRunner | None = None
    _client: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    async def start(self) -> FaultProxy:
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60), connector=aiohttp.TCPConnector(limit=64)
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def aclose(self) -> None:
        """Stop listening, then close the upstream pool; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def force(self, *faults: Fault | None) -> None:
        """The next requests get these faults (None: none), one each, before the rates apply again."""
        self.forced.extend(faults)

    def max_per_window(self, window_s: float = 1.0) -> int:
        """The most requests that arrived within any window of `window_s` seconds."""
        times = sorted(hit.at for hit in self.hits)
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def count(self, fault: Fault | None) -> int:
        return sum(1 for hit in self.hits if hit.fault == fault)

    def _draw(self) -> Fault | None:
        roll = self._random.random()  # drawn even when forced, so forcing does not shift the sequence
        if self.forced:
            return self.forced.popleft()
        f = self.faults
        for fault, rate in (
            ("429", f.status_429),
            ("503", f.status_503),
            ("drop", f.drop),
            ("drop_after_write", f.drop_after_write),
            ("slow", f.slow),
        ):
            if roll < rate:
                return fault  # type: ignore[return-value]
            roll -= rate
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        fault = self._draw()
        body = await request.read()

        def record(status: int | None) -> None:
            self.hits.append(Hit(arrived, request.method, request.path, fault, status, request.query_string))

        if fault in ("429", "503"):
            status = int(fault)
            retry_after = self.faults.retry_after if status == 429 else self.faults.retry_after_503
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            record(status)
            return web.json_response(
                {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": fault},
                status=status,
                headers=headers,
            )
        if fault == "drop":
            record(None)
            return self._drop(request)
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_s)
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._client.request(
            request.method, f"{self.upstream}{request.path_qs}", headers=headers, data=body or None
        ) as answer:
            payload = await answer.read()
            status = answer.status
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        if fault == "drop_after_write":
            record(None)
            return self._drop(request)
        record(status)
        return web.Response(status=status, body=payload, headers=kept)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        # The response below is never written: the client sees its connection reset instead.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=599)
