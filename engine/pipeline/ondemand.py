"""One object at a time: `roster preview` (what would happen, writing nothing) and `roster provision`
(provision on demand: that object through the whole flow now, step by step).

Both reuse the planner that cycles use, so what they show is what a cycle would do.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.errors import SourceError
from engine.config import JobConfig
from engine.core.changes import REDACTED, Diff, as_logged, diff
from engine.core.dates import Standing
from engine.core.membership import MemberPlan, Membership
from engine.core.planner import plan_action, plan_missing
from engine.core.references import References, ResolvedReference, map_object
from engine.core.scoping import ScopingClause
from engine.mapping.functions.errors import MappingError
from engine.model import SourceObject, StateEntry
from engine.pipeline.cycles import CycleRunner, load_membership, references_of, resolve_references
from engine.sources.base import Source
from engine.store.state import StateStore


class UnknownObject(SourceError):
    """The object is neither in the job's source nor in its state: there is nothing to provision."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    """How one source object would be scoped, mapped and provisioned."""

    job: str
    source_id: str
    found: bool
    line: int = 0
    source: dict[str, Any] = field(default_factory=dict)
    scoping: list[list[tuple[ScopingClause, bool]]] = field(default_factory=list)
    in_scope: bool = True
    mapped: dict[str, Any] = field(default_factory=dict)
    create_only: dict[str, Any] = field(default_factory=dict)
    mapping_error: str | None = None
    entry: StateEntry | None = None
    action: str | None = None
    explanation: str = ""
    members: MemberPlan | None = None
    changes: Diff | None = None
    """For an update: what it changes against the attributes last applied (see `old_known`)."""
    old_known: bool = True
    """Whether the provisioning log still holds the attributes last applied (else `changes` shows
    every attribute as it would be sent)."""
    references: list[ResolvedReference] = field(default_factory=list)
    """Each source id the object's reference attributes name, with the target id it is sent as."""


async def find_object(source: Source, source_id: str) -> tuple[SourceObject | None, int]:
    """Stream the source until `source_id` turns up (a full read when it is not there). Returns the
    object, if found, and how many objects were read (all of them when it was not found)."""
    read = 0
    async for batch in source.batches(1_000):
        for obj in batch:
            if obj.source_id == source_id:
                return obj, read + 1
            read += 1
    return None, read


def preview(
    job: JobConfig,
    obj: SourceObject | None,
    source_id: str,
    entry: StateEntry | None,
    membership: Membership | None = None,
    *,
    skipped: int = 0,
    applied: dict[str, Any] | None = None,
    references: References | None = None,
    moved: Mapping[str, Set[str]] | None = None,
) -> Preview:
    """Pure: the object's scoping, mapping (its references as the target ids `references` resolved, and
    a group's members) and planned action against its state and the attributes `applied` last (None:
    not known); `skipped` source rows could not be read, which holds a deprovision of an object not
    found."""
    if obj is None:
        action = "nothing"
        if entry is not None:
            action = _deprovision_action(job, entry) or "nothing"
        why = "not in the source: " + (
            f"it would be {action}d ({job.deprovision} policy)" if action != "nothing" else "nothing to do"
        )
        if skipped and action != "nothing":
            why += f", but {skipped:,} source row(s) could not be read, so that is held for approval"
        return Preview(
            job=job.name, source_id=source_id, found=False, entry=entry, action=action, explanation=why
        )
    explained = job.scoping.explain(obj.attributes) if job.scoping.groups else []
    in_scope = not job.scoping.groups or job.scoping.matches(obj.attributes)
    base: dict[str, Any] = {
        "job": job.name,
        "source_id": source_id,
        "found": True,
        "line": obj.line,
        "source": obj.attributes,
    }
    if not in_scope:
        action = (_deprovision_action(job, entry) if entry else None) or "nothing"
        return Preview(
            **base,
            scoping=explained,
            in_scope=False,
            entry=entry,
            action=action,
            explanation="out of scope" + (f": it would be {action}d" if action != "nothing" else ""),
        )
    try:
        standing = job.dates.standing(obj.attributes, time.time()) if job.dates is not None else None
        mapped = map_object(job.mapper(), obj.attributes, references)
    except MappingError as exc:
        return Preview(
            **base,
            scoping=explained,
            entry=entry,
            mapping_error=str(exc),
            action="fail",
            explanation="a mapping fails on this object: it would be logged as failed",
        )
    shown_references = references.shown(obj.attributes) if references is not None else []
    if standing is not None and (dated := _dated(job, standing, entry)) is not None:
        return Preview(**base, scoping=explained, entry=entry, action=dated[0], explanation=dated[1])
    held_disabled = standing is not None and standing.phase in ("future", "prehire")
    members = membership.plan(source_id, obj.attributes, mapped.hash) if membership is not None else None
    desired_hash = members.hash if members is not None else mapped.hash
    action = plan_action(entry, desired_hash, disabled=held_disabled) or "nothing"
    moved_reference = (
        action == "nothing"
        and entry is not None
        and references is not None
        and bool(moved)
        and references.names_any(obj.attributes, moved or {})
    )
    if moved_reference:
        action = "update"
    hidden = job.redacted
    changes = None
    if action == "update":
        add, remove = (members.add, members.remove) if members is not None else ((), ())
        changes = diff(applied, as_logged(mapped.attributes, hidden), members_add=add, members_remove=remove)
    explanation = {
        "create": "not in the target yet",
        "update": "disabled in the target: it would be enabled again"
        if entry is not None and entry.state == "disabled" and not held_disabled
        else "an object its references name changed its target id (or went) since it was last applied"
        if moved_reference
        else f"its mapped attributes{' or members' if members else ''} changed since they were last applied",
        "disable": "enabled in the target before its start date: it would be disabled until then",
        "nothing": "the target already holds these values",
    }[action]
    if held_disabled and action in ("create", "update"):
        explanation += ", left disabled until its start date"
    return Preview(
        **base,
        scoping=explained,
        mapped={k: REDACTED if k in hidden else v for k, v in mapped.attributes.items()},
        create_only={k: REDACTED if k in hidden else v for k, v in mapped.create_only.items()},
        entry=entry,
        action=action,
        explanation=explanation,
        members=members,
        changes=changes,
        old_known=applied is not None,
        references=shown_references,
    )


def _dated(job: JobConfig, standing: Standing, entry: StateEntry | None) -> tuple[str, str] | None:
    """The action and why, for an object its dates keep out of a cycle's plan (`Planner._set_aside`)."""
    if standing.phase == "ended":
        action = (_deprovision_action(job, entry) if entry else None) or "nothing"
        return action, "past its end date" + (f": it would be {action}d" if action != "nothing" else "")
    if standing.phase == "future" and entry is None:
        at = datetime.fromtimestamp(standing.until or 0.0, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return "nothing", f"before its start date: it is created, disabled, from {at}"
    return None


def _deprovision_action(job: JobConfig, entry: StateEntry) -> str | None:
    return plan_missing(entry, job.deprovision, delete_after_s=job.delete_after_s)


async def preview_from_state(job: JobConfig, source_id: str, state: StateStore | None) -> Preview:
    source = job.source.open(state=state)
    obj, _read = await find_object(source, source_id)
    if state is None:
        return preview(job, obj, source_id, None)
    entry = await state.entry(job.name, source_id)
    return await _preview_in(state, job, obj, source_id, entry, skipped=source.skipped)


async def _preview_in(
    state: StateStore,
    job: JobConfig,
    obj: SourceObject | None,
    source_id: str,
    entry: StateEntry | None,
    *,
    skipped: int,
) -> Preview:
    """`preview` with what the state knows of the object: its group's members, the attributes last
    applied, its references resolved and what they name that moved."""
    references = await _references(state, job, obj)
    return preview(
        job,
        obj,
        source_id,
        entry,
        await load_membership(state, job, source_id),
        skipped=skipped,
        applied=await _applied(state, job, source_id, entry),
        references=references,
        moved=await _moved(state, job, references),
    )


async def _references(state: StateStore, job: JobConfig, obj: SourceObject | None) -> References | None:
    """The job's references, resolved for `obj` as a cycle would resolve them."""
    references = references_of(job)
    if obj is not None:
        await resolve_references(state, references, [obj])
    return references


async def _moved(
    state: StateStore, job: JobConfig, references: References | None
) -> dict[str, set[str]] | None:
    """What moved since the job's last full cycle, among the objects its references name."""
    if references is None:
        return None
    seen = (await state.job_switches()).get(job.name, {}).get("moves_seen")
    return (await state.moves(references.jobs, seen))[1]


async def _applied(
    state: StateStore, job: JobConfig, source_id: str, entry: StateEntry | None
) -> dict[str, Any] | None:
    """The attributes last applied to the object, if the provisioning log still holds them."""
    if entry is None:
        return None
    return (await state.applied_attributes(job.name, [source_id])).get(source_id)


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What provisioning one object did: the preview of its steps and its provisioning log records."""

    preview: Preview
    cycle_id: str
    records: list[dict[str, Any]]


async def provision(
    runner: CycleRunner, job: JobConfig, source_id: str, *, timeout_s: float = 300
) -> Provisioned:
    """Run one object through the flow now (import, scope, match, action, result), as a cycle of its
    own in the history, without touching any other object."""
    source = runner.source_for(job)
    obj, read = await find_object(source, source_id)
    entry = await runner.state.entry(job.name, source_id)
    if obj is None and not source.problems and entry is None:
        raise UnknownObject(f"{source_id!r} is neither in the source of job {job.name!r} nor in its state")
    shown = await _preview_in(runner.state, job, obj, source_id, entry, skipped=source.skipped)
    # A deprovision goes through the holds of a cycle's: `read` is a whole read only when the object
    # was not found (then the source-shrink check applies), and rows it could not read hold it.
    cycle_id, _counts = await runner.run_one(
        job,
        source_id,
        obj,
        entry,
        timeout_s=timeout_s,
        read=read if obj is None and source.full else None,
        skipped=source.skipped,
    )
    return Provisioned(shown, cycle_id, await runner.state.log_records(job.name, cycle_id=cycle_id))
