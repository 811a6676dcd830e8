"""The value types every part of the engine shares: a source object, its mapped attributes, what the
state knows of it, and what a cycle did.

The ones made once per object per cycle (`SourceObject`, `Mapped`, `StateEntry`) are plain slotted
dataclasses, not frozen: a frozen dataclass sets each field through `object.__setattr__`, which made
building one three times as costly on the hottest path of a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(slots=True)
class SourceObject:
    """One identity as the source holds it. `line` is where it was read (1-based, 0 if unknown).

    Not frozen, like the other values made once per object per cycle: a frozen dataclass sets each
    field through `object.__setattr__`, three times the cost of building it, on the hottest path."""

    source_id: str
    attributes: dict[str, Any]
    line: int = 0


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """A row that was skipped, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class Mapped:
    """The mapped attributes of one object and the hash that change detection compares (made once per
    object per cycle: not frozen, see `SourceObject`)."""

    attributes: dict[str, Any]
    create_only: dict[str, Any]
    hash: str
    pending: int = 0
    """Reference values that did not resolve to a target id, and were left empty."""


Deprovision = Literal["disable", "delete", "none"]
"""What a job does to an object that left the source or its scope."""

ACTIVE = "active"
DISABLED = "disabled"


@dataclass(slots=True)
class StateEntry:
    """What the state knows of one object: where it is in the target and what was applied (made once
    per object per cycle when the snapshot loads: not frozen, see `SourceObject`)."""

    target_id: str | None
    applied_hash: str | None
    state: str  # ACTIVE or DISABLED; an object with no entry was never applied (or was deleted)
    disabled_at: float | None = field(default=None, compare=False)
    """When it was disabled (Unix seconds), while DISABLED: a leaver's grace counts from it (a time,
    not part of what the entry is: entries compare without it)."""


HoldKind = Literal["incomplete_read", "source_shrink", "deletion_guard", "mass_change"]


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a cycle's deprovisions (or, for `mass_change`, its updates that change one attribute) are
    held for approval: one check that tripped, and its reason in words (see `engine.core.policies`)."""

    kind: HoldKind
    reason: str

    def __str__(self) -> str:
        return f"{self.kind.replace('_', ' ')}: {self.reason}"


MEMBER_FAILURES_SHOWN = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleSummary:
    """What one cycle did, as the CLI's summary table and the cycle history show it."""

    cycle_id: str
    job: str
    status: str
    """succeeded; held (deprovisions wait for approval); incomplete (source rows could not be read);
    completed_with_failures; quarantined; failed (the source could not be read)"""
    read: int
    created: int = 0
    updated: int = 0
    disabled: int = 0
    deleted: int = 0
    unchanged: int = 0
    out_of_scope: int = 0
    not_started: int = 0
    """Read before their prehire days (`dates:`): not created yet."""
    ended: int = 0
    """Read past their end date (`dates:`): deprovisioned as leavers (`disabled`, `deleted`), or were."""
    failed: int = 0
    retries: int = 0
    skipped_rows: int = 0
    """Source rows that could not be read: more than 0 makes the read incomplete."""
    staged: int = 0
    """Operations held until `roster approve` (or dropped by `roster reject`), for the `holds`."""
    staged_updates: int = 0
    """Of those, the updates the mass-change guard held (the others are deprovisions)."""
    holds: tuple[Hold, ...] = ()
    """Why they are held: an incomplete read, a source that shrank, the deletion guard (deprovisions);
    the mass-change guard (updates)."""
    quarantined: str | None = None
    """Why the job went into (or stayed in) quarantine during this cycle."""
    pending_members: int = 0
    """Group members not provisioned yet: their groups are sent without them and planned again later."""
    pending_references: int = 0
    """References sent empty because the object they name has no target id yet (set in a later cycle)."""
    failed_members: tuple[tuple[str, str], ...] = ()
    """Of those, the members whose own operation failed (member source id, its error), which arrive
    only once fixed: at most `MEMBER_FAILURES_SHOWN`."""
    elapsed_s: float = 0.0
    p50_latency_ms: float | None = None
    p99_latency_ms: float | None = None
    error: str | None = None
    problems: tuple[SourceProblem, ...] = field(default=())
    last_reconciled: tuple[float, dict[str, Any]] | None = None
    """When the job's target was last read back (`roster reconcile`) and the counts per situation found:
    what a summary may say of the target itself, beyond what the state says was applied."""

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.disabled + self.deleted + self.failed

    @property
    def ops_per_s(self) -> float:
        return self.changed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def counts(self) -> dict[str, int | float | None]:
        return {
            "read": self.read,
            "created": self.created,
            "updated": self.updated,
            "disabled": self.disabled,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "out_of_scope": self.out_of_scope,
            "failed": self.failed,
            "retries": self.retries,
            "skipped_rows": self.skipped_rows,
            "pending_members": self.pending_members,
            "pending_references": self.pending_references,
            "staged": self.staged,
            "elapsed_s": round(self.elapsed_s, 3),
            **({"not_started": self.not_started} if self.not_started else {}),
            **({"ended": self.ended} if self.ended else {}),
        }


LOST = "lost-in-transit"
"""The status of the log record of an operation that got no result before its cycle's deadline."""


@dataclass(frozen=True, slots=True)
class Unapplied:
    """An operation that no target result stands behind: what its log record needs. An update held for
    approval is kept as one, without the attributes it would send (a cycle may hold hundreds of
    thousands until its read ends)."""

    op_id: str
    cycle_id: str
    job: str
    source_id: str
    action: str
    target_id: str | None


@dataclass(frozen=True, slots=True)
class Lost(Unapplied):
    """An operation given up at its cycle's deadline, with the attributes it sent (JSON)."""

    attributes: str
