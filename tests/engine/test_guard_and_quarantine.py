"""The deletion guard's threshold and the quarantine's failure window, from plain values."""

from __future__ import annotations

import time

import pytest

from common.errors import ConfigError
from engine.core.policies import (
    CREDENTIALS_REJECTED,
    DeletionGuard,
    FailureWindow,
    MassChangeGuard,
    QuarantineSettings,
    SourceShrink,
    backoff_s,
    parse_deletion_guard,
    parse_mass_change_guard,
    parse_quarantine,
    parse_source_shrink,
)
from queues.contracts import Result


def test_the_guard_trips_above_the_count_or_the_share() -> None:
    guard = DeletionGuard(count=500, percent=20)
    assert not guard.trips(0, 0)
    assert not guard.trips(20, 100)  # exactly 20%: not above
    assert guard.trips(21, 100)
    assert not guard.trips(500, 10_000)
    assert guard.trips(501, 10_000)
    assert not DeletionGuard(enabled=False).trips(10_000, 10_000)
    assert "21 of 100 objects" in guard.describe(21, 100)


def test_guard_settings_are_checked() -> None:
    assert parse_deletion_guard("g", None) == DeletionGuard()
    assert parse_deletion_guard("g", False) == DeletionGuard(enabled=False)
    assert parse_deletion_guard("g", {"count": 10, "percent": 5}) == DeletionGuard(count=10, percent=5)
    with pytest.raises(ConfigError, match="above 100"):
        parse_deletion_guard("g", {"percent": 150})
    with pytest.raises(ConfigError, match="did you mean 'count'"):
        parse_deletion_guard("g", {"cuont": 1})


def test_the_mass_change_guard_trips_above_the_count_and_the_share_both() -> None:
    guard = MassChangeGuard(count=500, percent=20)
    assert not guard.trips(600, 10_000)  # above the count, 6%: not above the share
    assert not guard.trips(400, 1_000)  # 40%, but not above the count
    assert not guard.trips(1_000, 5_000)  # exactly 20%
    assert guard.trips(1_001, 5_000)
    assert not MassChangeGuard(enabled=False).trips(5_000, 5_000)
    assert guard.describe("title", 4_844, 4_844, 5_000, "accounts").startswith(
        "title would be emptied on 4,844 of 5,000 accounts (97%)"
    )
    assert guard.describe("title", 4_844, 10, 5_000, "accounts").startswith(
        "title would be changed on 4,844 of 5,000 accounts (97%)"
    )
    assert parse_mass_change_guard("g", None) == MassChangeGuard()
    assert parse_mass_change_guard("g", False) == MassChangeGuard(enabled=False)
    assert parse_mass_change_guard("g", {"count": 10, "percent": 5}) == MassChangeGuard(count=10, percent=5)
    with pytest.raises(ConfigError, match="above 100"):
        parse_mass_change_guard("g", {"percent": 150})


def _result(i: int, status: str = "succeeded", code: str | None = None) -> Result:
    now = time.time()
    return Result(
        op_id=f"op-{i}",
        job="people",
        target="app",
        cycle_id="c",
        source_id=f"E{i}",
        action="create",
        status=status,  # type: ignore[arg-type]
        attempts=1,
        emitted_at=now,
        completed_at=now,
        error_code=code,
    )


def test_a_failure_share_trips_only_once_enough_operations_were_tried() -> None:
    window = FailureWindow(QuarantineSettings(failure_share=0.4, min_operations=50, window=200))
    window.add([_result(i, "failed", "500") for i in range(30)])
    assert window.reason is None  # 30 of 30 failed, but fewer than 50 tried
    window.add([_result(i) for i in range(45)])
    assert window.reason is None  # 30 of 75
    window.add([_result(i, "failed", "500") for i in range(5)])
    assert window.reason is not None and "35 of the last 80" in window.reason
    window.add([_result(i) for i in range(200)])
    assert window.reason is None  # the window slid past the failures


def test_credentials_rejected_on_every_call_trip_at_once_and_a_success_breaks_the_run() -> None:
    window = FailureWindow(QuarantineSettings(credential_calls=10))
    window.add([_result(i, "failed", "401") for i in range(9)] + [_result(9)])
    assert window.reason is None
    window.add([_result(i, "failed", "403") for i in range(10)])
    assert window.reason is not None and window.reason.startswith(CREDENTIALS_REJECTED)
    window.add([_result(0, "retrying", "503")])  # interim reports do not count
    assert window.reason is not None
    window.clear()
    assert window.reason is None


def test_a_quarantined_job_backs_off_up_to_a_ceiling() -> None:
    settings = QuarantineSettings(max_backoff_s=3600)
    assert backoff_s(10, 0, settings) == 60  # at least a minute
    assert backoff_s(300, 1, settings) == 600
    assert backoff_s(300, 3, settings) == 2400
    assert backoff_s(300, 10, settings) == 3600


def test_quarantine_settings_are_checked() -> None:
    assert parse_quarantine("q", None) == QuarantineSettings()
    with pytest.raises(ConfigError, match="above 1"):
        parse_quarantine("q", {"failure_share": 40})


def test_the_shrink_check_trips_below_the_floor_or_above_the_drop_from_the_last_complete_read() -> None:
    shrink = SourceShrink(min_objects=100, max_drop_percent=10)
    assert shrink.describe(1000, None) is None  # no complete read yet: only the floor applies
    assert shrink.describe(900, 1000) is None  # exactly 10% fewer: not above
    found = shrink.describe(899, 1000)
    assert found is not None and "899 objects, 10% fewer than the 1,000 of its last complete read" in found
    found = shrink.describe(99, None)
    assert found == "the source has 99 objects, fewer than source_min_objects (100)"
    assert SourceShrink(max_drop_percent=100).describe(0, 1000) is None  # 100 switches the drop off
    assert SourceShrink().describe(5000, 1000) is None  # growth is never suspicious


def test_shrink_settings_are_read_from_the_job_and_a_wrong_one_names_the_key_and_the_fix() -> None:
    assert parse_source_shrink("jobs[0]", {}) == SourceShrink(min_objects=0, max_drop_percent=10)
    assert parse_source_shrink(
        "jobs[0]", {"source_min_objects": 900, "source_max_drop_percent": 5}
    ) == SourceShrink(min_objects=900, max_drop_percent=5)
    for raw, path, words in (
        ({"source_min_objects": -1}, "jobs[0].source_min_objects", "at least 0"),
        ({"source_min_objects": "many"}, "jobs[0].source_min_objects", "whole number"),
        ({"source_max_drop_percent": 150}, "jobs[0].source_max_drop_percent", "above 100"),
        ({"source_max_drop_percent": float("nan")}, "jobs[0].source_max_drop_percent", "100 switches"),
        ({"source_max_drop_percent": True}, "jobs[0].source_max_drop_percent", "give a share such as 10"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_source_shrink("jobs[0]", raw)
        assert caught.value.path == path and words in str(caught.value)
        assert caught.value.fix
