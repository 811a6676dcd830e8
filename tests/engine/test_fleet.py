"""The fleet keeper: a worker is running while it beats, gone after its missed heartbeats (or at once
when it leaves), forgotten later; PeerVersions follows every change; settings are checked."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pytest

from common.errors import ConfigError
from engine.api.agents import agent_list
from engine.pipeline.fleet import Fleet, FleetSettings, parse_presence
from queues.presence import Announcement, TargetReport
from queues.versions import PeerKind, PeerVersions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorded(PeerVersions):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.targets: dict[str, Collection[str] | None] = {}

    def seen(
        self, peer: str, kind: PeerKind, spoken: Sequence[int], *, targets: Collection[str] | None = None
    ) -> None:
        self.calls.append(("seen", peer))
        self.targets[peer] = targets
        super().seen(peer, kind, spoken, targets=targets)

    def gone(self, peer: str) -> None:
        self.calls.append(("gone", peer))
        super().gone(peer)


def _worker(
    peer: str, *, state: str = "running", version: str = "1.0", targets: tuple[str, ...] = ("app",)
) -> Announcement:
    return Announcement(
        kind="worker",
        id=peer,
        host="h",
        pid=1,
        version=version,
        spoken=(4,),
        state=state,  # type: ignore[arg-type]
        started_at=0.0,
        sent_at=1.0,
        interval_s=5.0,
        targets=tuple(TargetReport(name=t, concurrency=4) for t in targets),
    )


def _fleet(**settings: float) -> tuple[Fleet, Clock, Recorded]:
    clock, versions = Clock(), Recorded()
    return Fleet(FleetSettings(**settings), versions=versions, clock=clock), clock, versions  # type: ignore[arg-type]


def test_a_worker_that_misses_its_heartbeats_is_gone_then_forgotten() -> None:
    fleet, clock, versions = _fleet(missed=3, forget_after_s=60)
    fleet.heard(_worker("w1"))
    clock.now += 15.0  # exactly three intervals: not yet
    assert fleet.sweep() == [] and fleet.state_of("w1") == "running"
    clock.now += 0.1
    [gone] = fleet.sweep()
    assert (gone.state, gone.gone_reason) == ("gone", "missed 3 heartbeats")
    assert versions.calls == [("seen", "w1"), ("gone", "w1")]
    assert versions.targets == {"w1": ["app"]}  # a worker's targets count it as a reader of their queues
    clock.now += 59.0
    assert fleet.state_of("w1") == "gone"
    clock.now += 2.0
    assert fleet.members() == []


def test_a_worker_that_beats_stays_and_one_that_comes_back_runs_again() -> None:
    fleet, clock, _ = _fleet()
    for _ in range(10):
        fleet.heard(_worker("w1"))
        clock.now += 5.0
        assert fleet.sweep() == []
    clock.now += 20.0
    assert [m.last.id for m in fleet.sweep()] == ["w1"]
    fleet.heard(_worker("w1"))
    assert fleet.state_of("w1") == "running"


def test_a_leaving_worker_is_gone_at_once_and_a_draining_one_is_not_counted_as_serving() -> None:
    fleet, _, versions = _fleet()
    fleet.heard(_worker("w1"))
    fleet.heard(_worker("w2"))
    fleet.heard(_worker("w1", state="leaving"))
    fleet.heard(_worker("w2", state="draining"))
    states = {m.last.id: (m.state, m.gone_reason) for m in fleet.members()}
    assert states == {"w1": ("gone", "left"), "w2": ("draining", None)}
    assert versions.calls[-2:] == [("gone", "w1"), ("seen", "w2")]
    assert fleet.live_workers(["app", "other"]) == {"app": 0, "other": 0}


def test_the_counts_per_target_and_version_and_the_api_answer() -> None:
    fleet, _, _ = _fleet()
    fleet.heard(_worker("w1", version="1.0", targets=("app", "hr")))
    fleet.heard(_worker("w2", version="1.1"))
    fleet.heard(_worker("w3", version="1.1", state="leaving"))
    assert fleet.agent_counts() == {
        ("app", "1.0", "running"): 1,
        ("hr", "1.0", "running"): 1,
        ("app", "1.1", "running"): 1,
        ("app", "1.1", "gone"): 1,
    }
    listed = agent_list(fleet, [("people", "app"), ("badges", "lonely"), ("teams", "app")])
    assert [(t.target, t.jobs, t.workers) for t in listed.targets] == [
        ("app", ["people", "teams"], 2),
        ("lonely", ["badges"], 0),
    ]
    assert [a.id for a in listed.agents] == ["w1", "w2", "w3"]  # live ones first


def test_presence_settings_name_the_wrong_key_and_the_fix() -> None:
    assert parse_presence("engine.presence", None) == FleetSettings()
    assert parse_presence("engine.presence", {"missed": 5, "interval_s": 1}).missed == 5
    with pytest.raises(ConfigError, match=r"engine\.presence\.missed.*such as 3"):
        parse_presence("engine.presence", {"missed": 0})
    with pytest.raises(ConfigError, match=r"engine\.presence"):
        parse_presence("engine.presence", {"interval": 5})
