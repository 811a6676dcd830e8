"""The `notifications:` section: where the events a person must act on go, by webhook and by mail.

    notifications:
      webhooks:
        - name: identity-team-hook
          url: https://hooks.example.org/roster
          secret: ${ROSTER_HOOK_SECRET}        # signs each delivery (HMAC-SHA256); or secret_file
          events: [deletions_held, job_quarantined, cycle_failed, worker_gone]
          jobs: [people]                       # the events of these jobs only (worker_gone has none)
      smtp: {host: mail.example.org, port: 587, starttls: true, from: roster@example.org,
             username: roster, password: ${ROSTER_SMTP_PASSWORD}}
      mail:
        - {name: identity-team, to: [iam@example.org], events: [deletions_held, job_quarantined]}
      retry: {attempts: 6, first_delay_s: 5, multiplier: 4}

Each event goes to every route (a webhook or a mail list) that names its type and, for a job's event,
its job (a route without `jobs` takes every job's). A route's deliveries are retried with backoff and
recorded (`engine.notify.outbox`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.config.secrets import secret
from common.config.validation import (
    as_list,
    as_mapping,
    boolean,
    check_keys,
    integer,
    join,
    positive,
    string,
    unique_names,
)
from common.errors import ConfigError

EVENTS = ("deletions_held", "job_quarantined", "cycle_failed", "worker_gone", "account_created")
"""The event types, each one a person must act on (`engine.notify.events`)."""
SECTION_KEYS = ("webhooks", "smtp", "mail", "retry")
ROUTE_KEYS = ("name", "events", "jobs")
WEBHOOK_KEYS = (*ROUTE_KEYS, "url", "secret", "secret_file", "timeout_s")
MAIL_KEYS = (*ROUTE_KEYS, "to", "to_manager")
TO_MANAGER_KEYS = ("reference", "address")
SMTP_KEYS = ("host", "port", "from", "starttls", "tls", "username", "password", "password_file", "timeout_s")
RETRY_KEYS = ("attempts", "first_delay_s", "multiplier")


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where some events go: a webhook's or a mail list's name, the event types and the jobs."""

    name: str
    events: frozenset[str]
    jobs: frozenset[str] | None = None
    """The jobs whose events it takes; None: every job's (and the events of no job)."""

    def takes(self, event: str, job: str | None) -> bool:
        return event in self.events and (self.jobs is None or job is None or job in self.jobs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook(Route):
    url: str = field(repr=False)
    """May hold a token of the receiver's: never logged nor recorded (the route's name is)."""
    secret: str = field(repr=False)
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ToManager:
    """A mail to the manager of the person an event is about: the job's reference attribute that names
    the manager (a target attribute of a `reference:` mapping), and the manager's attribute, as last
    applied in the manager's job, that holds their address."""

    reference: str
    address: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MailList(Route):
    to: tuple[str, ...] = ()
    to_manager: ToManager | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    starttls: bool = False
    tls: bool = False
    """Implicit TLS (port 465); `starttls` upgrades a plain connection (port 587)."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySettings:
    attempts: int = 6
    first_delay_s: float = 5.0
    multiplier: float = 4.0

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` (1-based)."""
        return self.first_delay_s * self.multiplier ** (attempt - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSettings:
    webhooks: tuple[Webhook, ...] = ()
    mail: tuple[MailList, ...] = ()
    smtp: SmtpSettings | None = None
    retry: RetrySettings = field(default_factory=RetrySettings)

    @property
    def routes(self) -> tuple[Route, ...]:
        return (*self.webhooks, *self.mail)

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)


def parse_notifications(raw: Any, *, base_dir: Path, jobs: Sequence[str]) -> NotificationSettings | None:
    """The section, or None without one; a wrong value names its key and the fix."""
    if raw is None:
        return None
    path = "notifications"
    raw = as_mapping(path, raw)
    check_keys(path, raw, SECTION_KEYS)
    hooks = tuple(
        _webhook(join(join(path, "webhooks"), i), item, base_dir, jobs)
        for i, item in enumerate(as_list(join(path, "webhooks"), raw.get("webhooks") or []))
    )
    lists = tuple(
        _mail(join(join(path, "mail"), i), item, jobs)
        for i, item in enumerate(as_list(join(path, "mail"), raw.get("mail") or []))
    )
    unique_names(path, [r.name for r in (*hooks, *lists)], "notification route")
    smtp = _smtp(join(path, "smtp"), raw["smtp"], base_dir) if raw.get("smtp") is not None else None
    if lists and smtp is None:
        raise ConfigError(
            join(path, "smtp"), "is missing, and `mail` needs it", "give the SMTP server to send by"
        )
    if not hooks and not lists:
        raise ConfigError(
            path, "has no route", "add a webhook (`webhooks:`) or a mail list (`mail:`), or remove it"
        )
    retry = _retry(join(path, "retry"), raw.get("retry") or {})
    return NotificationSettings(webhooks=hooks, mail=lists, smtp=smtp, retry=retry)


def _route(path: str, raw: Mapping[str, Any], jobs: Sequence[str]) -> dict[str, Any]:
    events_path = join(path, "events")
    events = [string(join(events_path, i), e) for i, e in enumerate(as_list(events_path, raw["events"]))]
    if not events:
        raise ConfigError(events_path, "is empty", f"name at least one of {', '.join(EVENTS)}")
    for i, event in enumerate(events):
        if event not in EVENTS:
            raise ConfigError(
                join(events_path, i), f"{event!r} is not an event", f"name one of {', '.join(EVENTS)}"
            )
    named = None
    if "jobs" in raw:
        jobs_path = join(path, "jobs")
        named = [string(join(jobs_path, i), j) for i, j in enumerate(as_list(jobs_path, raw["jobs"]))]
        for i, job in enumerate(named):
            if job not in jobs:
                raise ConfigError(
                    join(jobs_path, i), f"no job is named {job!r}", f"name one of {', '.join(jobs)}"
                )
    return {
        "name": string(join(path, "name"), raw["name"]),
        "events": frozenset(events),
        "jobs": frozenset(named) if named is not None else None,
    }


def _webhook(path: str, raw: Any, base_dir: Path, jobs: Sequence[str]) -> Webhook:
    raw = as_mapping(path, raw)
    check_keys(path, raw, WEBHOOK_KEYS, required=("name", "url", "events"))
    url = string(join(path, "url"), raw["url"])
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(join(path, "url"), "is not an http(s) URL", "give the receiver's URL, https://...")
    return Webhook(
        **_route(path, raw, jobs),
        url=url,
        secret=secret(path, raw, "secret", base_dir),
        timeout_s=positive(join(path, "timeout_s"), raw.get("timeout_s", 10)),
    )


def _mail(path: str, raw: Any, jobs: Sequence[str]) -> MailList:
    raw = as_mapping(path, raw)
    check_keys(path, raw, MAIL_KEYS, required=("name", "events"))
    if ("to" in raw) == ("to_manager" in raw):
        raise ConfigError(
            path, "needs to or to_manager (one of them)", "to: [iam@example.org], or to_manager: {...}"
        )
    if "to_manager" in raw:
        return MailList(**_route(path, raw, jobs), to_manager=_to_manager(join(path, "to_manager"), raw))
    to_path = join(path, "to")
    to = [string(join(to_path, i), a) for i, a in enumerate(as_list(to_path, raw["to"]))]
    if not to:
        raise ConfigError(to_path, "is empty", "give at least one address")
    for i, address in enumerate(to):
        if not one_address(address):
            raise ConfigError(
                join(to_path, i), f"{address!r} is not one mail address", "write it as name@example.org"
            )
    return MailList(**_route(path, raw, jobs), to=tuple(to))


def _to_manager(path: str, route: Mapping[str, Any]) -> ToManager:
    raw = as_mapping(path, route["to_manager"])
    check_keys(path, raw, TO_MANAGER_KEYS, required=TO_MANAGER_KEYS)
    if route.get("events") != ["account_created"]:
        raise ConfigError(
            join(path, "reference"),
            "goes with `events: [account_created]` only (the other events are about no person)",
            "give this mail list the event account_created alone",
        )
    return ToManager(
        reference=string(join(path, "reference"), raw["reference"]),
        address=string(join(path, "address"), raw["address"]),
    )


def one_address(text: str) -> bool:
    """Whether `text` is one mail address, nothing a header could be split or forged by."""
    return "@" in text and not any(c in text for c in " \t\r\n,;<>")


def _smtp(path: str, raw: Any, base_dir: Path) -> SmtpSettings:
    raw = as_mapping(path, raw)
    check_keys(path, raw, SMTP_KEYS, required=("host", "port", "from"))
    starttls = boolean(join(path, "starttls"), raw.get("starttls", False))
    tls = boolean(join(path, "tls"), raw.get("tls", False))
    if starttls and tls:
        raise ConfigError(
            join(path, "tls"), "and starttls are both on", "tls for port 465, starttls for 587: one"
        )
    username = string(join(path, "username"), raw["username"]) if "username" in raw else None
    password = None
    if username is not None:
        password = secret(path, raw, "password", base_dir)
    elif "password" in raw or "password_file" in raw:
        raise ConfigError(
            join(path, "username"), "is missing, and a password is given", "give the username too"
        )
    sender = string(join(path, "from"), raw["from"])
    if "@" not in sender:
        raise ConfigError(
            join(path, "from"), f"{sender!r} is not a mail address", "write it as roster@example.org"
        )
    return SmtpSettings(
        host=string(join(path, "host"), raw["host"]),
        port=integer(join(path, "port"), raw["port"], minimum=1),
        sender=sender,
        starttls=starttls,
        tls=tls,
        username=username,
        password=password,
        timeout_s=positive(join(path, "timeout_s"), raw.get("timeout_s", 30)),
    )


def _retry(path: str, raw: Any) -> RetrySettings:
    raw = as_mapping(path, raw)
    check_keys(path, raw, RETRY_KEYS)
    return RetrySettings(
        attempts=integer(join(path, "attempts"), raw.get("attempts", 6), minimum=1),
        first_delay_s=positive(join(path, "first_delay_s"), raw.get("first_delay_s", 5)),
        multiplier=max(1.0, positive(join(path, "multiplier"), raw.get("multiplier", 4))),
    )
