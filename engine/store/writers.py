"""The turn of the state store's writers on SQLite: one at a time, those that answer a client first.

SQLite takes one writer at a time, and a second one waits in SQLite's busy handler, which polls in
sleeps of up to 100 ms. So a process's writers queue here instead, and each takes the database the
moment the one before lets it go. An *urgent* writer (the inbound service's mirror, whose client waits
for the commit) goes before the others that wait, but never interrupts one that writes: it waits for
at most one transaction, not for the queue of a cycle's writes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriterTurns:
    """A lock with two queues: urgent waiters are woken before the others."""

    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held and not self._urgent and not self._others:
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._others).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed the turn as it was cancelled
                self._release()
            else:
                (self._urgent if urgent else self._others).remove(waiter)
            raise

    def _release(self) -> None:
        for queue in (self._urgent, self._others):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the turn passes on: still held
                    return
        self._held = False
