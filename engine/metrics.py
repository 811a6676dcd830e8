"""The engine's Prometheus metrics, on an injected registry (a fresh one per test).

Recorded per batch or per result message where possible, never per object with a label lookup: the
hot path pays for a counter increment, not for building label sets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common.errors import BrokerError
from common.process.build import register_build_info
from common.process.histograms import observe_all
from engine.core.reconcile import SITUATIONS
from queues.broker import Broker
from queues.contracts import Operation, Result
from queues.topology import ops_queue

if TYPE_CHECKING:
    from engine.model import CycleSummary

log = logging.getLogger("roster.engine.metrics")

LATENCY_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CYCLE_PHASES = (
    "read",
    "created",
    "updated",
    "disabled",
    "deleted",
    "unchanged",
    "out_of_scope",
    "failed",
    "skipped_rows",
)


class EngineMetrics:
    """With `recording=False` the per-batch records return at once (to measure what they cost)."""

    def __init__(self, registry: CollectorRegistry, *, recording: bool = True) -> None:
        self.registry = registry
        self.recording = recording
        self.published = Counter(
            "roster_operations_published_total",
            "Operations published to a target's queue.",
            ["job", "target", "action"],
            registry=registry,
        )
        self.completed = Counter(
            "roster_operations_completed_total",
            "Operations with a final result.",
            ["job", "target", "action", "status"],
            registry=registry,
        )
        self.retrying = Counter(
            "roster_operations_retried_total",
            "Interim results of operations sent to a retry tier.",
            ["job", "target"],
            registry=registry,
        )
        self.latency = Histogram(
            "roster_operation_latency_seconds",
            "Time from an operation's emission by the engine to its result from the worker.",
            ["target"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.cycles = Counter(
            "roster_cycles_total", "Cycles that ended, by status.", ["job", "status"], registry=registry
        )
        self.cycle_duration = Histogram(
            "roster_cycle_duration_seconds",
            "Wall time of a cycle, from the source read to the last result.",
            ["job"],
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )
        self.queue_depth = Gauge(
            "roster_queue_depth", "Messages ready in a target's queue.", ["target"], registry=registry
        )
        self.cycle_objects = Counter(
            "roster_cycle_objects_total",
            "Objects of ended cycles by phase: read, planned per action, unchanged, out of scope, failed.",
            ["job", "phase"],
            registry=registry,
        )
        self.last_success = Gauge(
            "roster_cycle_last_success_timestamp_seconds",
            "When the job's last successful cycle ended, or when this engine became active if none did.",
            ["job"],
            registry=registry,
        )
        self.interval = Gauge(
            "roster_job_interval_seconds",
            "Time between two cycles of the job by its schedule.",
            ["job"],
            registry=registry,
        )
        self.active = Gauge(
            "roster_engine_active",
            "1 while this engine holds the lock and works, 0 while it waits as a standby.",
            registry=registry,
        )
        self.reconciled = Gauge(
            "roster_reconcile_objects",
            "Objects per situation found by the job's last reconciliation of its target.",
            ["job", "situation"],
            registry=registry,
        )
        register_build_info(registry, "engine")

    def record_cycle(self, summary: CycleSummary) -> None:
        """Once per cycle: its status, duration and objects per phase, and the time of a success."""
        self.cycles.labels(summary.job, summary.status).inc()
        self.cycle_duration.labels(summary.job).observe(summary.elapsed_s)
        counts = summary.counts()
        for phase in CYCLE_PHASES:
            self.cycle_objects.labels(summary.job, phase).inc(counts[phase] or 0)
        if summary.status == "succeeded":
            self.last_success.labels(summary.job).set(time.time())

    def record_reconcile(self, job: str, situations: Mapping[str, int]) -> None:
        """After a reconciliation that classified the target (a failed one leaves the last figures)."""
        if situations:
            for situation in SITUATIONS:
                self.reconciled.labels(job, situation).set(situations.get(situation, 0))

    def watch_awaiting(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Export, per job, the operations published whose final result is not in yet; `counts` is
        read at scrape time, so the hot path pays nothing for it."""
        self.registry.register(_AwaitingResult(counts))

    def watch_jobs(self, states: Callable[[], Mapping[str, str]]) -> None:
        """Export each job's control state (active, paused, quarantined, waiting_for_approval), one
        0/1 series per state; `states` is read at scrape time, so cycles pay nothing for it."""
        self.registry.register(_JobStates(states))

    def watch_fleet(
        self, counts: Callable[[], Mapping[tuple[str, str, str], int]], target_jobs: Mapping[str, int]
    ) -> None:
        """Export `roster_agents{target,version,state}` (workers per target, Roster version and state,
        read from `counts` at scrape time) and `roster_target_jobs{target}` (the jobs of each target),
        so that an alert sees a target with jobs and no worker."""
        self.registry.register(_Fleet(counts, dict(target_jobs)))

    async def poll_queue_depths(
        self, broker: Broker, targets: Iterable[str], *, interval_s: float = 5.0
    ) -> None:
        """Keep `roster_queue_depth` current until cancelled; a broker that does not answer leaves
        the last value and is asked again at the next round."""
        queues = {target: ops_queue(target) for target in sorted(set(targets))}
        while True:
            for target, queue in queues.items():
                try:
                    self.queue_depth.labels(target).set(await broker.depth(queue))
                except BrokerError as exc:
                    log.warning("event=queue_depth_unknown target=%s error=%r", target, str(exc))
            await asyncio.sleep(interval_s)

    def record_published(self, ops: Iterable[Operation]) -> None:
        if not self.recording:
            return
        for (job, target, action), n in Tally((o.job, o.target, o.action) for o in ops).items():
            self.published.labels(job, target, action).inc(n)

    def record_results(self, results: Iterable[Result]) -> None:
        if not self.recording:
            return
        finals: Tally[tuple[str, str, str, str]] = Tally()
        retries: Tally[tuple[str, str]] = Tally()
        by_target: dict[str, list[float]] = {}
        for r in results:
            if r.final:
                finals[(r.job, r.target, r.action, r.status)] += 1
                by_target.setdefault(r.target, []).append(r.latency_s)
            else:
                retries[(r.job, r.target)] += 1
        for labels, n in finals.items():
            self.completed.labels(*labels).inc(n)
        for pair, n in retries.items():
            self.retrying.labels(*pair).inc(n)
        for target, latencies in by_target.items():
            observe_all(self.latency.labels(target), latencies)


class _AwaitingResult(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "roster_operations_awaiting_result",
            "Operations the engine published whose final result is not in yet, per job.",
            labels=["job"],
        )
        for job, n in sorted(self._counts().items()):
            family.add_metric([job], n)
        yield family


JOB_STATES = ("active", "paused", "quarantined", "waiting_for_approval")


class _JobStates(Collector):
    def __init__(self, states: Callable[[], Mapping[str, str]]) -> None:
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "roster_job_state",
            "1 for the state each job is in (active, paused, quarantined, waiting_for_approval), else 0.",
            labels=["job", "state"],
        )
        for job, current in sorted(self._states().items()):
            for state in JOB_STATES:
                family.add_metric([job, state], 1.0 if state == current else 0.0)
        yield family


class _Fleet(Collector):
    def __init__(
        self, counts: Callable[[], Mapping[tuple[str, str, str], int]], target_jobs: Mapping[str, int]
    ) -> None:
        self._counts = counts
        self._target_jobs = target_jobs

    def collect(self) -> Iterator[GaugeMetricFamily]:
        agents = GaugeMetricFamily(
            "roster_agents",
            "Workers the engine has heard, per target they serve, Roster version and state (running, "
            "draining, gone).",
            labels=["target", "version", "state"],
        )
        counts = self._counts()
        for (target, version, state), n in sorted(counts.items()):
            agents.add_metric([target, version, state], n)
        for target in sorted(self._target_jobs):  # a target nobody serves still has a series: 0
            if not any(key[0] == target and key[2] == "running" for key in counts):
                agents.add_metric([target, "", "running"], 0)
        yield agents
        jobs = GaugeMetricFamily(
            "roster_target_jobs", "Jobs of this engine that provision each target.", labels=["target"]
        )
        for target, n in sorted(self._target_jobs.items()):
            jobs.add_metric([target], n)
        yield jobs
