"""The accidental-deletion guard: a cycle that would deprovision too much asks first.

A source file cut in half looks exactly like half the company leaving. When a cycle would disable or
delete more objects than the job's threshold (a count, or a share of the objects the job holds), those
operations are staged instead of published, the job waits for approval, and everything else in the
cycle proceeds. `roster approve JOB` runs them; `roster reject JOB` drops them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config.validation import as_mapping, check_keys, integer, join, number
from common.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletionGuard:
    """Trips when deprovisions exceed `count`, or exceed `percent` of the objects the job holds."""

    count: int = 500
    percent: float = 20.0
    enabled: bool = True

    def trips(self, deprovisions: int, held: int) -> bool:
        if not self.enabled or deprovisions == 0:
            return False
        return deprovisions > self.count or deprovisions * 100.0 > self.percent * max(held, 1)

    def describe(self, deprovisions: int, held: int) -> str:
        share = deprovisions * 100.0 / max(held, 1)
        return (
            f"{deprovisions} of {held} objects would be disabled or deleted ({share:.0f}%), above the "
            f"threshold of {self.count} or {self.percent:g}%"
        )


def parse_deletion_guard(path: str, raw: Any) -> DeletionGuard:
    """`deletion_guard: {count: 500, percent: 20}` (the defaults), or `false` to switch it off."""
    if raw is False:
        return DeletionGuard(enabled=False)
    if raw is None or raw is True:
        return DeletionGuard()
    raw = as_mapping(path, raw)
    check_keys(path, raw, ("count", "percent"))
    percent = number(join(path, "percent"), raw.get("percent", 20.0), minimum=0)
    if percent > 100:
        raise ConfigError(join(path, "percent"), f"is {percent:g}, above 100", "give a share such as 20")
    return DeletionGuard(
        count=integer(join(path, "count"), raw.get("count", 500), minimum=0), percent=percent
    )
