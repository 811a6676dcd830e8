"""Limits on the calls a worker makes to one target: concurrency, rate, and a pause when it pushes back.

A `Gate` is shared by every call to one target, whichever batch it belongs to. A call waits, in order,
for a concurrency slot (a semaphore), for the end of any pause the target asked for (429/503 with
`Retry-After`), and for its turn under the rate limit. The rate limit spaces calls evenly (a token bucket
holding a single token, i.e. GCRA), and no one-second window ever holds more than `rate_per_s` calls,
even right after a pause or a stall of the event loop: a bucket that filled up while idle would
otherwise release a burst exactly when the target asked us to slow down.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class RateLimiter:
    """At most `rate_per_s` calls in any one second, spaced `1 / rate_per_s` apart.

    Each caller reserves the next free instant and sleeps until then (GCRA), which spreads calls
    evenly. Timers fire late when the loop is busy, and callers whose instants have passed would then
    leave together; so a call is also held until fewer than `ceil(rate_per_s)` calls left in the
    last second, counted by the time they actually left. A stall thus only ever lowers the rate.
    """

    def __init__(self, rate_per_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be above 0, got {rate_per_s}")
        self.interval_s = 1.0 / rate_per_s
        self._clock = clock
        self._next = 0.0
        self._sent: deque[float] = deque(maxlen=max(1, math.ceil(rate_per_s)))

    async def acquire(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval_s
        if slot > now:
            await asyncio.sleep(slot - now)
        sent = self._sent
        while True:
            now = self._clock()
            if len(sent) < (sent.maxlen or 1) or now - sent[0] >= 1.0:
                sent.append(now)  # no await between the check and this: no other caller slips in
                return
            await asyncio.sleep(sent[0] + 1.0 - now)


class Pause:
    """A target-wide pause: every call waits until the deadline; a new pause only ever extends it."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self.count = 0  # pauses asked for, and the time they added up to (for the metrics)
        self.paused_s = 0.0

    @property
    def remaining_s(self) -> float:
        return max(0.0, self._until - self._clock())

    def extend(self, seconds: float) -> None:
        now = self._clock()
        until = max(self._until, now + max(0.0, seconds))
        self.count += 1
        self.paused_s += until - max(self._until, now)
        self._until = until

    async def wait(self) -> None:
        while (left := self._until - self._clock()) > 0:
            await asyncio.sleep(left)


class Gate:
    """Concurrency, pause and rate for one target; `async with gate.slot():` around each call."""

    def __init__(self, *, max_concurrency: int, rate_per_s: float | None = None) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self.pause = Pause()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._rate = RateLimiter(rate_per_s) if rate_per_s else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            await self.pause.wait()
            if self._rate is not None:
                await self._rate.acquire()
                # A pause set while this call waited for its turn holds it too; its turn is then spent,
                # which only makes the rate lower, never higher.
                while self.pause.remaining_s > 0:
                    await self.pause.wait()
                    await self._rate.acquire()
            yield
