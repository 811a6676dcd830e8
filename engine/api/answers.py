"""The admin API's answers: one frozen value type per shape of JSON it sends.

`engine.api.admin.Admin` returns these, `engine.api.routes` serializes them (fields in declaration order,
fields whose name starts with `_` left out), and `engine.api.openapi` builds the document's schemas
from their fields and type hints, so the document and the answers come from one source. A field's
docstring becomes its description there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from engine.core.reconcile import SITUATIONS
from engine.model import CycleSummary
from engine.pipeline.ondemand import Preview
from engine.store.state import RECONCILE, STAGED_DELETE, STAGED_UPDATE
from queues.contracts import ACTIONS, STATUSES

LOG_STATUSES = frozenset({*STATUSES, "warning", *SITUATIONS})
"""Every status a provisioning log record can have (`warning`: a deprovision held for approval)."""
LOG_ACTIONS = frozenset({*ACTIONS, STAGED_DELETE, STAGED_UPDATE, RECONCILE})

JobState = Literal["active", "paused", "quarantined", "waiting_for_approval"]
ObjectType = Literal["user", "group"]
Counts = dict[str, int | float | None]
Count = Annotated[int, {"minimum": 0}]
NonEmpty = Annotated[str, {"minLength": 1}]
Comment = Annotated[str | None, {"minLength": 1, "maxLength": 2_000, "pattern": "\\S"}]
"""A comment for the audit trail, or none (null); a string has a character other than spaces."""


@dataclass(frozen=True, slots=True)
class Error:
    """Every answer other than success: a short code and a sentence that names the problem."""

    error: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Forbidden:
    """The token is good, but its account lacks the role the route needs."""

    error: Literal["forbidden"] = "forbidden"
    detail: str
    role: str
    """The role the route needs"""
    account: str
    roles: list[str]
    """The roles the account holds"""


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the engine is working; the health check's details ride beside `healthy`."""

    healthy: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Cycle:
    """One cycle of a job, as the cycle history holds it."""

    cycle_id: str
    job: str
    trigger: str
    """schedule, api, cli, approval, on_demand, after_reconcile (the cycle applying a reconciliation's
    corrections), or reconcile:HOW for a reconciliation (its counts are per situation)"""
    status: str
    """running, succeeded, held, incomplete, completed_with_failures, quarantined, failed, interrupted"""
    started_at: float
    """Unix seconds"""
    finished_at: float | None
    """Unix seconds"""
    counts: Counts
    duration_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarantine:
    reason: str
    since: float | None
    """Unix seconds"""
    cycles: int


@dataclass(frozen=True, slots=True)
class Approval:
    reason: str
    staged: Count
    """Operations held for approval: deprovisions (by the deletion guard, an incomplete read or a shrunk
    source) and updates (by the mass-change guard)"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Running:
    """The progress of a cycle in progress."""

    cycle_id: str
    read: Count
    planned: Count
    settled: Count
    retries: Count
    counts: dict[str, int]
    started_at: float
    """Unix seconds"""
    awaiting: Count
    """Operations published whose final result has not come yet"""
    deadline_at: float | None
    """Unix seconds: when the cycle gives up on the operations it awaits, unless a result comes first
    (null while it still plans)"""
    past_deadline: bool
    """True when the deadline passed and the cycle still waits: the engine cannot record the lost
    operations (the state store may be down)"""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStatus:
    """One job: its state and why, the running cycle's progress, the last cycles, the next run."""

    job: str
    target: str
    object_type: ObjectType
    state: JobState
    paused: bool
    quarantine: Quarantine | None
    approval: Approval | None
    running: list[Running]
    last_cycles: list[Cycle]
    next_run: Annotated[str | None, {"format": "date-time"}]
    last_reconciled: LastReconciled | None = None
    pending_deletions: list[PendingDeletion] = field(default_factory=list)
    """With `delete_after_days`: the disabled leavers, the first to be deleted first (at most 100)."""
    next_date_change: float | None = None
    """With `dates`: when the next person's prehire days, start or end date begins, as the last cycle
    read them (Unix seconds); the job runs then. None: none to come, or no cycle has read them yet."""


@dataclass(frozen=True, slots=True)
class PendingDeletion:
    """A leaver disabled and kept for the job's grace period, and when it is deleted if it does not
    come back (a deletion guard may still hold it then)."""

    source_id: str
    target_id: str | None
    disabled_at: Annotated[float, {"description": "Unix seconds"}]
    delete_at: Annotated[float, {"description": "Unix seconds"}]


@dataclass(frozen=True, slots=True)
class LastReconciled:
    """When the job's target was last read back, and what was found per situation."""

    at: Annotated[float, {"description": "Unix seconds"}]
    situations: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciled:
    """A reconciliation: the target's objects per situation, what was set in motion, the first findings
    in words, and the cycle that applied the corrections."""

    job: str
    cycle_id: str
    status: str
    """succeeded, held (orphan operations not sent, with the reason) or failed (nothing changed)"""
    situations: dict[str, int]
    corrections: dict[str, int]
    held: str | None
    error: str | None
    findings: list[str]
    cycle: CycleSummary | None


@dataclass(frozen=True, slots=True)
class JobList:
    jobs: list[JobStatus]
    warnings: list[str]
    """What the engine exposes without protection: plain HTTP beyond the loopback, unchecked TLS."""


@dataclass(frozen=True, slots=True)
class CycleList:
    job: str
    cycles: list[Cycle]


@dataclass(frozen=True, slots=True)
class Triggered:
    """A cycle of the job, started in the background: at once, or queued behind the one that runs."""

    job: str
    started: bool
    """True when the cycle started at once, False when it waits for the cycle that runs"""
    queued_behind: str | None = None
    """The running cycle it waits for"""
    running_s: float | None = None
    """How long that cycle has run, in seconds"""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Approved:
    """The staged operations approved, and the cycle that carried them out."""

    job: str
    approved: Count
    cycle: CycleSummary


@dataclass(frozen=True, slots=True)
class Rejected:
    job: str
    rejected: Count
    """Staged operations dropped"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogColumns:
    """What every provisioning log record holds, as its table stores it."""

    id: int
    at: float
    """Unix seconds"""
    cycle_id: str | None
    op_id: str | None
    job: str
    source_id: str | None
    target_id: str | None
    action: str
    status: str
    attempts: int | None
    error_class: str | None
    error_code: str | None
    error_message: str | None
    latency_ms: float | None
    duration_ms: float | None
    """The connector's time on the operation's batch"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord(LogColumns):
    """A provisioning log record as `/logs` reads it back."""

    attributes: dict[str, Any] | None
    """The attributes the operation sent; values of redacted mappings are ***"""
    steps: dict[str, str]
    """import, scope, match, action and export, each with its outcome"""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredRecord(LogColumns):
    """A provisioning log record as the state stores it (the records of an on-demand provision)."""

    attributes: str | None
    """The attributes the operation sent, as JSON text; values of redacted mappings are ***"""


@dataclass(frozen=True, slots=True)
class LogPage:
    records: list[LogRecord]
    next_after_id: int | None
    """Pass as after_id for the next page (oldest first); null on the last page or newest first"""
    next_before_id: int | None = None
    """Pass as before_id for the next page (newest first); null on the last page or oldest first"""
    next_cursor: str | None = None
    """Pass as cursor for the next page, in either order; null on the last page"""


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The failed operations of a cycle that failed the same way."""

    error: str
    """The error's class and code and its message, as the log records them."""
    count: Count
    source_ids: list[str]
    """The first few objects that failed so."""


@dataclass(frozen=True, slots=True)
class Gap:
    """An account deleted from the target, and the person who came back with its rehire key."""

    source_id: str
    """Who the deleted account was for."""
    target_id: str | None
    deleted_at: float
    returned_as: str | None
    """The source id the person came back under (None: not back yet)."""
    returned_at: float | None
    away_days: float | None


@dataclass(frozen=True, slots=True)
class PersonInJob:
    """One source object as one job knows it: its link to the target, what was last applied to it,
    the groups that hold it, and its latest log records (newest first)."""

    job: str
    target: str
    object_type: ObjectType
    target_id: str | None
    """None when the object is not linked to a target object (never provisioned, or deleted)."""
    state: str | None
    applied: dict[str, Any] | None
    """The attributes its last successful create or update sent (None when the log no longer says)."""
    groups: list[str]
    """The groups (`job: group source id`) whose applied members include it."""
    history: list[LogRecord]
    gaps: list[Gap] = field(default_factory=list)
    """The times its account was deleted and a person came back (`rehire:`), oldest first."""


@dataclass(frozen=True, slots=True)
class ProvisionRequest:
    source_id: NonEmpty
    comment: Comment = None
    """Why, for the audit trail"""


@dataclass(frozen=True, slots=True)
class CommentRequest:
    """The body a route that changes something may take (none is fine)."""

    comment: Comment = None
    """Why, for the audit trail"""


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What provisioning one object did: the preview of its steps and its log records."""

    cycle_id: str
    preview: Preview
    records: list[StoredRecord]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """One entry of the audit trail: who did what, when, from where, and how it ended."""

    id: int
    at: float
    """Unix seconds (UTC)"""
    actor_kind: Literal["service_account", "oidc_user", "local_user"]
    actor_name: str
    """The API account, the OIDC user's name, or the local login"""
    actor_issuer: str | None
    """An OIDC user's issuer"""
    actor_subject: str | None
    """An OIDC user's subject"""
    address: str
    """The client's address, or `local` for the command line without the API"""
    action: str
    """trigger, pause, resume, restart, reset, approve, reject, reconcile or provision"""
    job: str | None
    object: str | None
    """What the action was on besides the job: a source id (provision), a cycle id (approve, reconcile)"""
    outcome: Literal["done", "refused"]
    reason: str | None
    """Why it was refused"""
    comment: str | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Audit trail entries, newest first."""

    records: list[AuditRecord]
