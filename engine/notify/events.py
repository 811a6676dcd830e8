"""The events a person must act on, as the engine sees them: from each cycle that ends, and from the
fleet when a worker stops answering.

A state that lasts is said once when it begins, not at every cycle that finds it again: a job's held
deprovisions when their count or reasons change, a quarantine when it starts, failing cycles at the first
one after a cycle that did not fail. (`EventFilter` remembers per job, in memory: after a restart the
first such cycle is said again.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.model import CycleSummary

APPROVE = "approve or reject them on the console's Approvals page, or with `roster approve` / `roster reject`"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One event: its type, the job it is of (None: of none), a subject line, a text that says what
    happened and what to do, and its details for a program."""

    type: str
    job: str | None
    subject: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def body(self, delivery: int) -> dict[str, Any]:
        """The JSON a webhook receives (its `id` the delivery's, the same on every retry)."""
        return {
            "id": delivery,
            "event": self.type,
            "job": self.job,
            "at": self.at,
            "subject": self.subject,
            "text": self.text,
            "details": self.details,
        }


class EventFilter:
    """Turns cycle summaries into events, each lasting state once (see the module doc)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._quarantined: set[str] = set()
        self._failing: set[str] = set()

    def of_cycle(self, summary: CycleSummary) -> list[Event]:
        job, events = summary.job, []
        details = {"cycle_id": summary.cycle_id, "status": summary.status, "counts": summary.counts()}
        held = (summary.staged, tuple(str(hold) for hold in summary.holds))
        if summary.staged and self._held.get(job) != held:
            reasons = "; ".join(held[1]) or "held for approval"
            events.append(
                Event(
                    type="deletions_held",
                    job=job,
                    subject=f"Roster: {summary.staged} deprovision(s) of job {job} held for approval",
                    text=(
                        f"Cycle {summary.cycle_id} of job {job} held {summary.staged} deprovision(s) for "
                        f"approval ({reasons}); nothing of them was sent. To go on, {APPROVE}."
                    ),
                    details={**details, "held": summary.staged, "holds": list(held[1])},
                )
            )
        if summary.staged:
            self._held[job] = held
        else:
            self._held.pop(job, None)
        if summary.quarantined is not None and job not in self._quarantined:
            events.append(
                Event(
                    type="job_quarantined",
                    job=job,
                    subject=f"Roster: job {job} quarantined",
                    text=(
                        f"Job {job} is quarantined ({summary.quarantined}): its cycles come backed off "
                        "and send nothing until released. Fix the cause, then restart the job (the "
                        "console's job page, or `roster restart`)."
                    ),
                    details={**details, "reason": summary.quarantined},
                )
            )
        if summary.quarantined is not None:
            self._quarantined.add(job)
        elif summary.status in ("succeeded", "held", "incomplete"):
            self._quarantined.discard(job)
        if summary.status == "failed" and job not in self._failing:
            why = summary.error or f"{summary.failed} operation(s) failed"
            events.append(
                Event(
                    type="cycle_failed",
                    job=job,
                    subject=f"Roster: cycle of job {job} failed",
                    text=(
                        f"Cycle {summary.cycle_id} of job {job} failed: {why}. The provisioning log has "
                        "each failure; further failed cycles are not said until one succeeds."
                    ),
                    details={**details, "error": summary.error},
                )
            )
        if summary.status == "failed":
            self._failing.add(job)
        else:
            self._failing.discard(job)
        return events


def worker_gone(worker: str, host: str, targets: list[str], reason: str) -> Event:
    """A worker that stopped answering (not one that left cleanly)."""
    served = ", ".join(targets) or "no target"
    return Event(
        type="worker_gone",
        job=None,
        subject=f"Roster: worker {worker} on {host} is gone",
        text=(
            f"Worker {worker} on {host}, serving {served}, is gone ({reason}). Its batches in flight come "
            "back to the queue for another worker; if none serves those targets, start one."
        ),
        details={"worker": worker, "host": host, "targets": targets, "reason": reason},
    )


def account_created(job: str, source_id: str, target_id: str | None) -> Event:
    """A person's account created by a cycle (not a job's first load)."""
    return Event(
        type="account_created",
        job=job,
        subject=f"Roster: account created for {source_id} in job {job}",
        text=(
            f"Job {job} created the account of {source_id} (in the target: {target_id or 'no id'}). "
            "The console's person page shows what it holds."
        ),
        details={"source_id": source_id, "target_id": target_id},
    )
