"""The console's pages and the actions behind their buttons, each a thin view of `Admin`.

Every action checks the person's role here, whether or not the page showed the button, and is
recorded in the audit trail with who, from where and the comment, whether it was done or refused
(under the same action names as the API's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import quote, urlencode

from aiohttp import web

from engine.api.admin import Admin, NotNow
from engine.api.answers import LOG_ACTIONS, LOG_STATUSES
from engine.api.console.filters import AUDIT_FIELDS, LOG_FIELDS, FormError, audit_filter, log_filter
from engine.api.console.render import message, page
from engine.api.console.sessions import APPROVER, OPERATOR, SESSION, Session
from engine.store.audit import Entry, Outcome
from engine.store.history import cursor_of

log = logging.getLogger("roster.engine.console")

HELD_PAGE = 100
AUDIT_PAGE = 100
MAX_AUDIT = 10_000
MAX_EXPORT = 10_000_000
"""An export streams every matching record (the API's export reads the same way)."""
MIN_COMMENT = 3


@dataclass(frozen=True, slots=True)
class Control:
    label: str
    explanation: str
    role: str


CONTROLS = {
    "trigger": Control(
        "Run a cycle of {job} now", "A cycle of {job} starts now (or after the running one).", OPERATOR
    ),
    "pause": Control("Pause {job}", "No new work of {job} is published until it is resumed.", OPERATOR),
    "resume": Control("Resume {job}", "{job} publishes work again from its next cycle.", OPERATOR),
    "restart": Control(
        "Restart {job}",
        "{job} leaves quarantine and its held deprovisions are dropped; links to target objects stay.",
        OPERATOR,
    ),
}

DONE = {"pause": "Paused", "resume": "Resumed", "restart": "Restarted"}


class Pages:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    def _common(self, request: web.Request, section: str) -> dict[str, Any]:
        session: Session = request[SESSION]
        notices, session.notices = session.notices, []
        return {"person": session.person, "csrf": session.csrf, "section": section, "notices": notices}

    async def overview(self, request: web.Request) -> web.Response:
        jobs = await self.admin.jobs()
        return page(
            "overview.html",
            jobs=jobs,
            fleet=await self.admin.agents(),
            warnings=self.admin.warnings,
            **self._common(request, "overview"),
        )

    async def job(self, request: web.Request) -> web.Response:
        name = request.match_info["job"]
        status = await self.admin.status(name)
        person = request[SESSION].person
        controls = [
            (action, control.label.format(job=name))
            for action, control in CONTROLS.items()
            if person.may(control.role) and _applies(action, status.state, status.paused)
        ]
        return page(
            "job.html",
            job=status,
            cycles=await self.admin.cycles(name, 20),
            controls=controls,
            **self._common(request, "overview"),
        )

    async def cycle(self, request: web.Request) -> web.Response:
        name, cycle_id = request.match_info["job"], request.match_info["cycle_id"]
        cycle = await self.admin.cycle(name, cycle_id)
        status = await self.admin.status(name)
        return page(
            "cycle.html",
            job=status,
            cycle=cycle,
            running=[run for run in status.running if run.cycle_id == cycle_id],
            failures=await self.admin.failures(name, cycle_id),
            **self._common(request, "overview"),
        )

    async def running(self, request: web.Request) -> web.Response:
        status = await self.admin.status(request.match_info["job"])
        return page("running.html", job=status)

    async def confirm(self, request: web.Request) -> web.Response:
        name, action = request.match_info["job"], request.match_info["action"]
        self.admin.job(name)
        control = CONTROLS[action]
        if not request[SESSION].person.may(control.role):
            return self._refused_page(request, control.role, name)
        return page(
            "confirm.html",
            job=name,
            action=action,
            label=control.label.format(job=name),
            explanation=control.explanation.format(job=name),
            **self._common(request, "overview"),
        )

    async def act(self, request: web.Request) -> web.Response:
        name, action = request.match_info["job"], request.match_info["action"]
        self.admin.job(name)
        control, session = CONTROLS[action], request[SESSION]
        if not session.person.may(control.role):
            await self._record(request, action, name, None, "refused", f"needs the {control.role} role")
            return self._refused_page(request, control.role, name)
        try:
            notice = await self._run(action, name)
        except NotNow as exc:
            await self._record(request, action, name, None, "refused", str(exc))
            session.notices.append(f"{action.capitalize()} {name}: {exc}")
        else:
            await self._record(request, action, name, None, "done", None)
            session.notices.append(notice)
        raise web.HTTPSeeOther(f"/ui/jobs/{name}")

    async def _run(self, action: str, name: str) -> str:
        if action == "trigger":
            triggered = await self.admin.trigger(name)
            return f"{name}: {triggered.message or 'a cycle started'}."
        await getattr(self.admin, action)(name)
        return {"pause": "Paused {}.", "resume": "Resumed {}.", "restart": "Restarted {}."}[action].format(
            name
        )

    async def find(self, request: web.Request) -> web.Response:
        wanted = request.query.get("id", "").strip()
        if not wanted:
            raise web.HTTPSeeOther("/ui/")
        raise web.HTTPSeeOther(f"/ui/people/{quote(wanted, safe='')}")

    async def person(self, request: web.Request) -> web.Response:
        source_id = request.match_info["source_id"]
        return page(
            "person.html",
            source_id=source_id,
            jobs=await self.admin.person(source_id),
            job_names=[job.name for job in self.admin.runner.config.jobs],
            **self._common(request, "people"),
        )

    async def preview(self, request: web.Request) -> web.Response:
        name, source_id = request.match_info["job"], request.match_info["source_id"]
        return page(
            "preview.html",
            preview=await self.admin.preview(name, source_id),
            may_provision=request[SESSION].person.may(OPERATOR),
            **self._common(request, "people"),
        )

    async def provision(self, request: web.Request) -> web.Response:
        name, source_id = request.match_info["job"], request.match_info["source_id"]
        self.admin.job(name)
        if not request[SESSION].person.may(OPERATOR):
            await self._record(
                request, "provision", name, None, "refused", "needs the operator role", source_id
            )
            return self._refused_page(request, OPERATOR, name)
        done = await self.admin.provision(name, source_id)
        await self._record(request, "provision", name, None, "done", None, source_id)
        return page(
            "provisioned.html", job=name, source_id=source_id, done=done, **self._common(request, "people")
        )

    async def logs(self, request: web.Request) -> web.Response:
        jobs = [job.name for job in self.admin.runner.config.jobs]
        form = {name: request.query.get(name, "") for name in LOG_FIELDS}
        records, error, following = [], None, None
        try:
            where = log_filter(request.query, jobs)
        except FormError as exc:
            error = str(exc)
        else:
            records = await self.admin.logs(where)
            if len(records) == where.limit:
                last = records[-1]
                following = urlencode({**_filled(form), "cursor": cursor_of({"at": last.at, "id": last.id})})
        return page(
            "logs.html",
            form=form,
            jobs=jobs,
            actions=sorted(LOG_ACTIONS),
            statuses=sorted(LOG_STATUSES),
            records=records,
            error=error,
            next=following,
            query=urlencode(_filled(form)),
            **self._common(request, "logs"),
        )

    async def export(self, request: web.Request) -> web.StreamResponse:
        jobs = [job.name for job in self.admin.runner.config.jobs]
        try:
            where = replace(log_filter(request.query, jobs, limit=MAX_EXPORT), newest_first=False)
        except FormError as exc:
            return message(
                400, "Nothing exported", str(exc), back="/ui/logs", **self._common(request, "logs")
            )
        form: Literal["jsonl", "csv"] = "csv" if request.query.get("format") == "csv" else "jsonl"
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8" if form == "csv" else "application/x-ndjson",
                "Content-Disposition": f'attachment; filename="roster-log.{form}"',
            }
        )
        await response.prepare(request)
        async for chunk in self.admin.export_logs(where, form):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def audit(self, request: web.Request) -> web.Response:
        form = {name: request.query.get(name, "") for name in AUDIT_FIELDS}
        limit = _bounded(request.query.get("limit"), AUDIT_PAGE, MAX_AUDIT)
        entries, error, more = [], None, None
        try:
            entries = await self.admin.audit(audit_filter(request.query, limit=limit))
        except FormError as exc:
            error = str(exc)
        if len(entries) == limit and limit < MAX_AUDIT:
            more = urlencode({**_filled(form), "limit": min(MAX_AUDIT, limit * 2)})
        return page(
            "audit.html", form=form, entries=entries, error=error, more=more, **self._common(request, "audit")
        )

    async def approvals(self, request: web.Request) -> web.Response:
        waiting = [job for job in await self.admin.jobs() if job.approval is not None]
        return page("approvals.html", waiting=waiting, **self._common(request, "approvals"))

    async def approval(self, request: web.Request) -> web.Response:
        name = request.match_info["job"]
        status = await self.admin.status(name)
        held = await self.admin.held(name)
        offset = _offset(request.query.get("offset"), len(held))
        shown = held[offset : offset + HELD_PAGE]
        return page(
            "approval.html",
            job=status,
            held=shown,
            total=len(held),
            first=offset + 1 if shown else 0,
            last=offset + len(shown),
            previous=max(0, offset - HELD_PAGE) if offset else None,
            following=offset + HELD_PAGE if offset + HELD_PAGE < len(held) else None,
            may_approve=request[SESSION].person.may(APPROVER),
            **self._common(request, "approvals"),
        )

    async def decide(self, request: web.Request) -> web.Response:
        name = request.match_info["job"]
        self.admin.job(name)
        form = await request.post()
        decision, comment = str(form.get("decision", "")), str(form.get("comment", "")).strip()
        if decision not in ("approve", "reject"):
            return message(400, "Nothing decided", "Choose approve or reject.", **self._common(request, ""))
        session = request[SESSION]
        if not session.person.may(APPROVER):
            await self._record(request, decision, name, comment or None, "refused", "needs the approver role")
            return self._refused_page(request, APPROVER, name)
        if len(comment) < MIN_COMMENT:
            back = f"/ui/jobs/{name}/approval"
            text = "A comment is required to approve or reject: say why, for the audit trail."
            return message(400, "A comment is required", text, back=back, **self._common(request, ""))
        cycle_id = None
        try:
            if decision == "approve":
                approved = await self.admin.approve(name)
                cycle_id = approved.cycle.cycle_id
                notice = f"Approved {approved.approved} held operations of {name}; cycle {cycle_id} ran."
            else:
                rejected = await self.admin.reject(name)
                notice = f"Rejected {rejected.rejected} held operations of {name}."
        except NotNow as exc:
            await self._record(request, decision, name, comment, "refused", str(exc))
            session.notices.append(str(exc))
        else:
            await self._record(request, decision, name, comment, "done", None, cycle_id)
            session.notices.append(notice)
        raise web.HTTPSeeOther(f"/ui/jobs/{name}")

    async def _record(
        self,
        request: web.Request,
        action: str,
        job: str,
        comment: str | None,
        outcome: Outcome,
        reason: str | None,
        target: str | None = None,
    ) -> None:
        """One entry in the audit trail; `reason` says why it was refused."""
        await self.admin.record(
            Entry(
                actor=request[SESSION].person.actor(),
                address=request.remote or "unknown",
                action=action,
                job=job,
                object=target,
                outcome=outcome,
                reason=reason,
                comment=comment,
            )
        )

    def _refused_page(self, request: web.Request, role: str, job: str) -> web.Response:
        person = request[SESSION].person
        text = f"This needs the {role} role; {person.name} has {', '.join(sorted(person.roles)) or 'none'}."
        return message(403, "Not allowed", text, back=f"/ui/jobs/{job}", **self._common(request, ""))


def _applies(action: str, state: str, paused: bool) -> bool:
    if action == "pause":
        return not paused
    if action == "resume":
        return paused
    if action == "restart":
        return state == "quarantined"
    return True


def _filled(form: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in form.items() if value.strip()}


def _bounded(value: str | None, default: int, most: int) -> int:
    try:
        return min(max(1, int(value or default)), most)
    except ValueError:
        return default


def _offset(value: str | None, total: int) -> int:
    try:
        offset = int(value or 0)
    except ValueError:
        return 0
    return min(max(0, offset), max(0, total - 1))
