"""A worker's metrics: retries and throttling pauses counted as they happen, errors exported at 0."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from queues.contracts import Result
from workers.limits import Pause
from workers.metrics import WorkerMetrics


def _result(status: str) -> Result:
    return Result(
        op_id="o",
        job="j",
        target="t",
        cycle_id="c",
        source_id="s",
        action="create",
        status=status,  # type: ignore[arg-type]
        attempts=1,
        emitted_at=0.0,
        completed_at=0.1,
    )


def test_a_batch_counts_its_retries_and_pauses_count_the_time_they_held_the_target() -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    metrics.start_at_zero(["t"])
    value = metrics.registry.get_sample_value
    assert value("roster_retries_total", {"target": "t"}) == 0
    assert value("roster_dead_letters_total", {"target": "t", "reason": "retries_exhausted"}) == 0

    metrics.record_batch("t", [_result("retrying"), _result("retrying"), _result("succeeded")], 0.2)
    assert value("roster_retries_total", {"target": "t"}) == 2
    assert value("roster_connector_call_seconds_count", {"target": "t"}) == 1

    now = [100.0]
    pause = Pause(clock=lambda: now[0])
    metrics.watch_pause("t", pause)
    pause.extend(5)  # held until 105
    now[0] = 102.0
    pause.extend(1)  # already held longer: counted, adds no time
    pause.extend(4)  # until 106: one more second
    assert value("roster_throttle_pauses_total", {"target": "t"}) == 3
    assert value("roster_throttle_pause_seconds_total", {"target": "t"}) == 6


def test_recording_switched_off_leaves_the_counters_alone() -> None:
    metrics = WorkerMetrics(CollectorRegistry(), recording=False)
    metrics.record_batch("t", [_result("succeeded")], 0.2)
    assert metrics.registry.get_sample_value("roster_worker_batches_total", {"target": "t"}) is None
