"""The HTTP transport to one SCIM service: `HttpTransport` speaking `application/scim+json`, and
`refusal_text`, the words of a SCIM error document (RFC 7644 §3.12).

See `http_transport.py` for what a request answers and raises.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from common.peers.http_settings import HttpSettings
from common.peers.http_transport import HttpAnswer, HttpTransport, Unanswered

__all__ = ["ScimAnswer", "ScimTransport", "Unanswered", "refusal_text"]

SCIM_JSON: Final = "application/scim+json"

ScimAnswer = HttpAnswer


class ScimTransport(HttpTransport):
    """Sends requests to one SCIM service (see `HttpTransport`)."""

    def __init__(
        self,
        http: HttpSettings,
        *,
        max_connections: int,
        slot: Callable[[], AbstractAsyncContextManager[object]] | None = None,
    ) -> None:
        super().__init__(http, max_connections=max_connections, slot=slot, media_type=SCIM_JSON)


def refusal_text(status: int, document: Any, *, detail_max: int) -> str:
    """`HTTP 400 invalidFilter: <detail>`: a status with the server's `scimType` and `detail`, if any."""
    text = f"HTTP {status}"
    if isinstance(document, dict):
        if document.get("scimType"):
            text += f" {document['scimType']}"
        if document.get("detail"):
            text += f": {str(document['detail'])[:detail_max]}"
    return text
