"""Job control: the switches that the cycle runner and the scheduler obey, kept in the state store.

Per job: paused (a running cycle publishes nothing new until resumed; no new cycle starts), quarantined
(with its reason; see `engine.core.policies`), and waiting for approval (deprovisions staged by the
deletion guard, an incomplete read or a shrunk source; see `engine.core.policies`), with the count of the
last complete read that the shrink check compares with. They survive a restart of the engine, since they
live in the state store; the failure windows that trip a quarantine are in memory and start empty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

from engine.core.policies import FailureWindow, QuarantineSettings
from engine.store.state import StateStore
from queues.contracts import Result

log = logging.getLogger("roster.engine.control")

ACTIVE = "active"
PAUSED = "paused"
QUARANTINED = "quarantined"
WAITING_FOR_APPROVAL = "waiting_for_approval"


@dataclass(frozen=True, slots=True)
class JobSwitches:
    """What the state store keeps of one job's control."""

    paused: bool = False
    quarantine_reason: str | None = None
    quarantined_at: float | None = None
    quarantined_cycles: int = 0
    approval_reason: str | None = None
    watermark: str | None = None
    """Where the last incremental read of the source ended (what the next one reads since)."""
    last_full_at: float | None = None
    """When the last full import ended."""
    last_complete_read: int | None = None
    """How many objects the last complete full read had (what the source shrink check compares with)."""
    moves_seen: int | None = None
    """The last move (`StateStore.moves`) the job's references were checked against."""

    @property
    def state(self) -> str:
        """The one word a status shows: paused beats waiting for approval beats quarantined."""
        if self.paused:
            return PAUSED
        if self.approval_reason is not None:
            return WAITING_FOR_APPROVAL
        if self.quarantine_reason is not None:
            return QUARANTINED
        return ACTIVE


_UNSET = JobSwitches()


class JobControl:
    """The switches of every job, read once from the state store and written through to it."""

    def __init__(self, state: StateStore, settings: QuarantineSettings | None = None) -> None:
        self._state = state
        self.settings = settings or QuarantineSettings()
        self._switches: dict[str, JobSwitches] = {}
        self._windows: dict[str, FailureWindow] = {}
        self._resumed: dict[str, asyncio.Event] = {}

    async def load(self) -> None:
        self._switches = {job: JobSwitches(**row) for job, row in (await self._state.job_switches()).items()}
        for job, switches in self._switches.items():
            if switches.paused:
                self._event(job).clear()
            else:
                self._event(job).set()

    def switches(self, job: str) -> JobSwitches:
        return self._switches.get(job, _UNSET)

    # -- Pause ---------------------------------------------------------------------------------------

    def paused(self, job: str) -> bool:
        return self.switches(job).paused

    async def wait_resumed(self, job: str) -> None:
        await self._event(job).wait()

    async def pause(self, job: str) -> None:
        await self._save(job, paused=True)
        self._event(job).clear()
        log.info("event=job_paused job=%s", job)

    async def resume(self, job: str) -> None:
        await self._save(job, paused=False)
        self._event(job).set()
        log.info("event=job_resumed job=%s", job)

    # -- Quarantine ----------------------------------------------------------------------------------

    def observe(self, results: Iterable[Result]) -> None:
        """Feed final results to their job's failure window (called by the result consumer)."""
        by_job: dict[str, list[Result]] = {}
        for result in results:
            by_job.setdefault(result.job, []).append(result)
        for job, batch in by_job.items():
            self._window(job).add(batch)

    def verdict(self, job: str) -> str | None:
        """The reason to quarantine `job` now, if its recent results give one."""
        return self._window(job).reason

    async def quarantine(self, job: str, reason: str) -> None:
        switches = self.switches(job)
        if switches.quarantine_reason is None:
            log.warning("event=job_quarantined job=%s reason=%r", job, reason)
            await self._save(job, quarantine_reason=reason, quarantined_at=time.time(), quarantined_cycles=0)
        elif switches.quarantine_reason != reason:
            await self._save(job, quarantine_reason=reason)

    async def start_quarantined_cycle(self, job: str) -> None:
        """A cycle of a quarantined job starts: it is judged on its own results only."""
        self._window(job).clear()
        switches = self.switches(job)
        await self._save(job, quarantined_cycles=switches.quarantined_cycles + 1)

    async def release(self, job: str, why: str) -> None:
        if self.switches(job).quarantine_reason is not None:
            log.info("event=job_released job=%s why=%r", job, why)
            await self._save(job, quarantine_reason=None, quarantined_at=None, quarantined_cycles=0)
        self._window(job).clear()

    # -- Approval ------------------------------------------------------------------------------------

    async def stage(self, job: str, cycle_id: str, reason: str, entries: Sequence[tuple[str, str]]) -> None:
        """Hold deprovisions `(source id, action)` for approval; they replace any held before."""
        await self._state.stage(job, cycle_id, entries)
        await self._save(job, approval_reason=reason)
        log.warning("event=deprovisions_staged job=%s count=%d reason=%r", job, len(entries), reason)

    async def staged(self, job: str) -> list[tuple[str, str]]:
        return await self._state.staged(job)

    async def clear_staged(self, job: str) -> None:
        if self.switches(job).approval_reason is not None:
            await self._state.stage(job, None, ())
            await self._save(job, approval_reason=None)

    # -- Incremental reads ---------------------------------------------------------------------------

    def since(self, job: str, full_import_every_s: float) -> str | None:
        """The watermark to read changes since, or None when the next read must be a full import."""
        switches = self.switches(job)
        if switches.watermark is None or switches.last_full_at is None:
            return None
        return switches.watermark if time.time() - switches.last_full_at < full_import_every_s else None

    async def read_done(self, job: str, watermark: str | None, *, full: bool) -> None:
        """A read whose objects all succeeded ended at `watermark`: the next reads go on from there."""
        changes: dict[str, object] = {"watermark": watermark}
        if full:
            changes["last_full_at"] = time.time()
        await self._save(job, **changes)

    # -- Source shrink -------------------------------------------------------------------------------

    def last_complete_read(self, job: str) -> int | None:
        return self.switches(job).last_complete_read

    async def complete_read(self, job: str, objects: int) -> None:
        """A complete full read of `objects` objects passed the shrink check: the next reads compare
        with it."""
        if self.switches(job).last_complete_read != objects:
            await self._save(job, last_complete_read=objects)

    def moves_seen(self, job: str) -> int | None:
        return self.switches(job).moves_seen

    async def saw_moves(self, job: str, seq: int) -> None:
        """Record that the objects of `job` pointing at what moved up to move `seq` were planned."""
        if self.switches(job).moves_seen != seq:
            await self._save(job, moves_seen=seq)

    # -- Restart and reset ---------------------------------------------------------------------------

    async def restart(self, job: str) -> None:
        """Forget the quarantine, the staged deprovisions and the watermark (the next read is a full
        import); keep the links to target objects."""
        await self.release(job, "restart")
        await self.clear_staged(job)
        if self.switches(job).watermark is not None:
            await self._save(job, watermark=None, last_full_at=None)

    async def reset(self, job: str) -> None:
        """A restart that also forgets every link: the next cycle matches each object again."""
        await self.restart(job)
        await self._state.forget(job)

    # -- Internals -----------------------------------------------------------------------------------

    def _event(self, job: str) -> asyncio.Event:
        event = self._resumed.get(job)
        if event is None:
            event = self._resumed[job] = asyncio.Event()
            if not self.paused(job):
                event.set()
        return event

    def _window(self, job: str) -> FailureWindow:
        window = self._windows.get(job)
        if window is None:
            window = self._windows[job] = FailureWindow(self.settings)
        return window

    async def _save(self, job: str, **changes: object) -> None:
        switches = replace(self.switches(job), **changes)  # type: ignore[arg-type]
        await self._state.save_job_switches(job, asdict(switches))
        self._switches[job] = switches
