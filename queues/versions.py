"""The wire versions this process speaks, and those its peers speak, as presence or their messages say.

Every process decodes each version in `SPOKEN` and publishes in the highest version that every peer
that will read the message speaks: so engine and workers can be upgraded one at a time. Presence
(the heartbeats of engines and workers) tells `PeerVersions` who speaks what, until a peer is `gone`;
the headers of the messages a peer publishes tell it too (`heard`), until they are `forget_after_s`
old. Nothing known, or a reader that may be unknown, means the oldest version spoken: every build
still running in a rolling upgrade (this one and the previous one) reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from common.errors import ConfigError
from queues.contracts import VERSION

SPOKEN: Final[tuple[int, ...]] = (4, VERSION)
"""Every wire version this build decodes, oldest first; it publishes in any of them."""

OLDEST: Final = SPOKEN[0]
"""What a message goes out in while some peer that will read it may speak only the previous version."""

PEER_HEADER: Final = "x-roster-peer"
"""Names the process that published a message (a worker's results and pages)."""
SPOKEN_HEADER: Final = "x-roster-spoken"
"""The wire versions that process speaks, as text: `4,5`."""

VERSIONS_VARIABLE: Final = "ROSTER_WIRE_VERSIONS"
"""For tests and emergencies only: the versions a process speaks (`4` runs a worker as the previous
build would), a subset of `SPOKEN`."""

PeerKind = Literal["engine", "worker"]


def spoken_from(text: str | None) -> tuple[int, ...]:
    """The versions `ROSTER_WIRE_VERSIONS` names (`SPOKEN` when it is unset or empty); `ConfigError`
    naming the versions this build can speak when it names another or is not a list of numbers."""
    if text is None or not text.strip():
        return SPOKEN
    known = ",".join(map(str, SPOKEN))
    try:
        chosen = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise ConfigError(
            VERSIONS_VARIABLE, f"{text!r} is not a list of wire versions", f"e.g. {known}"
        ) from None
    unknown = chosen - set(SPOKEN)
    if unknown:
        raise ConfigError(
            VERSIONS_VARIABLE, f"this build cannot speak {sorted(unknown)}", f"it speaks {known}"
        )
    return tuple(sorted(chosen))


def speaker_headers(peer: str, spoken: Sequence[int]) -> dict[str, str]:
    """The headers that say who published a message and which versions it speaks."""
    return {PEER_HEADER: peer, SPOKEN_HEADER: ",".join(map(str, spoken))}


def speaker_of(headers: Mapping[str, Any]) -> tuple[str, tuple[int, ...]] | None:
    """The publisher and its versions, from `speaker_headers`; None when the headers do not say (a
    build from before them) or say it wrongly."""
    peer, spoken = headers.get(PEER_HEADER), headers.get(SPOKEN_HEADER)
    if isinstance(peer, bytes):
        peer = peer.decode(errors="replace")
    if isinstance(spoken, bytes):
        spoken = spoken.decode(errors="replace")
    if not isinstance(peer, str) or not peer or not isinstance(spoken, str):
        return None
    try:
        versions = tuple(sorted({int(part) for part in spoken.split(",")}))
    except ValueError:
        return None
    return (peer, versions) if versions else None


@dataclass(slots=True)
class _Peer:
    kind: PeerKind
    spoken: frozenset[int]
    targets: set[str] | None = field(default_factory=set)
    """The targets it serves (None: presence did not say)."""
    forget_at: float | None = None
    """When a peer only heard of is forgotten; None for one presence reported (until `gone`)."""


class PeerVersions:
    """Who speaks which wire versions, by peer id, as presence or the peer's own messages last said."""

    def __init__(
        self,
        *,
        spoken: Sequence[int] = SPOKEN,
        forget_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`spoken`: the versions this process speaks (fewer than `SPOKEN` by `ROSTER_WIRE_VERSIONS`)."""
        self._own = frozenset(spoken)
        self._oldest = min(spoken)
        self._peers: dict[str, _Peer] = {}
        self._forget_after_s = forget_after_s
        self._clock = clock

    def seen(
        self, peer: str, kind: PeerKind, spoken: Sequence[int], *, targets: Collection[str] | None = None
    ) -> None:
        """Presence says `peer` is up and speaks `spoken` (and serves `targets`, when it says): known
        until `gone(peer)`."""
        self._peers[peer] = _Peer(kind, frozenset(spoken), set(targets) if targets is not None else None)

    def gone(self, peer: str) -> None:
        self._peers.pop(peer, None)

    def heard(self, peer: str, kind: PeerKind, spoken: Sequence[int], *, target: str | None = None) -> None:
        """A message from `peer` (about `target`) said it speaks `spoken`: known for `forget_after_s`
        more, unless presence knows it already (presence then says when it is gone)."""
        known = self._peers.get(peer)
        if known is None or known.forget_at is not None:
            forget_at = self._clock() + self._forget_after_s
            targets = known.targets if known is not None else set()
            known = self._peers[peer] = _Peer(kind, frozenset(spoken), targets, forget_at)
        if target is not None and known.targets is not None:
            known.targets.add(target)

    def publish_version(
        self, readers: PeerKind, *, target: str | None = None, consumers: int | None = None
    ) -> int:
        """The highest version this build speaks that every known peer of kind `readers` speaks too.

        With `target`, the peers known to serve it, and those whose targets presence did not say;
        with `consumers` (how many read the target's queue), the oldest version spoken unless as many
        peers are known to serve it: a reader nobody has heard of may be of the previous build. With
        no peer known, the oldest version spoken too, for the same reason."""
        now = self._clock()
        for peer in [
            p for p, known in self._peers.items() if known.forget_at is not None and known.forget_at <= now
        ]:
            del self._peers[peer]
        common = set(self._own)
        serving = 0
        known_any = False
        for known in self._peers.values():
            if known.kind != readers:
                continue
            if target is not None and known.targets is not None and target not in known.targets:
                continue
            known_any = True
            common &= known.spoken
            if target is not None and known.targets is not None:
                serving += 1
        if not known_any or not common:
            return self._oldest
        if consumers is not None and serving < consumers:
            return self._oldest
        return max(common)
