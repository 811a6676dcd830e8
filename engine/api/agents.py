"""`GET /agents`: the engines and workers the engine has heard (`engine.pipeline.fleet`), and per target
of a job how many workers serve it, as answer types for the API and its OpenAPI document.

A target with jobs and no running worker is the case this answers first: its operations wait in
its queue, which otherwise looks like a slow target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from engine.pipeline.fleet import Fleet, Member

Count = Annotated[int, {"minimum": 0}]


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentTarget:
    """One target a worker serves."""

    name: str
    concurrency: Count
    """Batches it applies at once"""
    in_flight: Count
    """Operations it was applying when it last reported"""
    last_error: str | None
    """Its last failed operation's error class and message, with credentials masked"""
    last_error_at: float | None
    """Unix seconds"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """An engine or a worker, as it last announced itself."""

    id: str
    """host-pid-random, stable for the life of the process"""
    kind: Literal["engine", "worker"]
    host: str
    pid: Count
    version: str
    """The Roster release it runs"""
    wire_versions: list[int]
    """The versions of the messages between engine and workers that it reads"""
    state: Literal["running", "draining", "gone"]
    gone_reason: str | None
    """left (a clean stop), or missed N heartbeats"""
    started_at: float
    """Unix seconds"""
    uptime_s: float
    """At its last announcement"""
    last_seen_s: float
    """Seconds since it was last heard"""
    interval_s: float
    """How often it announces itself"""
    targets: list[AgentTarget]


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetWorkers:
    """A target of this engine's jobs, and the workers running for it."""

    target: str
    jobs: list[str]
    workers: Count
    """Workers running for it now (draining and gone ones not counted)"""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentList:
    agents: list[Agent]
    targets: list[TargetWorkers]
    listening_s: float
    """How long this engine has listened: a worker shows within one of its heartbeats"""


def agent_list(fleet: Fleet, jobs: Iterable[tuple[str, str]]) -> AgentList:
    """The fleet as the API shows it; `jobs` are (job, target) pairs of this engine."""
    by_target: dict[str, list[str]] = {}
    for job, target in jobs:
        by_target.setdefault(target, []).append(job)
    live = fleet.live_workers(by_target)
    return AgentList(
        agents=[_agent(fleet, m) for m in fleet.members()],
        targets=[TargetWorkers(target=t, jobs=js, workers=live[t]) for t, js in sorted(by_target.items())],
        listening_s=round(fleet.listening_s(), 1),
    )


def _agent(fleet: Fleet, member: Member) -> Agent:
    a = member.last
    return Agent(
        id=a.id,
        kind=a.kind,
        host=a.host,
        pid=a.pid,
        version=a.version,
        wire_versions=list(a.spoken),
        state=member.state,
        gone_reason=member.gone_reason,
        started_at=a.started_at,
        uptime_s=round(a.uptime_s, 1),
        last_seen_s=round(fleet.since_heard(member), 1),
        interval_s=a.interval_s,
        targets=[
            AgentTarget(
                name=t.name,
                concurrency=t.concurrency,
                in_flight=t.in_flight,
                last_error=t.last_error,
                last_error_at=t.last_error_at,
            )
            for t in a.targets
        ],
    )
