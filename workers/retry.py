"""Retry tiers: how long a transiently failed operation waits before its next attempt.

The delays grow exponentially (`first_delay_ms * multiplier ** (attempt - 1)`), one tier per attempt,
and each is spread by +/- `jitter` so that a target that came back is not hit by every retry at once.
After the last tier an operation is dead-lettered and reported failed ("retries exhausted").
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    tiers: int = 5
    first_delay_ms: int = 1_000
    multiplier: float = 4.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.tiers < 0 or self.first_delay_ms < 0 or self.multiplier < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid retry policy {self!r}")

    def tier_delay_ms(self, attempt: int) -> int:
        """The nominal delay before attempt `attempt + 1`, after attempt `attempt` failed."""
        return round(self.first_delay_ms * self.multiplier ** (attempt - 1))

    def delay_ms(self, attempt: int, rng: random.Random | None = None) -> int | None:
        """The jittered delay before the next attempt, or None when the tiers are used up."""
        if attempt > self.tiers:
            return None
        nominal = self.tier_delay_ms(attempt)
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0, round(nominal * (1 + spread)))
