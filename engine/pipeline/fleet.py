"""The fleet: every engine and worker heard on the presence exchange, as last reported, and whether it
is still there.

A pure keeper (no I/O; `engine.pipeline.presence` feeds it): `heard` records an announcement, `sweep`
marks a peer `gone` once it missed `missed` of its own heartbeat intervals, and forgets a gone one
after `forget_after_s`. A `leaving` announcement (a clean stop) makes it gone at once. Every change
is passed on to a `queues.versions.PeerVersions`, which the publishers ask which wire version their
readers speak.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from common.config.validation import as_mapping, check_keys, integer, positive
from common.errors import ConfigError
from queues.presence import Announcement
from queues.versions import PeerVersions

AgentState = Literal["running", "draining", "gone"]
AGENT_STATES: Final[tuple[AgentState, ...]] = ("running", "draining", "gone")
LIVE: Final = frozenset({"running", "draining"})


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSettings:
    interval_s: float = 5.0
    """How often the engine announces itself."""
    missed: int = 3
    """Heartbeats a peer may miss (counted by its own interval) before it is marked gone."""
    forget_after_s: float = 3600.0
    """How long a gone peer stays listed."""

    def __post_init__(self) -> None:
        if not (0 < self.interval_s <= 3600 and self.missed >= 1 and self.forget_after_s >= 0):
            raise ValueError(f"invalid presence settings {self!r}")


_FIXES: Final = {
    "interval_s": "give the seconds between the engine's announcements, such as 5",
    "missed": "give the heartbeats a worker may miss before it counts as gone, such as 3",
    "forget_after_s": "give the seconds a gone worker stays listed, such as 3600",
}


def parse_presence(path: str, raw: Any) -> FleetSettings:
    """`engine.presence: {interval_s: 5, missed: 3, forget_after_s: 3600}`, each optional."""
    settings: Mapping[str, Any] = as_mapping(path, raw or {})
    check_keys(path, settings, tuple(_FIXES))
    values: dict[str, Any] = {}
    for key, fix in _FIXES.items():
        if key not in settings:
            continue
        where = f"{path}.{key}"
        try:
            if key == "missed":
                values[key] = integer(where, settings[key], minimum=1)
            else:
                values[key] = positive(where, settings[key])
        except ConfigError as exc:
            raise ConfigError(exc.path, exc.problem, fix) from None
        if key == "interval_s" and values[key] > 3600:
            raise ConfigError(where, f"{values[key]:g} is too long", fix)
    return FleetSettings(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One peer as the fleet knows it."""

    last: Announcement
    """What it last said of itself."""
    heard_at: float
    """When it was last heard, on the keeper's clock."""
    state: AgentState
    gone_at: float | None = None
    gone_reason: str | None = None
    """`left` (a clean stop) or `missed N heartbeats`."""


class Fleet:
    """Engines and workers by id, with `versions` kept in step. `clock` is monotonic seconds."""

    def __init__(
        self,
        settings: FleetSettings | None = None,
        *,
        versions: PeerVersions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or FleetSettings()
        self.versions = versions if versions is not None else PeerVersions()
        self._clock = clock
        self._members: dict[str, Member] = {}
        self.listening_since = clock()
        self.gone_observers: list[Callable[[Member], None]] = []
        """Told of each peer that `sweep` finds gone (it missed its heartbeats; not one that left)."""

    def heard(self, announcement: Announcement) -> Member:
        """Record an announcement; returns the member as it now stands."""
        now = self._clock()
        a = announcement
        if a.state == "leaving":
            member = Member(last=a, heard_at=now, state="gone", gone_at=now, gone_reason="left")
            self.versions.gone(a.id)
        else:
            member = Member(last=a, heard_at=now, state=a.state)
            # A worker's targets count it as a reader of their queues (see engine.pipeline.wire).
            targets = [t.name for t in a.targets] if a.kind == "worker" else None
            self.versions.seen(a.id, a.kind, a.spoken, targets=targets)
        self._members[a.id] = member
        return member

    def sweep(self) -> list[Member]:
        """Mark gone who missed too many heartbeats, forget who is gone long enough; returns those
        newly gone."""
        now = self._clock()
        newly_gone = []
        for peer, member in list(self._members.items()):
            if member.state == "gone":
                assert member.gone_at is not None
                if now - member.gone_at >= self.settings.forget_after_s:
                    del self._members[peer]
                continue
            if now - member.heard_at > self.settings.missed * member.last.interval_s:
                gone = Member(
                    last=member.last,
                    heard_at=member.heard_at,
                    state="gone",
                    gone_at=now,
                    gone_reason=f"missed {self.settings.missed} heartbeats",
                )
                self._members[peer] = gone
                self.versions.gone(peer)
                newly_gone.append(gone)
        for member in newly_gone:
            for observe in self.gone_observers:
                observe(member)
        return newly_gone

    def members(self) -> list[Member]:
        """Every peer known, live ones first, then by kind, host and id (swept first)."""
        self.sweep()
        order = {"running": 0, "draining": 1, "gone": 2}
        return sorted(
            self._members.values(),
            key=lambda m: (order[m.state], m.last.kind != "engine", m.last.host, m.last.id),
        )

    def state_of(self, peer: str) -> AgentState | None:
        member = self._members.get(peer)
        return member.state if member is not None else None

    def since_heard(self, member: Member) -> float:
        return max(0.0, self._clock() - member.heard_at)

    def listening_s(self) -> float:
        """How long this keeper has listened: a target without workers counts only after a heartbeat."""
        return max(0.0, self._clock() - self.listening_since)

    def live_workers(self, targets: Iterable[str]) -> dict[str, int]:
        """Per target, the workers running for it now (draining ones are on their way out)."""
        counts = dict.fromkeys(targets, 0)
        for member in self.members():
            if member.last.kind == "worker" and member.state == "running":
                for report in member.last.targets:
                    counts[report.name] = counts.get(report.name, 0) + 1
        return counts

    def agent_counts(self) -> Counter[tuple[str, str, str]]:
        """Workers per (target, Roster version, state), for `roster_agents`."""
        counts: Counter[tuple[str, str, str]] = Counter()
        for member in self.members():
            if member.last.kind != "worker":
                continue
            for report in member.last.targets:
                counts[(report.name, member.last.version, member.state)] += 1
        return counts
