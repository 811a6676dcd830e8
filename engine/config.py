"""The engine's configuration: jobs (source, target name, mappings, policy, schedule) and engine settings.

The workers' side of the same file (`targets:`, with credentials) is parsed by `workers/config.py`;
the engine ignores it and never needs a credential. Every error names the path of the value, what is
wrong and the fix: `jobs[0].mappings[3].source: is required (add `source:` ...)`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from common.config.problems import Parts
from common.config.validation import (
    as_list,
    as_mapping,
    check_keys,
    choice,
    integer,
    join,
    number,
    positive,
    string,
    unique_names,
)
from common.config.yamlfile import load_yaml
from common.errors import ConfigError
from engine.api.accounts import ApiAccount, parse_api_accounts
from engine.api.console.settings import ConsoleSettings, parse_console
from engine.core.dates import DateSettings, parse_dates
from engine.core.membership import MembersSettings, parse_members
from engine.core.policies import (
    SHRINK_KEYS,
    DeletionGuard,
    MassChangeGuard,
    QuarantineSettings,
    SourceShrink,
    parse_deletion_guard,
    parse_mass_change_guard,
    parse_quarantine,
    parse_source_shrink,
)
from engine.core.reconcile_policy import ReconcileSettings, parse_reconcile
from engine.core.references import ReferenceMapping
from engine.core.rehire import RehireSettings, parse_rehire
from engine.core.schedule import Schedule, parse_schedule
from engine.core.scoping import ScopingFilter, parse_scoping
from engine.inbound.settings import InboundSettings, parse_inbound
from engine.mapping.base import ApplyOn, ConstantMapping, DirectMapping, Mapper
from engine.mapping.base import Mapping as AttributeMapping
from engine.mapping.collision import NextOnCollision, parse_on_collision
from engine.mapping.expression_mapping import ExpressionMapping, parse_expression_mapping
from engine.model import Deprovision
from engine.notify.settings import NotificationSettings, parse_notifications
from engine.pipeline.deadline import DeadlineSettings, parse_deadline
from engine.pipeline.fleet import FleetSettings, parse_presence
from engine.pipeline.publisher import PublishSettings
from engine.sources.registry import SourceSettings, parse_source
from engine.sources.rules import RuleGroupSettings, refuse_source

DEPROVISION = ("disable", "delete", "none")
ENGINE_SECTIONS = ("jobs", "engine", "targets", "workers", "broker", "inbound", "proxy", "notifications")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobConfig:
    name: str
    target: str
    object_type: str
    source: SourceSettings
    mappings: tuple[AttributeMapping, ...]
    matching: tuple[str, ...]
    """The matching attributes, highest precedence first: the target is searched on each in turn."""
    deprovision: Deprovision
    schedule: Schedule | None
    scoping: ScopingFilter
    members: MembersSettings | None = None
    """For a group job: where its members come from (source attribute, and the user job that has them)."""
    deletion_guard: DeletionGuard = field(default_factory=DeletionGuard)
    mass_change_guard: MassChangeGuard = field(default_factory=MassChangeGuard)
    """When an attribute changing on many objects holds those updates for approval."""
    source_shrink: SourceShrink = field(default_factory=SourceShrink)
    """When a read has too few objects to deprovision on (`source_min_objects`, `source_max_drop_percent`)."""
    listing_min_creates: int = 50
    """A cycle with this many creates of objects not linked yet lists the target once and links them by
    the listing, rather than searching the target before each (0: never); see `engine.pipeline.listing`."""
    listing_timeout_s: float = 300.0
    """How long a cycle waits for that listing before it sends its creates without it."""
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    """What a reconciliation does per situation, and when it runs (`engine.pipeline.reconciling`)."""
    delete_after_s: float | None = None
    """A leaver's grace (`delete_after_days`): an object disabled for leaving the source (or its scope)
    is deleted once it has been disabled this long; back in the source before, it is enabled again."""
    rehire: RehireSettings | None = None
    """A user job's key that survives leaving, by which a person who comes back after their account was
    deleted gets it again (`engine.core.rehire`)."""
    dates: DateSettings | None = None
    """A user job's start and end dates (`engine.core.dates`): prehires created disabled, enabled on
    the start date, deprovisioned from the end date."""
    path: str = field(default="", compare=False)
    """Where the job was read from (`jobs[0]`), to name it in errors found later."""
    mapping_paths: tuple[str, ...] = field(default=(), compare=False)
    """Where each of `mappings` was read from (`jobs[0].mappings[3]`): a job read by `roster validate`
    keeps the mappings that could be read when others could not, so its columns are still checked."""

    @property
    def redacted(self) -> frozenset[str]:
        """Target attributes whose values never reach a log or a preview (their expression uses Redact)."""
        inner = [m.mapping if isinstance(m, NextOnCollision) else m for m in self.mappings]
        return frozenset(
            m.target for m in inner if isinstance(m, ExpressionMapping) and m.expression.redacted
        )

    def mapper(self) -> Mapper:
        return Mapper(self.mappings, matching=self.matching)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    jobs: tuple[JobConfig, ...]
    state: str | None
    publish: PublishSettings
    base_dir: Path
    """The jobs file's directory: relative paths in the file are read from there, not from the cwd."""
    broker: Any = None
    """The top-level `broker:` URL of scaled mode, as written (`common.process.cli.broker_url` checks it)."""
    quarantine: QuarantineSettings = field(default_factory=QuarantineSettings)
    log_retention_days: float = 30.0
    """How long the provisioning log keeps a record (`engine.store.history.prune_forever`)."""
    deadline: DeadlineSettings = field(default_factory=DeadlineSettings)
    """How long a cycle waits for results before it gives up on the unanswered operations."""
    presence: FleetSettings = field(default_factory=FleetSettings)
    """How often the engine announces itself, and when a silent worker counts as gone."""
    inbound: InboundSettings | None = None
    """The inbound SCIM service (`engine.inbound`), when the file has an `inbound:` section."""
    api_accounts: tuple[ApiAccount, ...] = ()
    """The admin API's named service accounts and their roles (`engine.api.accounts`), besides the
    engine's own token."""
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    """The console's sign-in (OpenID Connect, or the API's tokens on loopback) and sessions."""
    notifications: NotificationSettings | None = None
    """Where the events a person must act on are sent (`engine.notify`), with a `notifications:` section."""

    def job(self, name: str) -> JobConfig:
        for job in self.jobs:
            if job.name == name:
                return job
        known = ", ".join(j.name for j in self.jobs)
        raise ConfigError("jobs", f"no job named {name!r}", f"known jobs: {known}")


def load_engine_config(path: Path, *, environ: Mapping[str, str] | None = None) -> EngineConfig:
    return parse_engine_config(load_yaml(path, environ=environ), base_dir=path.absolute().parent)


def parse_engine_config(raw: Mapping[str, Any], *, base_dir: Path) -> EngineConfig:
    """The engine's settings and jobs. When `common.config.problems` collects, every job is checked
    (and each mapping of a job), so that one bad job does not hide the errors of another, and the
    config holds the jobs that could be read."""
    parts = Parts()
    parts(lambda: check_keys("", raw, ENGINE_SECTIONS, required=("jobs",)))
    if raw.get("jobs") is None:
        parts.done()
    engine = parts(lambda: _engine_section(raw.get("engine"), base_dir))
    items = as_list("jobs", raw["jobs"])
    if not items:
        raise ConfigError("jobs", "is empty", "add at least one job with a source, a target and mappings")
    parsed: list[JobConfig | None] = [None] * len(items)
    for i, job in parts.each(items, lambda i, item: (i, parse_job(join("jobs", i), item, base_dir))):
        parsed[i] = job
    parts(lambda: unique_names("jobs", [job.name if job else None for job in parsed], "job"))
    unread = {
        item.get("name")
        for item, job in zip(items, parsed, strict=True)
        if job is None and isinstance(item, Mapping)
    }
    _check_members(parsed, parts, unread)
    _rule_sources(parsed)
    _check_references(parsed, parts, unread)
    inbound = parts(lambda: _inbound_section(raw.get("inbound"), parsed, base_dir))
    names = [job.name for job in parsed if job is not None]
    notifications = parts(
        lambda: parse_notifications(raw.get("notifications"), base_dir=base_dir, jobs=names)
    )
    if notifications is not None:
        parts(lambda: _check_to_manager(notifications, parsed))
    # Outside `collecting()` the first error went up already; inside, the jobs that could be read.
    return EngineConfig(
        jobs=tuple(job for job in parsed if job is not None),
        base_dir=base_dir,
        broker=raw.get("broker"),
        inbound=inbound,
        notifications=notifications,
        **(engine or _engine_section(None, base_dir)),
    )


def _inbound_section(raw: Any, jobs: Sequence[JobConfig | None], base_dir: Path) -> InboundSettings | None:
    """The `inbound:` section, which the jobs over the inbound service need (and only they)."""
    readers = [job.name for job in jobs if job is not None and job.source.type == "scim_inbound"]
    if raw is None:
        if readers:
            i = next(i for i, job in enumerate(jobs) if job is not None and job.name == readers[0])
            raise ConfigError(
                join(join(join("jobs", i), "source"), "type"),
                "is scim_inbound, but the file has no inbound: section",
                "add inbound: with listen: and tokens: (see docs/configuration.md)",
            )
        return None
    return parse_inbound(raw, base_dir=base_dir, jobs=readers)


def _engine_section(raw: Any, base_dir: Path) -> dict[str, Any]:
    """The `engine:` section, as keyword arguments of `EngineConfig`."""
    engine = as_mapping("engine", raw or {})
    check_keys(
        "engine",
        engine,
        (
            "state",
            "batch_size",
            "linger_ms",
            "high_water",
            "quarantine",
            "log_retention_days",
            "deadline",
            "presence",
            "api_accounts",
            "console",
        ),
    )
    state = engine.get("state")
    return {
        "publish": PublishSettings(
            batch_size=integer("engine.batch_size", engine.get("batch_size", 500), minimum=1),
            linger_ms=integer("engine.linger_ms", engine.get("linger_ms", 5), minimum=0),
            high_water=integer("engine.high_water", engine.get("high_water", 64), minimum=1),
        ),
        "state": string("engine.state", state) if state is not None else None,
        "quarantine": parse_quarantine("engine.quarantine", engine.get("quarantine")),
        "log_retention_days": _retention_days(engine.get("log_retention_days", 30)),
        "deadline": parse_deadline("engine.deadline", engine.get("deadline")),
        "presence": parse_presence("engine.presence", engine.get("presence")),
        "api_accounts": parse_api_accounts(engine.get("api_accounts"), base_dir=base_dir),
        "console": parse_console(engine.get("console"), base_dir=base_dir),
    }


def _retention_days(raw: Any) -> float:
    try:
        return positive("engine.log_retention_days", raw)
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.problem, "give the days a log record is kept, such as 30") from None


JOB_KEYS = (
    "name",
    "source",
    "target",
    "object_type",
    "mappings",
    "deprovision",
    "schedule",
    "scoping",
    "members",
    "deletion_guard",
    "mass_change_guard",
    "listing_min_creates",
    "listing_timeout_s",
    "reconcile",
    "delete_after_days",
    "dates",
    "rehire",
    *SHRINK_KEYS,
)
_JOB_REQUIRED = ("name", "source", "target", "mappings")
RULE_SOURCE = SourceSettings(type="rules", settings=None)
"""A group job by rule's source until its member job's is known (`_rule_sources`)."""


def parse_job(path: str, raw: Any, base_dir: Path) -> JobConfig:
    """One job; when collecting, its parts (source, each mapping, scoping...) are checked each."""
    raw = as_mapping(path, raw)
    parts = Parts()
    by_rule = isinstance(raw.get("members"), Mapping) and (
        "rule" in raw["members"] or "group_per" in raw["members"]
    )
    required = tuple(k for k in _JOB_REQUIRED if not (by_rule and k == "source"))
    parts(lambda: check_keys(path, raw, JOB_KEYS, required=required))
    if any(raw.get(key) is None for key in required):
        parts.done()
    # Mappings that fail leave the others to be checked further (`roster validate` collects).
    mapping_parts = Parts()
    mappings = parts(lambda: _mappings(join(path, "mappings"), raw["mappings"], mapping_parts))
    object_type = choice(join(path, "object_type"), raw.get("object_type", "user"), ("user", "group"))
    members = parts(lambda: _members(join(path, "members"), raw.get("members"), object_type))
    # A SCIM group has no active flag: a group that leaves the source is deleted unless told otherwise.
    deprovision_default = "delete" if object_type == "group" else "disable"
    source = parts(
        lambda: (
            RULE_SOURCE
            if by_rule and "source" not in raw
            else parse_source(
                join(path, "source"),
                as_mapping(join(path, "source"), raw["source"]),
                base_dir=base_dir,
                object_type=object_type,
            )
        )
    )
    if by_rule and "source" in raw:
        parts(lambda: refuse_source(join(path, "source"), raw["source"]))
    name = parts(lambda: string(join(path, "name"), raw["name"]))
    target = parts(lambda: string(join(path, "target"), raw["target"]))
    deprovision = parts(
        lambda: choice(join(path, "deprovision"), raw.get("deprovision", deprovision_default), DEPROVISION)
    )
    schedule = parts(lambda: parse_schedule(join(path, "schedule"), raw.get("schedule")))
    scoping = parts(lambda: parse_scoping(join(path, "scoping"), raw.get("scoping") or []))
    deletion_guard = parts(
        lambda: parse_deletion_guard(join(path, "deletion_guard"), raw.get("deletion_guard"))
    )
    mass_change_guard = parts(
        lambda: parse_mass_change_guard(join(path, "mass_change_guard"), raw.get("mass_change_guard"))
    )
    source_shrink = parts(lambda: parse_source_shrink(path, raw))
    listing_min_creates = parts(
        lambda: integer(join(path, "listing_min_creates"), raw.get("listing_min_creates", 50), minimum=0)
    )
    listing_timeout_s = parts(
        lambda: _listing_timeout(join(path, "listing_timeout_s"), raw.get("listing_timeout_s", 300))
    )
    reconcile = parts(lambda: parse_reconcile(join(path, "reconcile"), raw.get("reconcile")))
    delete_after_s = parts(lambda: _grace(path, raw, deprovision))
    dates = parts(
        lambda: parse_dates(
            join(path, "dates"), raw.get("dates"), object_type=object_type, deprovision=deprovision
        )
    )
    matching = (
        parts(lambda: _matching(path, [(m, p) for _, m, p in mappings])) if mappings is not None else ()
    )
    rehire = parts(lambda: _rehire(join(path, "rehire"), raw.get("rehire"), object_type, mappings))
    parts.done()
    return JobConfig(
        name=name,
        target=target,
        object_type=object_type,
        source=source,
        mappings=tuple(m for _, m, _ in mappings),
        matching=matching,
        deprovision=deprovision,  # type: ignore[arg-type]
        schedule=schedule,
        scoping=scoping,
        members=members,
        deletion_guard=deletion_guard,
        mass_change_guard=mass_change_guard,
        source_shrink=source_shrink,
        listing_min_creates=listing_min_creates,
        listing_timeout_s=listing_timeout_s,
        reconcile=reconcile,
        delete_after_s=delete_after_s,
        dates=dates,
        rehire=rehire,
        path=path,
        mapping_paths=tuple(where for where, _, _ in mappings),
    )


def _check_to_manager(settings: NotificationSettings, jobs: Sequence[JobConfig | None]) -> None:
    """A mail list `to_manager` names a reference attribute that the user jobs it takes map."""
    users = [job for job in jobs if job is not None and job.object_type == "user"]
    for i, route in enumerate(settings.mail):
        if route.to_manager is None:
            continue
        taken = [job for job in users if route.jobs is None or job.name in route.jobs]
        mapping = route.to_manager.reference
        having = [
            job
            for job in taken
            if any(isinstance(m, ReferenceMapping) and m.target == mapping for m in job.mappings)
        ]
        if not having or (route.jobs is not None and len(having) < len(taken)):
            lacking = ", ".join(job.name for job in taken if job not in having) or "no user job"
            raise ConfigError(
                f"notifications.mail[{i}].to_manager.reference",
                f"{mapping!r} is no reference attribute of {lacking}",
                "name the target attribute of a `reference:` mapping that names the manager",
            )


def _rehire(
    path: str, raw: Any, object_type: str, mappings: Sequence[tuple[Any, AttributeMapping, Any]] | None
) -> RehireSettings | None:
    """`rehire:`, checked against the job's mappings (none: they failed, and say so themselves)."""
    if raw is None or mappings is None:
        return None
    mapped = [m for _, m, _ in mappings]
    inner = [m.mapping if isinstance(m, NextOnCollision) else m for m in mapped]
    return parse_rehire(
        path,
        raw,
        object_type=object_type,
        mapped={m.target for m in mapped},
        created_only={m.target for m in mapped if m.apply_on == "create"},
        redacted={m.target for m in inner if isinstance(m, ExpressionMapping) and m.expression.redacted},
    )


def _grace(path: str, raw: Mapping[str, Any], deprovision: str | None) -> float | None:
    """`delete_after_days`, in seconds: it goes with `deprovision: disable` (the default for users)."""
    if raw.get("delete_after_days") is None:
        return None
    where = join(path, "delete_after_days")
    days = number(where, raw["delete_after_days"], minimum=0)
    if not days < 36_500:  # NaN and inf too
        raise ConfigError(where, f"{raw['delete_after_days']!r} is out of range", "give the days, such as 30")
    if deprovision is not None and deprovision != "disable":
        raise ConfigError(
            where,
            f"needs `deprovision: disable` (this job's is {deprovision!r}): leavers are disabled first",
            "set `deprovision: disable`, or remove `delete_after_days`",
        )
    return days * 86_400.0


def _members(path: str, raw: Any, object_type: str) -> MembersSettings | None:
    if raw is None:
        return None
    if object_type != "group":
        raise ConfigError(path, "applies to group jobs only", "add `object_type: group` or remove it")
    return parse_members(path, raw)


def _mappings(path: str, raw: Any, parts: Parts) -> tuple[tuple[str, AttributeMapping, int | None], ...]:
    """A job's mappings with the path of each, each checked on its own; those that failed are left out
    (`parts` knows)."""
    items = as_list(path, raw)
    if not items:
        raise ConfigError(path, "is empty", "map at least one attribute")
    return tuple(parts.each(items, lambda i, item: (join(path, i), *parse_mapping(join(path, i), item))))


def _listing_timeout(path: str, raw: Any) -> float:
    value = positive(path, raw)
    if not value <= 86_400:  # NaN and inf too
        raise ConfigError(
            path, f"{raw!r} is out of range", "give the seconds to wait for a listing, at most a day"
        )
    return value


def _check_members(jobs: Sequence[JobConfig | None], parts: Parts, unread: Collection[Any]) -> None:
    """A group job's members come from a user job of the same target, named in the same file.
    `jobs` is in the file's order, None for a job that could not be read; `unread` are their names."""
    by_name = {job.name: job for job in jobs if job is not None}
    for i, job in enumerate(jobs):
        if job is None or job.members is None:
            continue
        path = join(join("jobs", i), "members")
        if job.members.job not in unread:
            parts(partial(_check_member_job, join(path, "job"), job, by_name))
        for n, name in enumerate(job.members.groups):
            if name not in unread:
                parts(partial(_check_member_groups, join(join(path, "groups"), n), job, name, by_name))


def _rule_sources(jobs: list[JobConfig | None]) -> None:
    """Give each group job by rule its source: its member job's, grouped (`engine.sources.rules`)."""
    by_name = {job.name: job for job in jobs if job is not None}
    for i, job in enumerate(jobs):
        if job is None or job.members is None or not job.members.by_rule:
            continue
        people = by_name.get(job.members.job)
        if people is None:
            continue  # refused by `_check_members`
        settings = RuleGroupSettings(
            people=people.source,
            scoping=people.scoping,
            rule=job.members.rule,
            group_per=job.members.group_per,
            group_id=job.name,
            member_job=people.name,
        )
        jobs[i] = replace(job, source=SourceSettings(type="rules", settings=settings))


def _check_member_groups(path: str, job: JobConfig, name: str, by_name: Mapping[str, JobConfig]) -> None:
    """`name`, in `job.members.groups`, is a group job of the same target that does not (through
    others) take `job`'s groups as members: nesting across jobs goes one way, so that each job's
    cycle finds the groups it nests provisioned by the cycle before (within a job, any way goes)."""
    named = by_name.get(name)
    if named is None:
        raise ConfigError(
            path,
            f"no job is named {name!r}",
            f"name a group job whose groups are members, this one ({job.name!r}) for groups nested in "
            f"its own: {', '.join(sorted(n for n, j in by_name.items() if j.object_type == 'group'))}",
        )
    if named.object_type != "group" or named.target != job.target:
        raise ConfigError(
            path,
            f"{name!r} is not a group job of target {job.target!r}",
            "nested groups are sent by their ids in this group's target: name a group job of that target",
        )
    if name == job.name:
        return
    loop = _job_loop(name, job.name, by_name)
    if loop:
        raise ConfigError(
            path,
            f"group jobs take each other's groups as members: {' -> '.join([job.name, *loop])}",
            "let the groups of one job contain those of the other, not both ways (or merge the jobs "
            "into one, whose groups may nest any way)",
        )


def _job_loop(start: str, back_to: str, by_name: Mapping[str, JobConfig]) -> list[str]:
    """A path of group jobs from `start` to `back_to` following `members.groups`, if there is one."""
    came_from: dict[str, str] = {start: ""}
    frontier = [start]
    while frontier:
        following = []
        for name in frontier:
            job = by_name.get(name)
            for member in job.members.groups if job is not None and job.members is not None else ():
                if member == back_to:
                    path = [name]
                    while came_from[path[-1]]:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), back_to]
                if member not in came_from:
                    came_from[member] = name
                    following.append(member)
        frontier = following
    return []


def _check_member_job(path: str, job: JobConfig, by_name: Mapping[str, JobConfig]) -> None:
    assert job.members is not None
    member_job = by_name.get(job.members.job)
    if member_job is None:
        raise ConfigError(
            path,
            f"no job is named {job.members.job!r}",
            f"name the user job whose objects are the members: {', '.join(sorted(by_name))}",
        )
    if member_job.object_type != "user" or member_job.target != job.target:
        raise ConfigError(
            path,
            f"{member_job.name!r} is not a user job of target {job.target!r}",
            "members are sent by their ids in this group's target: name a user job of that target",
        )


def _check_references(jobs: Sequence[JobConfig | None], parts: Parts, unread: Collection[Any]) -> None:
    """A reference names a job of the same target in the same file (ids of another target mean
    nothing here); `jobs` and `unread` as in `_check_members`."""
    by_name = {job.name: job for job in jobs if job is not None}
    for i, job in enumerate(jobs):
        if job is None:
            continue
        for n, mapping in enumerate(job.mappings):
            if isinstance(mapping, ReferenceMapping) and mapping.job not in unread:
                path = join(join(join("jobs", i), "mappings"), n)
                parts(partial(_check_reference_job, join(path, "reference.job"), job, mapping, by_name))


def _check_reference_job(
    path: str, job: JobConfig, mapping: ReferenceMapping, by_name: Mapping[str, JobConfig]
) -> None:
    named = by_name.get(mapping.job)
    if named is None:
        raise ConfigError(
            path,
            f"no job is named {mapping.job!r}",
            f"name the job whose objects {mapping.source!r} holds the ids of: {', '.join(sorted(by_name))}",
        )
    if named.target != job.target:
        raise ConfigError(
            path,
            f"{named.name!r} provisions target {named.target!r}, not {job.target!r}",
            "a reference is sent as the object's id in this job's target: name a job of that target",
        )


def in_dependency_order(jobs: Sequence[JobConfig]) -> list[JobConfig]:
    """`jobs` with each group job after the user job of its members and after the other group jobs
    whose groups it nests, so members are provisioned first (a loop of group jobs, which validation
    refuses, keeps the file's order)."""
    users = [job for job in jobs if job.members is None]
    groups = [job for job in jobs if job.members is not None]
    names = {job.name for job in groups}
    ordered: list[JobConfig] = []
    placed: set[str] = set()
    while groups:
        ready = [
            job
            for job in groups
            if job.members is None
            or all(n in placed or n == job.name or n not in names for n in job.members.groups)
        ]
        ready = ready or groups[:1]
        ordered += ready
        placed.update(job.name for job in ready)
        groups = [job for job in groups if job.name not in placed]
    return users + ordered


MAPPING_KEYS = ("target", "source", "constant", "expression", "reference", "apply", "default", "match")


def parse_mapping(path: str, raw: Any) -> tuple[AttributeMapping, int | None]:
    """One mapping (direct, constant, expression or reference) and its matching precedence (None: not
    matched on), its value given way to further candidates if `on_collision` says so."""
    raw = as_mapping(path, raw)
    check_keys(path, raw, (*MAPPING_KEYS, "on_collision"), required=("target",))
    mapping, match = _parse_mapping(path, raw)
    on_collision = raw.get("on_collision", "fail")
    if on_collision != "fail" and isinstance(mapping, ReferenceMapping):
        raise ConfigError(
            join(path, "on_collision"),
            "applies to names, not to a reference (the target id of another object)",
            "remove it",
        )
    return parse_on_collision(join(path, "on_collision"), on_collision, mapping), match


def _parse_mapping(path: str, raw: Mapping[str, Any]) -> tuple[AttributeMapping, int | None]:
    target = string(join(path, "target"), raw["target"])
    apply_on: ApplyOn = (
        "create"
        if choice(join(path, "apply"), raw.get("apply", "always"), ("always", "on_create")) == "on_create"
        else "always"
    )
    match = _match_precedence(join(path, "match"), raw.get("match", False))
    kinds = [k for k in ("source", "constant", "expression", "reference") if k in raw]
    if len(kinds) != 1:
        raise ConfigError(
            path,
            "needs exactly one of `source:`, `constant:`, `expression:` and `reference:`",
            "say where the value comes from" if not kinds else f"keep one of {', '.join(kinds)}",
        )
    default = raw.get("default")
    if "reference" in raw:
        reference = as_mapping(join(path, "reference"), raw["reference"])
        check_keys(join(path, "reference"), reference, ("source", "job"), required=("source", "job"))
        return ReferenceMapping(
            target=target,
            source=string(join(join(path, "reference"), "source"), reference["source"]),
            job=string(join(join(path, "reference"), "job"), reference["job"]),
            apply_on=apply_on,
        ), match
    if "constant" in raw:
        return ConstantMapping(target=target, value=raw["constant"], apply_on=apply_on), match
    if "expression" in raw:
        mapping = parse_expression_mapping(
            path,
            target=target,
            expression=raw["expression"],
            apply_on=apply_on,
            default=default,
        )
        return mapping, match
    source = string(join(path, "source"), raw["source"])
    return DirectMapping(target=target, source=source, apply_on=apply_on, default=default), match


def _match_precedence(path: str, raw: Any) -> int | None:
    """`match: true` (in order of appearance, before numbered ones) or `match: N` (1 first); else None."""
    if raw is True:
        return 0
    if raw is False or raw is None:
        return None
    return integer(path, raw, minimum=1)


def _matching(path: str, mappings: Sequence[tuple[AttributeMapping, int | None]]) -> tuple[str, ...]:
    """The matching attributes in precedence order; two mappings may not share a precedence."""
    ranked = [
        (precedence, i, m.target) for i, (m, precedence) in enumerate(mappings) if precedence is not None
    ]
    numbered = [precedence for precedence, _, _ in ranked if precedence]
    clash = next((p for p in numbered if numbered.count(p) > 1), None)
    if clash is not None:
        names = [target for precedence, _, target in ranked if precedence == clash]
        raise ConfigError(
            join(path, "mappings"),
            f"{', '.join(names)} share matching precedence {clash}",
            "give each matching attribute its own number (`match: 1` is tried first, then `match: 2`)",
        )
    return tuple(dict.fromkeys(target for _, _, target in sorted(ranked)))
