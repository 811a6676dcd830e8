"""The console's search forms read into the filters the store takes: the provisioning log's
(`LogFilter`) and the audit trail's (`AuditFilter`). Times are typed as UTC wall clock
(`<input type="datetime-local">`); a value the form cannot take is a `FormError` naming the field."""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from engine.api.answers import LOG_ACTIONS, LOG_STATUSES
from engine.store.audit import AuditFilter
from engine.store.history import LogFilter, parse_cursor

PAGE = 50
LOG_FIELDS = ("person", "source_id", "job", "cycle_id", "action", "status", "since", "until")
AUDIT_FIELDS = ("actor", "job", "action", "since", "until")


class FormError(ValueError):
    """A field of a search form holds what it cannot take; the message names the field."""


def log_filter(query: Mapping[str, str], jobs: list[str], *, limit: int = PAGE) -> LogFilter:
    given = _given(query, (*LOG_FIELDS, "cursor"))
    if "job" in given and given["job"] not in jobs:
        raise FormError(f"Job: there is no job {given['job']!r} (jobs: {', '.join(jobs)}).")
    for name, allowed in (("action", LOG_ACTIONS), ("status", LOG_STATUSES)):
        if name in given and given[name] not in allowed:
            raise FormError(
                f"{name.capitalize()}: {given[name]!r} is not one of {', '.join(sorted(allowed))}."
            )
    cursor = None
    if "cursor" in given:
        try:
            cursor = parse_cursor(given["cursor"])
        except ValueError as exc:
            raise FormError(f"Page: {exc}.") from None
    return LogFilter(
        job=given.get("job"),
        status=given.get("status"),
        action=given.get("action"),
        source_id=given.get("source_id"),
        cycle_id=given.get("cycle_id"),
        person=given.get("person"),
        since=_moment("From", given.get("since")),
        until=_moment("Until", given.get("until")),
        cursor=cursor,
        limit=limit,
        newest_first=True,
    )


def audit_filter(query: Mapping[str, str], *, limit: int) -> AuditFilter:
    given = _given(query, AUDIT_FIELDS)
    return AuditFilter(
        actor=given.get("actor"),
        job=given.get("job"),
        action=given.get("action"),
        since=_moment("From", given.get("since")),
        until=_moment("Until", given.get("until")),
        limit=limit,
    )


def _given(query: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The fields filled in (an empty field filters nothing)."""
    return {name: query[name].strip() for name in names if query.get(name, "").strip()}


def _moment(label: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise FormError(f"{label}: {value!r} is not a date and time such as 2026-12-07T09:30.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
