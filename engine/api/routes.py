"""The admin API's routes: the table (`Api.routes`), their handlers over `engine.api.admin.Admin`, and
`answer()`, the one place where answers become JSON.

The router (`engine.api.app`) and the OpenAPI document (`engine.api.openapi`) are both built from the
table, so neither can name a route the other lacks. Answers are the value types of
`engine.api.answers`; bad input raises `ApiProblem`, a 4xx whose JSON names the problem:
`{"error": "invalid_parameter", "detail": "limit: expected a whole number, got 'ten'"}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import fields, is_dataclass
from typing import Any, Literal

import orjson
from aiohttp import web

from common.process.status_server import HealthCheck
from engine.api.accounts import Role
from engine.api.admin import Admin
from engine.api.agents import AgentList
from engine.api.answers import (
    LOG_ACTIONS,
    LOG_STATUSES,
    Approved,
    AuditPage,
    CommentRequest,
    CycleList,
    Error,
    Health,
    JobList,
    JobStatus,
    LogPage,
    Provisioned,
    ProvisionRequest,
    Reconciled,
    Rejected,
    Triggered,
)
from engine.api.openapi import document
from engine.api.route import (
    ApiProblem,
    Handler,
    Query,
    Route,
    Seconds,
    Text,
    Whole,
    audit_note,
    comment_of,
    json_object,
)
from engine.pipeline.ondemand import Preview
from engine.store.audit import AuditFilter
from engine.store.history import LogFilter, cursor_of, parse_cursor

log = logging.getLogger("roster.engine.api")

MAX_LOG_LIMIT = 10_000
MAX_ID = 2**63 - 1  # the largest id a database column holds
EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}

LOG_FILTERS = (
    Text("job", "Only this job"),
    Text("status", "Only records of this status", LOG_STATUSES),
    Text("action", "Only records of this action", LOG_ACTIONS),
    Text("source_id", "Only this source object"),
    Text("cycle_id", "Only this cycle"),
    Text(
        "person",
        "Only the records of people found by this: a source or target id, a name or a mail their records "
        "sent; case aside, and as a prefix from 3 characters on",
    ),
    Seconds("since", "From this moment (Unix seconds)"),
    Seconds("until", "Before this moment (Unix seconds)"),
    Whole(
        name="after_id",
        description="Only records with a larger id (paging)",
        default=0,
        minimum=0,
        maximum=MAX_ID,
    ),
    Whole(
        name="before_id",
        description="Only records with a smaller id (paging newest first)",
        default=MAX_ID,
        minimum=1,
        maximum=MAX_ID,
    ),
    Text(
        "order",
        "Oldest first (by time, then id) or newest first",
        frozenset({"oldest", "newest"}),
        default="oldest",
    ),
    Text("cursor", "Where the page before ended: its next_cursor (paging either way)"),
)
LOG_LIMIT = Whole(name="limit", description="At most", default=1_000, minimum=1, maximum=MAX_LOG_LIMIT)
CYCLE_LIMIT = Whole(name="limit", description="At most", default=20, minimum=1, maximum=1_000)
FORMAT = Text("format", "JSON Lines or CSV", frozenset(EXPORT_TYPES), default="jsonl")
AUDIT_FILTERS = (
    Text("actor", "Only entries of this actor (an API account, a login)"),
    Text("job", "Only this job"),
    Text("action", "Only this action (trigger, pause, approve, ...)"),
    Seconds("since", "From this moment (Unix seconds)"),
    Seconds("until", "Before this moment (Unix seconds)"),
    Whole(name="limit", description="At most", default=100, minimum=1, maximum=MAX_LOG_LIMIT),
)


def _plain(value: Any) -> Any:
    """orjson's fallback: a dataclass as its public fields, a set as a list, anything else as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value) if not f.name.startswith("_")}
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def answer(data: object, status: int = 200) -> web.Response:
    """`data` (answer types, or plain JSON values) as a JSON response."""
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    body = orjson.dumps(data, default=_plain, option=options)
    return web.Response(body=body, status=status, content_type="application/json")


def problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    response = answer(Error(error, detail), status)
    response.headers.update(headers or {})
    return response


def _log_filter(query: Query, *, limit: int) -> LogFilter:
    job, status, action, source_id, cycle_id, person, since, until, after_id, before_id, order, cursor = (
        LOG_FILTERS
    )
    before = before_id.read(query)
    after = cursor.read(query)
    try:
        at_and_id = parse_cursor(after) if after is not None else None
    except ValueError as exc:
        raise ApiProblem(400, "invalid_parameter", f"cursor: {exc}") from None
    return LogFilter(
        job=job.read(query),
        status=status.read(query),
        action=action.read(query),
        source_id=source_id.read(query),
        cycle_id=cycle_id.read(query),
        person=person.read(query),
        cursor=at_and_id,
        since=since.read(query),
        until=until.read(query),
        after_id=after_id.read(query),
        before_id=None if before == MAX_ID else before,
        limit=limit,
        newest_first=order.read(query) == "newest",
    )


# -- Handlers ----------------------------------------------------------------------------------------

JOB_ERRORS = (400, 404)
SWITCHES = {
    "pause": "Pause: no new work is published until resumed",
    "resume": "Resume a paused job",
    "restart": "Leave quarantine and drop the staged deprovisions; links to target objects stay",
    "reset": "A restart that also forgets every link: the next cycle matches each object again",
}


def _per_job(action: Callable[[str], Awaitable[object]], status: int = 200) -> Handler:
    """A handler that answers what `action` returns for the job named in the path."""

    async def handle(request: web.Request, _query: Query) -> web.Response:
        return answer(await action(request.match_info["job"]), status)

    return handle


def _acting(
    admin: Admin,
    action: Callable[[str], Awaitable[Any]],
    status: int = 200,
    object_of: Callable[[Any], str | None] | None = None,
) -> Handler:
    """A handler that does `action` to the job named in the path and answers what it returns; the
    body's comment, and what `object_of` finds in the answer, go to the audit trail."""

    async def handle(request: web.Request, _query: Query) -> web.Response:
        admin.job(request.match_info["job"])  # an unknown job is a 404 whatever the body
        note = audit_note(request)
        note.comment = await comment_of(request)
        done = await action(request.match_info["job"])
        if object_of is not None:
            note.object = object_of(done)
        return answer(done, status)

    return handle


def _acts(action: str, role: Role) -> dict[str, Any]:
    """The settings of a route that changes something: the role it needs, its audit action, and its
    body, an optional comment."""
    return {"role": role, "audited": action, "body": CommentRequest, "body_required": False}


class Api:
    """The handlers, bound to one engine's `Admin`, and the table of routes to them."""

    def __init__(self, admin: Admin, health: HealthCheck) -> None:
        self.admin = admin
        self.health = health
        switches = {
            "pause": admin.pause,
            "resume": admin.resume,
            "restart": admin.restart,
            "reset": admin.reset,
        }
        self.routes: tuple[Route, ...] = (
            Route(
                method="GET",
                path="/healthz",
                handler=self.healthz,
                operation_id="health",
                summary="Whether the engine is working (no token needed)",
                answer=Health,
                errors=(503,),
                failure=Health,
                public=True,
            ),
            Route(
                method="GET",
                path="/openapi.json",
                handler=self.openapi,
                operation_id="openapi",
                summary="This document",
                answer=dict,
            ),
            Route(
                method="GET",
                path="/jobs",
                handler=self.jobs,
                operation_id="listJobs",
                summary="Every job's status",
                answer=JobList,
            ),
            Route(
                method="GET",
                path="/jobs/{job}",
                handler=_per_job(admin.status),
                operation_id="jobStatus",
                summary="One job: its state and why, the running cycle's progress, the last cycles, "
                "the next run",
                answer=JobStatus,
                errors=JOB_ERRORS,
            ),
            Route(
                method="GET",
                path="/jobs/{job}/cycles",
                handler=self.cycles,
                operation_id="listCycles",
                summary="The job's last cycles, newest first",
                answer=CycleList,
                query=(CYCLE_LIMIT,),
                errors=JOB_ERRORS,
            ),
            Route(
                method="POST",
                path="/jobs/{job}/cycles",
                handler=_acting(admin, admin.trigger, 202),
                operation_id="triggerCycle",
                summary="Start a cycle now, in the background",
                answer=Triggered,
                status=202,
                errors=(*JOB_ERRORS, 409),
                **_acts("trigger", "operator"),
            ),
            Route(
                method="POST",
                path="/jobs/{job}/reconcile",
                handler=_acting(admin, admin.reconcile, object_of=lambda done: done.cycle_id),
                operation_id="reconcile",
                summary="Read the target back, classify each object, and act per the job's reconcile policy",
                answer=Reconciled,
                errors=(*JOB_ERRORS, 409),
                **_acts("reconcile", "operator"),
            ),
            Route(
                method="GET",
                path="/jobs/{job}/preview/{source_id}",
                handler=self.preview,
                operation_id="preview",
                summary="How one source object would be scoped, mapped and provisioned (writes nothing)",
                answer=Preview,
                errors=(*JOB_ERRORS, 503),
            ),
            Route(
                method="POST",
                path="/jobs/{job}/provision",
                handler=self.provision,
                operation_id="provision",
                summary="Provision one object now, through the whole flow, and answer with its log records",
                answer=Provisioned,
                body=ProvisionRequest,
                errors=(*JOB_ERRORS, 503),
                role="operator",
                audited="provision",
            ),
            *(
                Route(
                    method="POST",
                    path=f"/jobs/{{job}}/{name}",
                    handler=_acting(admin, switches[name]),
                    operation_id=name,
                    summary=summary,
                    answer=JobStatus,
                    errors=JOB_ERRORS,
                    **_acts(name, "operator"),
                )
                for name, summary in SWITCHES.items()
            ),
            Route(
                method="POST",
                path="/jobs/{job}/approve",
                handler=_acting(admin, admin.approve, object_of=lambda done: done.cycle.cycle_id),
                operation_id="approve",
                summary="Run a cycle in which the deprovisions held for approval go ahead",
                answer=Approved,
                errors=(*JOB_ERRORS, 409),
                **_acts("approve", "approver"),
            ),
            Route(
                method="POST",
                path="/jobs/{job}/reject",
                handler=_acting(admin, admin.reject),
                operation_id="reject",
                summary="Drop the deprovisions held for approval",
                answer=Rejected,
                errors=JOB_ERRORS,
                **_acts("reject", "approver"),
            ),
            Route(
                method="GET",
                path="/agents",
                handler=self.agents,
                operation_id="listAgents",
                summary="The engines and workers heard on the broker (version, targets, health), and how "
                "many workers serve each target of a job",
                answer=AgentList,
            ),
            Route(
                method="GET",
                path="/logs",
                handler=self.logs,
                operation_id="logs",
                summary="Provisioning log records, oldest first (or newest), a page at a time",
                answer=LogPage,
                query=(*LOG_FILTERS, LOG_LIMIT),
                errors=JOB_ERRORS,
            ),
            Route(
                method="GET",
                path="/logs/export",
                handler=self.export,
                operation_id="exportLogs",
                summary="Every matching log record, streamed as JSON Lines or CSV (with a header)",
                answer=None,
                media=tuple(EXPORT_TYPES.values()),
                query=(*LOG_FILTERS, FORMAT),
                errors=JOB_ERRORS,
            ),
            Route(
                method="GET",
                path="/audit",
                handler=self.audit,
                operation_id="audit",
                summary="Who did what: the audit trail's entries, newest first",
                answer=AuditPage,
                query=AUDIT_FILTERS,
            ),
        )
        self.document = document(self.routes)

    async def healthz(self, _request: web.Request, _query: Query) -> web.Response:
        healthy, details = self.health()
        return answer({**_plain(Health(healthy)), **details}, 200 if healthy else 503)

    async def openapi(self, _request: web.Request, _query: Query) -> web.Response:
        return answer(self.document)

    async def jobs(self, _request: web.Request, _query: Query) -> web.Response:
        return answer(JobList(await self.admin.jobs(), list(self.admin.warnings)))

    async def agents(self, _request: web.Request, _query: Query) -> web.Response:
        return answer(await self.admin.agents())

    async def cycles(self, request: web.Request, query: Query) -> web.Response:
        limit = CYCLE_LIMIT.read(query)
        job = request.match_info["job"]
        return answer(CycleList(job, await self.admin.cycles(job, limit)))

    async def preview(self, request: web.Request, _query: Query) -> web.Response:
        return answer(await self.admin.preview(request.match_info["job"], request.match_info["source_id"]))

    async def provision(self, request: web.Request, _query: Query) -> web.Response:
        self.admin.job(request.match_info["job"])  # an unknown job is a 404 whatever the body
        body = await json_object(request)
        extra = sorted(set(body) - {"source_id", "comment"})
        if extra:
            raise ApiProblem(
                400, "invalid_body", f'{extra[0]}: unknown field (the body is {{"source_id": ...}})'
            )
        source_id = body.get("source_id")
        if not isinstance(source_id, str) or not source_id:
            raise ApiProblem(400, "invalid_body", "source_id: required, a non-empty string")
        note = audit_note(request)
        note.object, note.comment = source_id, await comment_of(request, body)
        return answer(await self.admin.provision(request.match_info["job"], source_id))

    async def logs(self, _request: web.Request, query: Query) -> web.Response:
        where = _log_filter(query, limit=LOG_LIMIT.read(query))
        records = await self.admin.logs(where)
        full = len(records) == where.limit
        last = records[-1].id if full else None
        more = cursor_of({"at": records[-1].at, "id": records[-1].id}) if full else None
        if where.newest_first:
            return answer(LogPage(records, None, last, more))
        return answer(LogPage(records, last, None, more))

    async def audit(self, _request: web.Request, query: Query) -> web.Response:
        actor, job, action, since, until, limit = AUDIT_FILTERS
        where = AuditFilter(
            actor=actor.read(query),
            job=job.read(query),
            action=action.read(query),
            since=since.read(query),
            until=until.read(query),
            limit=limit.read(query),
        )
        return answer(AuditPage(await self.admin.audit(where)))

    async def export(self, request: web.Request, query: Query) -> web.StreamResponse:
        form: Literal["jsonl", "csv"] = "csv" if FORMAT.read(query) == "csv" else "jsonl"
        where = _log_filter(query, limit=MAX_LOG_LIMIT)
        if where.job is not None:
            self.admin.job(where.job)  # an unknown job is a 404, before the stream starts
        response = web.StreamResponse(
            headers={
                "Content-Type": f"{EXPORT_TYPES[form]}; charset=utf-8",
                "Content-Disposition": f'attachment; filename="roster-log.{form}"',
            }
        )
        await response.prepare(request)
        try:
            async for chunk in self.admin.export_logs(where, form):
                await response.write(chunk)
        except Exception:
            # The status is sent already: cut the stream, so the client sees it incomplete, not ended.
            log.exception("event=api_export_failed")
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
