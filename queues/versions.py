"""The wire versions this process speaks, and those its peers speak, as presence reports them.

Every process decodes each version in `SPOKEN` and publishes in the highest version that every peer
that will read the message speaks: so engine and workers can be upgraded one at a time. Presence
(the heartbeats of engines and workers) tells `PeerVersions` who speaks what; a peer that stops
beating is forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from queues.contracts import VERSION

SPOKEN: Final[tuple[int, ...]] = (VERSION,)
"""Every wire version this build decodes, oldest first; it publishes in any of them."""

PeerKind = Literal["engine", "worker"]


class PeerVersions:
    """Who speaks which wire versions, by peer id, as presence last said."""

    def __init__(self) -> None:
        self._spoken: dict[str, tuple[PeerKind, frozenset[int]]] = {}

    def seen(self, peer: str, kind: PeerKind, spoken: Sequence[int]) -> None:
        self._spoken[peer] = (kind, frozenset(spoken))

    def gone(self, peer: str) -> None:
        self._spoken.pop(peer, None)

    def publish_version(self, readers: PeerKind) -> int:
        """The highest version this build speaks that every known peer of kind `readers` speaks too
        (this build's own when none is known)."""
        common = set(SPOKEN)
        for kind, spoken in self._spoken.values():
            if kind == readers:
                common &= spoken
        return max(common) if common else VERSION
