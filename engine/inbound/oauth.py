"""OAuth 2.0 client credentials (RFC 6749 §4.4) for the inbound SCIM service, where Roster issues the
token: a client of `inbound.clients` posts its client_id and secret to `{base}/oauth/token` and gets a
bearer token good for `token_lifetime_s`, with the rights (the jobs it may write) of that client.

Issued tokens live in this process's memory: a restart or a takeover by a standby forgets them, and a
client asks for a new one on its next 401, as the grant expects. They are kept by their digest, so a
lookup compares no token text, and the expired ones are dropped as new ones are issued.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from engine.inbound.settings import InboundToken

TOKEN_BYTES = 32


class IssuedTokens:
    """The tokens issued to OAuth clients, by digest, with their client and expiry."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._issued: dict[bytes, tuple[InboundToken, float]] = {}

    def issue(self, client: InboundToken) -> str:
        """A new token for `client`."""
        now = self._clock()
        self._issued = {k: v for k, v in self._issued.items() if v[1] > now}
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._issued[_digest(token)] = (client, now + self.lifetime_s)
        return token

    def find(self, presented: str) -> InboundToken | None:
        """The client a token was issued to, while it has not expired."""
        found = self._issued.get(_digest(presented))
        if found is None or found[1] <= self._clock():
            return None
        return found[0]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
