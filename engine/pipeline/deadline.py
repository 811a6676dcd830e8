"""How long a cycle waits for the results of its operations before it gives up on the unanswered ones.

The deadline counts from the last result of the cycle (a retry report counts: the operation is alive),
so a cycle that keeps hearing from its operations never reaches it, however long it runs. It grows with
the batches the cycle still awaits once planning is done, since a worker applies them a few at a time.
The base must outlast the workers' longest retry tier (by default 256 s plus jitter): an operation that
waits in a tier sends no word until its next attempt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.config.validation import as_mapping, check_keys, number, positive
from common.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineSettings:
    base_s: float = 360.0
    per_batch_s: float = 2.0

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.per_batch_s >= 0):
            raise ValueError(f"invalid deadline settings {self!r}")

    def for_ops(self, outstanding: int, batch_size: int) -> float:
        """The deadline of a cycle that awaits `outstanding` operations sent `batch_size` a message."""
        return self.base_s + self.per_batch_s * math.ceil(outstanding / max(batch_size, 1))


_FIXES = {
    "base_s": "give the seconds a cycle waits without any result, longer than the workers' longest "
    "retry delay, such as 360",
    "per_batch_s": "give the seconds added per batch the cycle awaits, such as 2 (0 for none)",
}
_WEEK_S = 7 * 86_400.0


def parse_deadline(path: str, raw: Any) -> DeadlineSettings:
    """`engine.deadline: {base_s: 360, per_batch_s: 2}`; a wrong value names its key and the fix."""
    settings: Mapping[str, Any] = as_mapping(path, raw or {})
    check_keys(path, settings, tuple(_FIXES))
    values: dict[str, float] = {}
    for key, fix in _FIXES.items():
        if key not in settings:
            continue
        where = f"{path}.{key}"
        try:
            value = (
                positive(where, settings[key]) if key == "base_s" else number(where, settings[key], minimum=0)
            )
        except ConfigError as exc:
            raise ConfigError(exc.path, exc.problem, fix) from None
        if not value <= _WEEK_S:  # NaN and inf too
            raise ConfigError(where, f"{settings[key]!r} is out of range", f"{fix}; at most a week")
        values[key] = value
    return DeadlineSettings(**values)
