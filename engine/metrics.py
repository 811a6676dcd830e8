"""The engine's Prometheus metrics, on an injected registry (a fresh one per test).

Recorded per batch or per result message where possible, never per object with a label lookup: the
hot path pays for a counter increment, not for building label sets.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from queues.contracts import Operation, Result

LATENCY_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
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

    def record_published(self, ops: Iterable[Operation]) -> None:
        for (job, target, action), n in Tally((o.job, o.target, o.action) for o in ops).items():
            self.published.labels(job, target, action).inc(n)

    def record_results(self, results: Iterable[Result]) -> None:
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
        for labels, n in retries.items():
            self.retrying.labels(*labels).inc(n)
        for target, latencies in by_target.items():
            observe_all(self.latency.labels(target), latencies)


def observe_all(child: Any, values: list[float]) -> None:
    """`child.observe(v)` for every value, at a fraction of the cost for a batch of results.

    prometheus-client has no bulk observe; this counts the values per bucket with a bisection and
    increments each bucket once. It reads the child's bucket bounds, so where a client version lays
    them out differently it falls back to one `observe` per value (tests compare both ways).
    """
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            child.observe(value)
        return
    for index, count in Tally(bisect_left(bounds, value) for value in values).items():
        buckets[index].inc(count)
    total.inc(sum(values))
