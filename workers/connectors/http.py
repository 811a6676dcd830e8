"""What every connector to an HTTP service shares (SCIM, REST): `HttpTarget`, the transport behind the
target's gate and what an answer amounts to in the connector's error vocabulary, and `HttpConnector`,
the lifecycle of a connector around one (open, apply in lanes, close).

**Errors.** 429, and 503 with `Retry-After`, pause the whole target for that long (every call waits,
at most `max_pause_s`); they, other 5xx, 408, 425, timeouts and network errors are `TransientError`.
Other 4xx are `PermanentError` with the service's own words (the caller's `refusal`), the HTTP status as
`code`. A token endpoint's `AuthError` keeps its verdict. Credentials are redacted from every message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

from common.errors import AuthError, ConnectorError, PermanentError, TransientError
from common.peers.http_settings import HttpSettings
from common.peers.http_transport import JSON, HttpAnswer, HttpTransport, Unanswered
from queues.contracts import Operation
from workers.connectors.base import AsyncContextConnector, Outcome
from workers.limits import Gate

log = logging.getLogger("roster.connectors.http")

_DEFAULT_429_PAUSE_S: Final = 1.0
_T = TypeVar("_T")
_O = TypeVar("_O")

Refusal = Callable[[int, Any], str]
"""The words of a refusal: `HTTP 400: <the service's message>` from the status and the JSON body."""


class HttpTarget:
    """One target's transport, opened and closed by its connector, and its answers judged.

    The gate holds `max_concurrency` requests in flight and `rate_per_s`; the pool has one connection
    more, for the OAuth token endpoint, which the gate does not count.
    """

    def __init__(
        self,
        name: str,
        http: HttpSettings,
        *,
        max_concurrency: int,
        rate_per_s: float | None,
        refusal: Refusal,
        media_type: str = JSON,
    ) -> None:
        self.name = name
        self.http = http
        self.gate = Gate(max_concurrency=max_concurrency, rate_per_s=rate_per_s)
        self.transport = HttpTransport(
            http, max_connections=max_concurrency + 1, slot=self.gate.slot, media_type=media_type
        )
        self._refusal = refusal

    async def call(self, method: str, path: str, *, query: str = "", body: Any = None) -> HttpAnswer:
        """One request through the gate, its failures as connector errors; any status is answered."""
        if not self.transport.is_open:
            raise TransientError(f"the connection to target {self.name!r} is closed")
        try:
            answer = await self.transport.send(method, path, query=query, body=body)
        except AuthError as exc:  # the token endpoint's own errors, already free of secrets
            raise (TransientError if exc.transient else PermanentError)(exc.message, code=exc.code) from None
        except Unanswered as exc:
            error = TransientError if exc.transient else PermanentError
            raise error(self.redact(f"{method} {path}: {exc.detail}"), code=exc.code) from None
        status = answer.status
        if status == 429 or (status == 503 and answer.retry_after is not None):
            self._throttled(status, answer.retry_after_s)
        if answer.malformed and 200 <= status < 300:
            raise PermanentError(
                f"{answer.what}: HTTP {status} with a body that is not JSON", code=str(status)
            )
        return answer

    def error(self, answer: HttpAnswer) -> ConnectorError:
        """The error an unwanted answer amounts to, with the service's own words."""
        status = answer.status
        text = f"{answer.what}: {self._refusal(status, answer.body)}"
        transient = status >= 500 or status in (408, 425, 429)
        return (TransientError if transient else PermanentError)(self.redact(text), code=str(status))

    def redact(self, text: str) -> str:
        return self.transport.redact(text)

    def redacted(self, error: ConnectorError) -> ConnectorError:
        """`error`, or a copy of it without the credentials its message held."""
        text = self.redact(error.message)
        return error if text == error.message else type(error)(text, code=error.code)

    def crashed(self, exc: Exception, op_id: str) -> TransientError:
        """An unexpected exception while applying an operation, logged and made transient."""
        log.exception("event=http_op_crashed target=%s op=%s", self.name, op_id)
        return TransientError(self.redact(f"unexpected {type(exc).__name__}: {exc}"))

    def _throttled(self, status: int, seconds: float | None) -> None:
        if seconds is None:
            seconds = _DEFAULT_429_PAUSE_S
        seconds = min(seconds, self.http.max_pause_s)
        if seconds > self.gate.pause.remaining_s:
            log.warning("event=http_throttled target=%s status=%d pause_s=%.2f", self.name, status, seconds)
        self.gate.pause.extend(seconds)


class HttpConnector(AsyncContextConnector):
    """A connector over one `HttpTarget`: opened once, its operations applied at most
    `max_concurrency` at a time, each by the subclass's `_apply_one`, closed once."""

    def __init__(self, name: str, target: HttpTarget) -> None:
        self.name = name
        self._target = target
        self.gate: Gate = target.gate
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self._target.http.url})"

    @property
    def requests_sent(self) -> int:
        return self._target.transport.requests_sent

    async def open(self) -> None:
        """Build the session and its bounded pool; the first request connects."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        await self._target.transport.open()

    async def aclose(self) -> None:
        """Close the pool; safe to call twice."""
        self._closed = True
        await self._target.transport.aclose()

    async def apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        """Apply `ops` concurrently, at most `max_concurrency` at a time; one outcome each, in order."""
        if not self._target.transport.is_open:
            raise RuntimeError(f"{self!r} is not open")
        return await in_lanes(ops, self._target.gate.max_concurrency, self._apply_one)

    async def _apply_one(self, op: Operation) -> Outcome:
        raise NotImplementedError


async def in_lanes(items: Sequence[_T], lanes: int, apply_one: Callable[[_T], Awaitable[_O]]) -> list[_O]:
    """`apply_one` over `items`, at most `lanes` at a time; the results in the items' order."""
    results: list[_O | None] = [None] * len(items)
    pending: Iterator[tuple[int, _T]] = iter(enumerate(items))

    async def drain() -> None:
        for i, item in pending:  # the lanes share one iterator, so each item is taken once
            results[i] = await apply_one(item)

    await asyncio.gather(*(drain() for _ in range(min(len(items), lanes))))
    return [result for result in results if result is not None]
