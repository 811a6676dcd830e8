"""The engine's bulk histogram observe counts exactly what one observe per value would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from common.process.histograms import observe_all
from engine.metrics import LATENCY_BUCKETS_S, EngineMetrics
from engine.model import CycleSummary


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("h_seconds", "h", ["t"], buckets=LATENCY_BUCKETS_S, registry=registry)


def test_observe_all_gives_the_same_exposition_as_one_observe_per_value() -> None:
    rng = random.Random(3)
    values = [rng.choice([0.0, 0.001, 0.0049, 0.005, 60.0, 61.0]) for _ in range(50)]
    values += [rng.expovariate(20) for _ in range(1000)]
    one_by_one, bulk = _histogram(), _histogram()
    for value in values:
        one_by_one[1].labels("x").observe(value)
    observe_all(bulk[1].labels("x"), values)
    assert _samples(bulk[0]) == _samples(one_by_one[0])
    assert _sum(bulk[0]) == pytest.approx(_sum(one_by_one[0]))


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """Bucket and count samples (exact), keyed by name and bound."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_count")):
                out[(sample.name, sample.labels.get("le", ""))] = sample.value
    return out


def _sum(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("h_seconds_sum", {"t": "x"}) or 0.0


def test_a_cycle_records_its_objects_per_phase_and_a_success_its_time() -> None:
    metrics = EngineMetrics(CollectorRegistry())
    value = metrics.registry.get_sample_value
    failed = CycleSummary(cycle_id="c1", job="j", status="failed", read=4, failed=4, elapsed_s=2.0)
    metrics.record_cycle(failed)
    assert value("roster_cycle_last_success_timestamp_seconds", {"job": "j"}) is None
    done = CycleSummary(
        cycle_id="c2", job="j", status="succeeded", read=10, created=3, unchanged=7, elapsed_s=1.0
    )
    metrics.record_cycle(done)
    assert value("roster_cycle_objects_total", {"job": "j", "phase": "read"}) == 14
    assert value("roster_cycle_objects_total", {"job": "j", "phase": "created"}) == 3
    assert value("roster_cycle_objects_total", {"job": "j", "phase": "failed"}) == 4
    assert value("roster_cycles_total", {"job": "j", "status": "succeeded"}) == 1
    assert value("roster_cycle_duration_seconds_count", {"job": "j"}) == 2
    assert (value("roster_cycle_last_success_timestamp_seconds", {"job": "j"}) or 0) > 0
