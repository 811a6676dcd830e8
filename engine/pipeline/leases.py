"""The leases of the cycles this process runs: claimed at a cycle's start, renewed while it runs.

At start, and at each renewal, the running cycles of processes that are gone (lease expired, or a dead
pid on this host) are recorded as `interrupted` (see `engine.store.history`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import sqlalchemy as sa

from engine.store.history import LEASE_S, interrupt_abandoned, process_owner, renew_leases
from engine.store.state import StateStore

log = logging.getLogger("roster.engine.leases")


class CycleLeases:
    """Owner of this process's running cycles; `start` sweeps the abandoned ones and keeps renewing."""

    def __init__(self, state: StateStore, *, lease_s: float = LEASE_S) -> None:
        self._state = state
        self.lease_s = lease_s
        self.owner = process_owner()
        self._task: asyncio.Task[None] | None = None

    def claim(self) -> dict[str, Any]:
        """The owner and lease columns of a cycle that starts now (keywords of `start_cycle`)."""
        return {"owner": self.owner, "lease_until": time.time() + self.lease_s}

    async def start(self) -> None:
        await interrupt_abandoned(self._state, me=self.owner)
        if self._task is None:
            self._task = asyncio.create_task(self._keep(), name="roster-cycle-leases")

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await renew_leases(self._state, self.owner, lease_s=self.lease_s)
                await interrupt_abandoned(self._state, me=self.owner)
            except (sa.exc.SQLAlchemyError, OSError):
                log.exception("event=lease_renewal_failed")  # tried again at the next turn

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
