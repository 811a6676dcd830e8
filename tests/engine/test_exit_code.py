"""`roster run` and `roster engine --once` exit with what their cycles deserve: 0 all good, 1 something
failed, 3 nothing failed but a person must look (an incomplete read, operations held for approval)."""

from __future__ import annotations

import pytest

from engine.cli.report import exit_code
from engine.model import CycleSummary


def _cycle(status: str) -> CycleSummary:
    return CycleSummary(cycle_id="c", job="people", status=status, read=1)


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ((), 0),
        (("succeeded", "succeeded"), 0),
        (("succeeded", "held"), 3),
        (("incomplete",), 3),
        (("held", "completed_with_failures"), 1),
        (("incomplete", "failed"), 1),
        (("quarantined", "succeeded"), 1),
    ],
)
def test_the_exit_code_is_the_worst_of_the_cycles(statuses: tuple[str, ...], code: int) -> None:
    assert exit_code([_cycle(status) for status in statuses]) == code
