"""The admin API's client, for the `roster status|logs|pause|...` commands.

Synchronous on the standard library's urllib: a command makes one request and prints the answer, so
an event loop would buy nothing. Failures become `RosterError`s that tell the user what to do: where
the engine was looked for and how to start it, or how to give the token.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from common.errors import RosterError

DEFAULT_URL = "http://127.0.0.1:8477"
CHUNK_BYTES = 64 * 1024


class ApiUnreachable(RosterError):
    """Nothing answers at the API's URL."""


class ApiRefused(RosterError):
    """The API answered with an error; `status` and `error` are its HTTP status and code."""

    def __init__(self, message: str, *, status: int, error: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class ApiClient:
    """Requests to one engine's admin API, with its bearer token (None: send none)."""

    def __init__(self, url: str, token: str | None, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        with self._open("GET", path, params, timeout_s=self.timeout_s) as answer:
            return orjson.loads(answer.read())

    def post(self, path: str, body: Any = None, *, timeout_s: float | None = None) -> Any:
        """`timeout_s` for a route that answers only when its work is done (approve runs a cycle)."""
        with self._open("POST", path, None, body, timeout_s=timeout_s or self.timeout_s) as answer:
            return orjson.loads(answer.read())

    def stream(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[bytes]:
        """The answer's body a chunk at a time (an export of any size in constant memory)."""
        with self._open("GET", path, params, timeout_s=self.timeout_s) as answer:
            while chunk := answer.read(CHUNK_BYTES):
                yield chunk

    def _open(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Any = None,
        *,
        timeout_s: float,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.url + urllib.parse.quote(path) + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            raise self._refused(exc) from None
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (TimeoutError, ConnectionError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, reason: object) -> ApiUnreachable:
        why = "connection refused" if isinstance(reason, ConnectionRefusedError) else str(reason)
        return ApiUnreachable(
            f"cannot reach the Roster API at {self.url}: {why}. Start the engine with "
            "`roster run FILE --serve` or `roster engine FILE`, or point --api (env ROSTER_API_URL) at it"
        )

    def _refused(self, exc: urllib.error.HTTPError) -> ApiRefused:
        try:
            answer = orjson.loads(exc.read())
            error, detail = str(answer["error"]), str(answer["detail"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            error, detail = "http_error", f"{exc.code} {exc.reason}"
        finally:
            exc.close()
        if exc.code == 401:
            given = "no API token was given" if not self._token else "the API refused the token"
            detail = (
                f"{given} ({detail}). Set ROSTER_API_TOKEN, or pass --token-file PATH: the engine keeps "
                "its token in `api-token` beside its state and prints where at start"
            )
        return ApiRefused(detail, status=exc.code, error=error)
