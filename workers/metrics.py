"""A worker's Prometheus metrics, on an injected registry (a fresh one per test).

Recorded once per batch with pre-counted tallies, so a batch of 500 operations costs a handful of
counter increments, not 500 label lookups.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from common.process.build import register_build_info
from queues.contracts import Result
from workers.limits import Pause

DEAD_LETTER_REASONS = ("undecodable", "retries_exhausted")
CALL_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class WorkerMetrics:
    """With `recording=False` the per-batch record returns at once (to measure what it costs)."""

    def __init__(self, registry: CollectorRegistry, *, recording: bool = True) -> None:
        self.registry = registry
        self.recording = recording
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
        self._pauses: dict[str, Pause] = {}
        registry.register(_Throttling(self._pauses))
        register_build_info(registry, "worker")

    def start_at_zero(self, targets: Iterable[str]) -> None:
        """Export the targets' error counters at 0 from the start, so that `increase()` and `rate()`
        see their first increment (a series that appears at 1 looks like no change)."""
        for target in targets:
            self.retries.labels(target)
            for reason in DEAD_LETTER_REASONS:
                self.dead_letters.labels(target, reason)

    def watch_pause(self, target: str, pause: Pause) -> None:
        """Export the throttling pauses of `target` (429/503 answers), read from its `Pause` at
        scrape time."""
        self._pauses[target] = pause

    def record_batch(self, target: str, results: Iterable[Result], connector_s: float) -> None:
        if not self.recording:
            return
        retrying = 0
        for (action, status), n in Tally((r.action, r.status) for r in results).items():
            self.applied.labels(target, action, status).inc(n)
            if status == "retrying":
                retrying += n
        if retrying:
            self.retries.labels(target).inc(retrying)
        self.batches.labels(target).inc()
        self.connector_seconds.labels(target).observe(connector_s)


class _Throttling(Collector):
    def __init__(self, pauses: dict[str, Pause]) -> None:
        self._pauses = pauses

    def collect(self) -> Iterator[CounterMetricFamily]:
        count = CounterMetricFamily(
            "roster_throttle_pauses",
            "Times a target asked to slow down (429, or 503 with Retry-After) and paused every call.",
            labels=["target"],
        )
        seconds = CounterMetricFamily(
            "roster_throttle_pause_seconds",
            "Time a target's calls were held by its pauses.",
            labels=["target"],
        )
        for target, pause in sorted(self._pauses.items()):
            count.add_metric([target], pause.count)
            seconds.add_metric([target], pause.paused_s)
        yield count
        yield seconds
