"""The audit trail: who did what to the engine's jobs, when, from where, and whether it was done.

Every state-changing request of the admin API (trigger, pause, resume, restart, reset, approve, reject,
reconcile, provision now), and every command line that acts on the state store without the API, adds
one entry; a request refused for want of a role adds one too. Entries are only ever added: this module
has no path that changes or deletes one, and the database refuses both (triggers of migration 12).

An actor is a kind and a name: a service account of the API (its account name), a local user of the
command line (the OS login), or an OIDC user (its issuer and subject beside the name), so that a
sign-in to a console can be recorded without a change of the table.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from engine.store.schema import audit
from engine.store.state import StateStore

ActorKind = Literal["service_account", "oidc_user", "local_user"]
Outcome = Literal["done", "refused"]
ACTOR_KINDS: tuple[ActorKind, ...] = ("service_account", "oidc_user", "local_user")
OUTCOMES: tuple[Outcome, ...] = ("done", "refused")
LOCAL = "local"
"""The address of an action taken on this machine's command line, without the API."""
FIELDS = (
    "id",
    "at",
    "actor_kind",
    "actor_name",
    "actor_issuer",
    "actor_subject",
    "address",
    "action",
    "job",
    "object",
    "outcome",
    "reason",
    "comment",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who acted: a kind and a name; an OIDC user also has its issuer and subject."""

    kind: ActorKind
    name: str
    issuer: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise ValueError(f"{self.kind!r} is not an actor kind ({', '.join(ACTOR_KINDS)})")
        if not self.name:
            raise ValueError("an actor needs a name")
        if self.kind == "oidc_user" and not self.subject:
            raise ValueError("an OIDC user needs its subject")


def local_user() -> Actor:
    """The person at this machine's command line, by their login name."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the user database
        name = "unknown"
    return Actor(kind="local_user", name=name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One action: who, from where, what (the action, its job and object), how it ended, and the
    comment given with it."""

    actor: Actor
    address: str
    action: str
    job: str | None = None
    object: str | None = None
    """What the action was on besides the job: a source id, a cycle id."""
    outcome: Outcome = "done"
    reason: str | None = None
    """Why it was refused."""
    comment: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"{self.outcome!r} is not an outcome ({', '.join(OUTCOMES)})")
        if not self.action:
            raise ValueError("an audit entry needs an action")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    """Which entries to read, newest first; every field left None matches everything."""

    actor: str | None = None
    """The actor's name."""
    job: str | None = None
    action: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100

    def where(self) -> list[Any]:
        clauses: list[Any] = []
        for column, value in (
            (audit.c.actor_name, self.actor),
            (audit.c.job, self.job),
            (audit.c.action, self.action),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.since is not None:
            clauses.append(audit.c.at >= self.since)
        if self.until is not None:
            clauses.append(audit.c.at < self.until)
        return clauses


async def record(state: StateStore, entry: Entry, *, at: float | None = None) -> int:
    """Add `entry`, as done now (or at `at`, Unix seconds); its id."""
    row = {
        "at": time.time() if at is None else at,
        "actor_kind": entry.actor.kind,
        "actor_name": entry.actor.name,
        "actor_issuer": entry.actor.issuer,
        "actor_subject": entry.actor.subject,
        "address": entry.address,
        "action": entry.action,
        "job": entry.job,
        "object": entry.object,
        "outcome": entry.outcome,
        "reason": entry.reason,
        "comment": entry.comment,
    }
    async with state.writing(urgent=True) as conn:
        inserted = await conn.execute(audit.insert().values(row).returning(audit.c.id))
        return int(inserted.scalar_one())


async def read(state: StateStore, where: AuditFilter) -> list[dict[str, Any]]:
    """The entries matching `where`, newest first, at most `where.limit`."""
    query = (
        sa.select(*(audit.c[name] for name in FIELDS))
        .where(*where.where())
        .order_by(audit.c.at.desc(), audit.c.id.desc())
        .limit(where.limit)
    )
    async with state.engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]
