"""A worker's Prometheus metrics, on an injected registry (a fresh one per test).

Recorded once per batch with pre-counted tallies, so a batch of 500 operations costs a handful of
counter increments, not 500 label lookups.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from queues.contracts import Result

CALL_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.applied = Counter(
            "roster_worker_operations_total",
            "Operations a worker handled, by outcome (succeeded, failed, retrying).",
            ["target", "action", "status"],
            registry=registry,
        )
        self.batches = Counter(
            "roster_worker_batches_total",
            "Batches (messages) a worker settled.",
            ["target"],
            registry=registry,
        )
        self.connector_seconds = Histogram(
            "roster_connector_call_seconds",
            "Wall time of one connector call (one batch).",
            ["target"],
            buckets=CALL_BUCKETS_S,
            registry=registry,
        )
        self.retries = Counter(
            "roster_retries_total", "Operations sent to a retry tier.", ["target"], registry=registry
        )
        self.dead_letters = Counter(
            "roster_dead_letters_total",
            "Messages dead-lettered: undecodable, or retries exhausted.",
            ["target", "reason"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "roster_operations_in_flight",
            "Operations a worker is applying now.",
            ["target"],
            registry=registry,
        )

    def record_batch(self, target: str, results: Iterable[Result], connector_s: float) -> None:
        for (action, status), n in Tally((r.action, r.status) for r in results).items():
            self.applied.labels(target, action, status).inc(n)
        self.batches.labels(target).inc()
        self.connector_seconds.labels(target).observe(connector_s)
