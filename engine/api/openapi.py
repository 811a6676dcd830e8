"""The OpenAPI 3.1 document of the admin API, served at `/openapi.json`.

`document()` is handed the routes that `engine.api.routes` registers and describes exactly those: a route
without a description here fails at start, and a description without a route is left out, so the
document and the router never disagree. Errors share one shape, `{"error": code, "detail": sentence}`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.store.state import STAGED_DELETE
from queues.contracts import ACTIONS, STATUSES

LOG_STATUSES = frozenset({*STATUSES, "warning"})
"""Every status a provisioning log record can have (`warning`: a deprovision held for approval)."""
LOG_ACTIONS = frozenset({*ACTIONS, STAGED_DELETE})
JOB_STATES = ("active", "paused", "quarantined", "waiting_for_approval")

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], **extra}


def _object(required: Iterable[str] = (), **properties: Schema) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties}


_TEXT: Schema = {"type": "string"}
_COUNT: Schema = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        **_object(("error", "detail"), error=_TEXT, detail=_TEXT),
        "description": "Every answer other than success: a short code and a sentence that names the problem.",
    },
    "Health": {**_object(("healthy",), healthy={"type": "boolean"}), "additionalProperties": True},
    "Cycle": _object(
        ("cycle_id", "job", "trigger", "status", "started_at", "counts"),
        cycle_id=_TEXT,
        job=_TEXT,
        trigger={**_TEXT, "description": "schedule, api, cli, approval or on_demand"},
        status={**_TEXT, "description": "running, succeeded, completed_with_failures, failed, ..."},
        started_at={"type": "number", "description": "Unix seconds"},
        finished_at=_nullable("number"),
        counts={"type": "object", "additionalProperties": True},
        duration_s=_nullable("number"),
    ),
    "JobStatus": _object(
        ("job", "target", "object_type", "state", "paused", "running", "last_cycles", "next_run"),
        job=_TEXT,
        target=_TEXT,
        object_type={"enum": ["user", "group"]},
        state={"enum": list(JOB_STATES)},
        paused={"type": "boolean"},
        quarantine={
            "oneOf": [
                {"type": "null"},
                _object(("reason",), reason=_TEXT, since=_nullable("number"), cycles={"type": "integer"}),
            ]
        },
        approval={"oneOf": [{"type": "null"}, _object(("reason", "staged"), reason=_TEXT, staged=_COUNT)]},
        running={
            "type": "array",
            "items": _object(
                ("cycle_id",),
                cycle_id=_TEXT,
                read=_COUNT,
                planned=_COUNT,
                settled=_COUNT,
                retries=_COUNT,
                counts={"type": "object"},
            ),
        },
        last_cycles={"type": "array", "items": _ref("Cycle")},
        next_run=_nullable("string", format="date-time"),
    ),
    "JobList": _object(("jobs",), jobs={"type": "array", "items": _ref("JobStatus")}),
    "CycleList": _object(("job", "cycles"), job=_TEXT, cycles={"type": "array", "items": _ref("Cycle")}),
    "Triggered": _object(("job", "started"), job=_TEXT, started={"const": True}),
    "Preview": {
        **_object(
            ("job", "source_id", "found", "action", "explanation"),
            job=_TEXT,
            source_id=_TEXT,
            found={"type": "boolean"},
            in_scope={"type": "boolean"},
            mapped={"type": "object", "description": "Secret values show as ***"},
            action=_nullable("string"),
            explanation=_TEXT,
            mapping_error=_nullable("string"),
        ),
        "description": "How one source object would be scoped, mapped and provisioned; nothing is written.",
    },
    "ProvisionRequest": {
        **_object(("source_id",), source_id={"type": "string", "minLength": 1}),
        "additionalProperties": False,
    },
    "Provisioned": _object(
        ("cycle_id", "preview", "records"),
        cycle_id=_TEXT,
        preview=_ref("Preview"),
        records={"type": "array", "items": _ref("LogRecord")},
    ),
    "Approved": _object(("job", "approved", "cycle"), job=_TEXT, approved=_COUNT, cycle={"type": "object"}),
    "Rejected": _object(("job", "rejected"), job=_TEXT, rejected=_COUNT),
    "LogRecord": _object(
        ("id", "at", "job", "action", "status"),
        id={"type": "integer"},
        at={"type": "number", "description": "Unix seconds"},
        cycle_id=_nullable("string"),
        op_id=_nullable("string"),
        job=_TEXT,
        source_id=_nullable("string"),
        target_id=_nullable("string"),
        action=_TEXT,
        status=_TEXT,
        attempts=_nullable("integer"),
        error_class=_nullable("string"),
        error_code=_nullable("string"),
        error_message=_nullable("string"),
        latency_ms=_nullable("number"),
        duration_ms={**_nullable("number"), "description": "The connector's time on the operation's batch"},
        attributes={
            "type": ["object", "null"],
            "description": "The attributes the operation sent; values of redacted mappings are ***",
        },
        steps={
            "type": "object",
            "description": "import, scope, match, action and export, each with its outcome",
            "additionalProperties": {"type": "string"},
        },
    ),
    "LogPage": _object(
        ("records", "next_after_id"),
        records={"type": "array", "items": _ref("LogRecord")},
        next_after_id={
            **_nullable("integer"),
            "description": "Pass as after_id for the next page; null on the last page",
        },
    ),
}


def _parameter(name: str, where: str, schema: Schema, text: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": text}


JOB = _parameter("job", "path", _TEXT, "The job's name, as in the jobs file", required=True)
SOURCE_ID = _parameter(
    "source_id", "path", _TEXT, "The object's id in the source (slashes allowed)", required=True
)
LOG_FILTERS = (
    _parameter("job", "query", {"type": "string", "minLength": 1}, "Only this job"),
    _parameter("status", "query", {"enum": sorted(LOG_STATUSES)}, "Only records of this status"),
    _parameter("action", "query", {"enum": sorted(LOG_ACTIONS)}, "Only records of this action"),
    _parameter("source_id", "query", {"type": "string", "minLength": 1}, "Only this source object"),
    _parameter("cycle_id", "query", {"type": "string", "minLength": 1}, "Only this cycle"),
    _parameter("since", "query", {"type": "number", "minimum": 0}, "From this moment (Unix seconds)"),
    _parameter("until", "query", {"type": "number", "minimum": 0}, "Before this moment (Unix seconds)"),
    _parameter(
        "after_id",
        "query",
        {**_COUNT, "maximum": 2**63 - 1, "default": 0},
        "Only records with a larger id (paging)",
    ),
)
LIMIT_LOGS = _parameter(
    "limit", "query", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1_000}, "At most"
)
LIMIT_CYCLES = _parameter(
    "limit", "query", {"type": "integer", "minimum": 1, "maximum": 1_000, "default": 20}, "At most"
)
FORMAT = _parameter("format", "query", {"enum": ["jsonl", "csv"], "default": "jsonl"}, "JSON Lines or CSV")


def _json(schema: Schema, text: str) -> Schema:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "A query value, a path value or the body is wrong; `detail` says which"),
    "401": {
        **_json(_ref("Error"), "No bearer token, or not this engine's"),
        "headers": {"WWW-Authenticate": {"schema": _TEXT}},
    },
    "404": _json(_ref("Error"), "No such job (`detail` names the jobs there are), object or route"),
    "409": _json(_ref("Error"), "The job is not in a state that allows this now"),
    "503": _json(_ref("Error"), "The source or the state store cannot be read now; retry later"),
}


def _errors(*codes: str) -> dict[str, Schema]:
    return {code: ERRORS[code] for code in ("401", *codes)}


def _switch(name: str, text: str, result: str = "JobStatus", *codes: str) -> Schema:
    return {
        "operationId": name,
        "summary": text,
        "parameters": [JOB],
        "responses": {"200": _json(_ref(result), "Done"), **_errors("400", "404", *codes)},
    }


OPERATIONS: dict[tuple[str, str], Schema] = {
    ("GET", "/healthz"): {
        "operationId": "health",
        "summary": "Whether the engine is working (no token needed)",
        "security": [],
        "responses": {"200": _json(_ref("Health"), "Healthy"), "503": _json(_ref("Health"), "Unhealthy")},
    },
    ("GET", "/openapi.json"): {
        "operationId": "openapi",
        "summary": "This document",
        "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document"), **_errors("400")},
    },
    ("GET", "/jobs"): {
        "operationId": "listJobs",
        "summary": "Every job's status",
        "responses": {"200": _json(_ref("JobList"), "The jobs"), **_errors("400")},
    },
    ("GET", "/jobs/{job}"): {
        "operationId": "jobStatus",
        "summary": "One job: its state and why, the running cycle's progress, the last cycles, the next run",
        "parameters": [JOB],
        "responses": {"200": _json(_ref("JobStatus"), "The job"), **_errors("400", "404")},
    },
    ("GET", "/jobs/{job}/cycles"): {
        "operationId": "listCycles",
        "summary": "The job's last cycles, newest first",
        "parameters": [JOB, LIMIT_CYCLES],
        "responses": {"200": _json(_ref("CycleList"), "The cycles"), **_errors("400", "404")},
    },
    ("POST", "/jobs/{job}/cycles"): {
        "operationId": "triggerCycle",
        "summary": "Start a cycle now, in the background",
        "parameters": [JOB],
        "responses": {"202": _json(_ref("Triggered"), "Started"), **_errors("400", "404", "409")},
    },
    ("GET", "/jobs/{job}/preview/{source_id}"): {
        "operationId": "preview",
        "summary": "How one source object would be scoped, mapped and provisioned (writes nothing)",
        "parameters": [JOB, SOURCE_ID],
        "responses": {"200": _json(_ref("Preview"), "The preview"), **_errors("400", "404", "503")},
    },
    ("POST", "/jobs/{job}/provision"): {
        "operationId": "provision",
        "summary": "Provision one object now, through the whole flow, and answer with its log records",
        "parameters": [JOB],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("ProvisionRequest")}},
        },
        "responses": {"200": _json(_ref("Provisioned"), "Provisioned"), **_errors("400", "404", "503")},
    },
    ("POST", "/jobs/{job}/pause"): _switch("pause", "Pause: no new work is published until resumed"),
    ("POST", "/jobs/{job}/resume"): _switch("resume", "Resume a paused job"),
    ("POST", "/jobs/{job}/restart"): _switch(
        "restart", "Leave quarantine and drop the staged deprovisions; links to target objects stay"
    ),
    ("POST", "/jobs/{job}/reset"): _switch(
        "reset", "A restart that also forgets every link: the next cycle matches each object again"
    ),
    ("POST", "/jobs/{job}/approve"): _switch(
        "approve",
        "Run a cycle in which the deprovisions held by the deletion guard go ahead",
        "Approved",
        "409",
    ),
    ("POST", "/jobs/{job}/reject"): _switch(
        "reject", "Drop the deprovisions held by the deletion guard", "Rejected"
    ),
    ("GET", "/logs"): {
        "operationId": "logs",
        "summary": "Provisioning log records, oldest first, a page at a time",
        "parameters": [*LOG_FILTERS, LIMIT_LOGS],
        "responses": {"200": _json(_ref("LogPage"), "A page of records"), **_errors("400", "404")},
    },
    ("GET", "/logs/export"): {
        "operationId": "exportLogs",
        "summary": "Every matching log record, streamed as JSON Lines or CSV (with a header)",
        "parameters": [*LOG_FILTERS, FORMAT],
        "responses": {
            "200": {
                "description": "The records",
                "content": {"application/x-ndjson": {"schema": _TEXT}, "text/csv": {"schema": _TEXT}},
            },
            **_errors("400", "404"),
        },
    },
}


def document(routes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The OpenAPI document of `routes` (method, path); a route not described here raises KeyError."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routes:
        paths.setdefault(path, {})[method.lower()] = OPERATIONS[(method, path)]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Roster admin API",
            "version": "1",
            "description": "See and steer a Roster engine's jobs: status, cycles, the provisioning log, "
            "and the switches (pause, resume, restart, reset, approve, reject).",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
