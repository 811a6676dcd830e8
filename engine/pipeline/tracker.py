"""Tracks operations in flight and the progress of running cycles, from the results as they come in.

It is the engine's memory of "at most one operation per object in flight": the planner skips a source
id that is here, and the cycle runner plans it again once its result is in. A duplicate result (a
redelivered batch) settles nothing twice.

A cycle whose results stop coming has a deadline: `expire` then gives up on its unanswered operations
(they become `lost-in-transit` log records, see `engine.pipeline.results`) and forgets them, so that the
next cycle plans them again. A result that arrives after that is late: the tracker no longer knows its
operation, so it counts nowhere and frees no other operation of the same object.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.core.changes import log_text
from engine.model import LOST, Lost
from queues.contracts import Operation, Result

ACTION_COUNTS = {"create": "created", "update": "updated", "disable": "disabled", "delete": "deleted"}


@dataclass
class CycleProgress:
    """Counts of one cycle; `done` is set once planning finished and every operation has a result."""

    cycle_id: str
    job: str
    counts: Counter[str] = field(default_factory=Counter)
    read: int = 0
    outstanding: int = 0
    planned: int = 0
    planning_done: bool = False
    retries: int = 0
    lost: int = 0
    latencies_s: array = field(default_factory=lambda: array("d"))
    done: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = field(default_factory=time.time)
    heard_at: float | None = None
    """When a result of this cycle last came in (or planning finished): its deadline counts from here."""
    deadline_s: float | None = None
    """Set once planning is done: how long the cycle waits without hearing from its operations."""

    @property
    def settled(self) -> int:
        return self.planned - self.outstanding

    @property
    def deadline_at(self) -> float | None:
        """When the cycle gives up on its unanswered operations (Unix seconds), once it waits."""
        if self.deadline_s is None or self.heard_at is None:
            return None
        return self.heard_at + self.deadline_s

    def past_deadline(self, now: float | None = None) -> bool:
        deadline_at = self.deadline_at
        return (
            deadline_at is not None
            and not self.done.is_set()
            and (time.time() if now is None else now) > deadline_at
        )

    def _check_done(self) -> None:
        if self.planning_done and self.outstanding == 0:
            self.done.set()


class Tracker:
    """Operations in flight by op id, per job by source id, and the progress of each cycle."""

    def __init__(self, redacted: Mapping[str, frozenset[str]] | None = None) -> None:
        # op id -> its cycle, job, source id, action, target id and the attributes it sends, as JSON for
        # the log ("" for none; values of `redacted[job]` hidden), until its final result; JSON rather
        # than the operation, several times its memory
        self._ops: dict[str, tuple[str, str, str, str, str | None, str]] = {}
        self._redacted = redacted or {}
        self._in_flight: dict[str, dict[str, str]] = {}  # job -> source id -> op id
        self._cycles: dict[str, CycleProgress] = {}

    def start_cycle(self, cycle_id: str, job: str) -> CycleProgress:
        progress = CycleProgress(cycle_id, job)
        self._cycles[cycle_id] = progress
        return progress

    def running(self, job: str) -> list[CycleProgress]:
        """The job's cycles in progress (one, or an on-demand one beside it)."""
        return [progress for progress in self._cycles.values() if progress.job == job]

    def health(self, *, grace_s: float = 30.0) -> tuple[bool, dict[str, object]]:
        """For `/healthz`: the cycles past their deadline; unhealthy once one is past it by `grace_s`
        (the give-up is due at the deadline, so a cycle still waiting later means it cannot happen)."""
        now = time.time()
        overdue = [p for p in self._cycles.values() if p.past_deadline(now)]
        details: dict[str, object] = {
            "cycles_past_deadline": [
                {
                    "job": p.job,
                    "cycle_id": p.cycle_id,
                    "running_s": round(now - p.started_at, 1),
                    "past_deadline_s": round(now - (p.deadline_at or now), 1),
                    "awaiting": p.outstanding,
                }
                for p in overdue
            ]
        }
        return not any(p.past_deadline(now - grace_s) for p in overdue), details

    def end_cycle(self, cycle_id: str) -> None:
        self._cycles.pop(cycle_id, None)

    def planning_done(self, cycle_id: str, deadline_s: float | None = None) -> None:
        """Planning has published everything; with `deadline_s`, the wait for results has a deadline."""
        progress = self._cycles[cycle_id]
        progress.planning_done = True
        progress.deadline_s = deadline_s
        progress.heard_at = time.time()
        progress._check_done()

    def expire(self, cycle_id: str) -> list[Lost]:
        """Give up on the cycle's operations that have no final result: forget them (the next cycle
        plans their objects again) and return them for their log records."""
        progress = self._cycles.get(cycle_id)
        ops = self._ops
        lost = [Lost(op_id, *pending) for op_id, pending in ops.items() if pending[0] == cycle_id]
        for item in lost:
            del ops[item.op_id]
            job_flight = self._in_flight.get(item.job)
            if job_flight is not None and job_flight.get(item.source_id) == item.op_id:
                del job_flight[item.source_id]
        if progress is not None and lost:
            progress.outstanding -= len(lost)
            progress.lost += len(lost)
            progress.counts[LOST] += len(lost)
            progress.counts["failed"] += len(lost)  # the summary counts them among what did not work
            progress._check_done()
        return lost

    def pending(self, op_id: str) -> bool:
        """Whether the operation awaits its final result (False for one given up, or unknown)."""
        return op_id in self._ops

    def in_flight(self, job: str) -> set[str]:
        """The live set of the job's source ids with an unfinished operation."""
        return self._in_flight.setdefault(job, {}).keys()  # type: ignore[return-value]

    def in_flight_counts(self) -> dict[str, int]:
        """Operations awaiting their final result, per job (read by the metrics at scrape time)."""
        return {job: len(ops) for job, ops in self._in_flight.items()}

    def register(self, op: Operation) -> None:
        self._ops[op.op_id] = (op.cycle_id, op.job, op.source_id, op.action, op.target_id, self._sending(op))
        self._in_flight.setdefault(op.job, {})[op.source_id] = op.op_id
        progress = self._cycles.get(op.cycle_id)
        if progress is not None:
            progress.planned += 1
            progress.outstanding += 1

    def sent(self, results: Iterable[Result]) -> dict[str, str]:
        """The attributes each result's operation sent, as JSON for the log (by op id); an operation
        from before a restart of the engine is not known."""
        ops = self._ops
        return {r.op_id: pending[5] for r in results if (pending := ops.get(r.op_id)) and pending[5]}

    def _sending(self, op: Operation) -> str:
        if not op.attributes:
            return ""
        return log_text(op.attributes, self._redacted.get(op.job, ()))

    def record_unpublished(self, cycle_id: str, results: Iterable[Result]) -> None:
        """Count failures that never became an operation (an object whose mapping failed)."""
        progress = self._cycles.get(cycle_id)
        if progress is not None:
            for result in results:
                progress.counts[result.status] += 1

    def settle(self, results: Iterable[Result]) -> None:
        """Count each final result once in its cycle's progress and forget its operation; an interim
        (retrying) result counts as a retry. Runs once per result on the engine's busiest path, so the
        checks are spelled out rather than taken through properties."""
        ops = self._ops
        cycles = self._cycles
        in_flight = self._in_flight
        touched: dict[str, CycleProgress] = {}
        now = time.time()
        for result in results:
            op_id = result.op_id
            progress = cycles.get(result.cycle_id)
            status = result.status
            if status == "retrying":
                if progress is not None and op_id in ops:
                    progress.retries += 1
                    progress.heard_at = now  # alive, in a retry tier
                continue
            if ops.pop(op_id, None) is None:
                continue  # a duplicate, or a result of an operation from before a restart
            job_flight = in_flight.get(result.job)
            if job_flight is not None and job_flight.get(result.source_id) == op_id:
                del job_flight[result.source_id]
            if progress is None:
                continue
            progress.outstanding -= 1
            progress.heard_at = now
            progress.counts[ACTION_COUNTS[result.action] if status == "succeeded" else status] += 1
            progress.latencies_s.append(result.completed_at - result.emitted_at)
            touched[result.cycle_id] = progress
        for progress in touched.values():
            progress._check_done()
