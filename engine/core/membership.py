"""Group membership: which members a group should hold in the target, by their target ids.

A group job names the user job whose objects are its members (`members.job`, on the same target), and
may name group jobs whose groups are members too (`members.groups`: itself, for groups nested in groups
of the same source, or another group job). The source gives each group's members as source ids of those
jobs, and their state gives the target ids: a member id is looked up in `job` first, then in each of
`groups` in order, and the first that knows it wins (an id that two jobs hold is taken as the first's
member; give the jobs distinct ids, e.g. a prefix, where that can happen). A member the state does not
know yet (not provisioned so far, or failed) is *pending*: the group is sent with the members that
resolve, and its state records a hash marked pending, so the group is not taken as applied; a later
cycle, once the member resolves, adds it. Nested groups of one job are planned members first within a
cycle (see `engine.core.nesting`).

What a group holds is recorded per member (source id -> target id) from the results, so a member that
leaves the source is removed from the group, and one whose account was replaced is swapped, without
touching members that someone else added in the target.

A member's target id may change after the group last held it: a rename whose name feeds the DN moves
the entry, and the directory (refint) or the connector (relink) rewrites the group's value to the new
DN. A removal therefore addresses the member's *current* target id as well as the one applied. The
record also keeps, for each member removed while its account still exists, the target id the removal
last addressed (`REMOVED_PREFIX` + source id): when the member job's state later shows another target
id (a rename that was applied while the removal was in flight, or whose own result failed), the group
is planned again and removes that one too, so a removal that found nothing is never taken as final.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.config.validation import as_mapping, check_keys, join, string
from common.errors import ConfigError
from engine.mapping.base import attribute_hash
from engine.mapping.expression import Expression, parse_expression
from engine.mapping.syntax import ExpressionSyntaxError

PENDING_PREFIX = "pending:"
"""Starts the applied hash of a group that still waits for members: it never equals a complete plan."""

REMOVED_PREFIX = "\x1f"
"""Marks a removed member's key in a group's record. `member_ids` strips whitespace, which this
character is to Python, so no member source id starts with it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MembersSettings:
    """Where a group job finds its members: `source` attribute, holding member source ids of `job` (a
    user job) or of `groups` (group jobs, this one included for nested groups)."""

    source: str
    job: str
    groups: tuple[str, ...] = ()
    separator: str = ";"
    """Splits a string value (a CSV cell such as `E1;E2`); a list value (JSON Lines, SCIM) is used as is."""
    rule: Expression | None = None
    """Groups by rule (`engine.sources.rules`): the people of `job` it holds true for are members."""
    group_per: str | None = None
    """Groups by rule: a group per distinct value of this attribute of the people of `job`."""

    @property
    def by_rule(self) -> bool:
        """Whether the members are computed from `job`'s people (`rule`, `group_per`), not read."""
        return self.rule is not None or self.group_per is not None

    @property
    def jobs(self) -> tuple[str, ...]:
        """Every job whose objects may be members, in the order a member id is looked up."""
        return (self.job, *self.groups)


RULE_MEMBERS = "members"
"""The attribute in which a group by rule holds its members' source ids (`engine.sources.rules`)."""


def parse_members(path: str, raw: Any) -> MembersSettings:
    raw = as_mapping(path, raw)
    if "rule" in raw or "group_per" in raw:
        return _parse_rule_members(path, raw)
    check_keys(path, raw, ("source", "job", "groups", "separator"), required=("source", "job"))
    separator = string(join(path, "separator"), raw.get("separator", ";"))
    groups_path = join(path, "groups")
    groups = raw.get("groups", [])
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        raise ConfigError(
            groups_path, f"{groups!r} is not a list", "name the group jobs whose groups may be members"
        )
    names = tuple(string(join(groups_path, i), name) for i, name in enumerate(groups))
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(join(groups_path, i), f"{name!r} is named twice", "name each group job once")
    return MembersSettings(
        source=string(join(path, "source"), raw["source"]),
        job=string(join(path, "job"), raw["job"]),
        groups=names,
        separator=separator,
    )


def member_ids(value: Any, separator: str) -> list[str]:
    """The member source ids in a source attribute, in order, without blanks or repeats."""
    if value is None:
        return []
    items = value.split(separator) if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        items = [items]
    return list(dict.fromkeys(text for item in items if item is not None and (text := str(item).strip())))


@dataclass(frozen=True, slots=True)
class MemberPlan:
    """What one group operation does to the members, and the hash the state records once it is applied."""

    members: dict[str, str]
    """Every member the group holds after this operation: member source id -> target id."""
    add: list[str]
    remove: list[str]
    pending: int
    hash: str
    removed: dict[str, str] = field(default_factory=dict)
    """Members removed whose accounts still exist: source id -> the target id the removal addressed."""
    pending_ids: tuple[str, ...] = ()
    """The members not provisioned (yet): source ids of the member job that have no target id."""
    groups: list[str] = field(default_factory=list)
    """The target ids in `add` that are groups (nested), not users."""

    @property
    def record(self) -> dict[str, str]:
        """What the state records for the group once this operation is applied (see the module doc)."""
        if not self.removed:
            return self.members
        return {**self.members, **{REMOVED_PREFIX + m: t for m, t in self.removed.items()}}


class Membership:
    """Resolves the members of a job's groups against the state of its member job."""

    __slots__ = ("_applied", "_groups", "_separator", "_source", "_target_ids")

    def __init__(
        self,
        settings: MembersSettings,
        *,
        target_ids: Mapping[str, str],
        applied: Mapping[str, Mapping[str, str]],
        groups: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self._source = settings.source
        self._separator = settings.separator
        self._target_ids = target_ids
        self._applied = applied
        self._groups = groups

    @property
    def held_count(self) -> int:
        """The memberships the groups hold as applied (the deletion guard's measure of removals)."""
        return sum(
            sum(1 for key in record if not key.startswith(REMOVED_PREFIX))
            for record in self._applied.values()
        )

    @property
    def target_ids(self) -> Mapping[str, str]:
        """The member job's target ids resolved so far, by member source id."""
        return self._target_ids

    def wanted(self, source_id: str, attributes: Mapping[str, Any]) -> list[str]:
        """The member source ids whose target ids planning group `source_id` reads: those it names in
        the source, and those its record holds or removed (a removed member's current target id is
        what tells a rename that the removal missed)."""
        named = member_ids(attributes.get(self._source), self._separator)
        record = self._applied.get(source_id, {})
        return [*named, *(key.removeprefix(REMOVED_PREFIX) for key in record)]

    def resolve(self, target_ids: Mapping[str, str], groups: frozenset[str] | set[str] = frozenset()) -> None:
        """Resolve members against `target_ids` from now on: a cycle loads those of each batch's
        members rather than every member's at once. `groups`: those of the target ids that are groups."""
        self._target_ids = target_ids
        self._groups = groups

    def plan(self, source_id: str, attributes: Mapping[str, Any], attributes_hash: str) -> MemberPlan:
        """The members of one group: those to add and remove, given what its last applied result holds."""
        wanted = member_ids(attributes.get(self._source), self._separator)
        target_ids = self._target_ids
        members = {m: t for m in wanted if (t := target_ids.get(m)) is not None}
        held, removed_before = split_record(self._applied.get(source_id, {}))
        add = {t for m, t in members.items() if held.get(m) != t}
        remove = {t for m, t in held.items() if members.get(m) != t}
        removed: dict[str, str] = {}
        for m, last in (*removed_before.items(), *held.items()):
            if m in members:
                continue  # (back) in the group: added above, nothing to remember
            now = target_ids.get(m)
            if now is None:
                continue  # the account is gone, and with it its memberships
            if now != last:
                remove.add(now)  # moved since the group held it, or since it was removed
            removed[m] = now
        remove -= add
        pending = len(wanted) - len(members)
        hashed: dict[str, Any] = {"attributes": attributes_hash, "members": sorted(members.items())}
        if removed:
            hashed["removed"] = sorted(removed.items())
        digest = attribute_hash(hashed)
        groups = self._groups
        return MemberPlan(
            members,
            sorted(add),
            sorted(remove),
            pending,
            f"{PENDING_PREFIX}{digest}" if pending else digest,
            removed,
            tuple(m for m in wanted if m not in members) if pending else (),
            [t for t in sorted(add) if t in groups] if groups else [],
        )


def split_record(record: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A group's record as (members it holds, members removed: source id -> target id addressed)."""
    held: dict[str, str] = {}
    removed: dict[str, str] = {}
    for key, target_id in record.items():
        if key.startswith(REMOVED_PREFIX):
            removed[key[len(REMOVED_PREFIX) :]] = target_id
        else:
            held[key] = target_id
    return held, removed


def _parse_rule_members(path: str, raw: Mapping[str, Any]) -> MembersSettings:
    """`members: {job, rule, group_per}`: members computed from the people of `job`, not read."""
    for key in ("source", "groups", "separator"):
        if key in raw:
            raise ConfigError(
                join(path, key),
                "does not go with `rule` or `group_per`: the members of a group by rule are computed",
                f"remove `{key}`, or remove `rule` and `group_per` to read members from the source",
            )
    check_keys(path, raw, ("job", "rule", "group_per"), required=("job",))
    rule = None
    if "rule" in raw:
        where = join(path, "rule")
        try:
            rule = parse_expression(string(where, raw["rule"]))
        except ExpressionSyntaxError as exc:
            raise ConfigError(where, str(exc), 'write a condition such as [department] = "Sales"') from None
        if rule.volatile or rule.unique:
            raise ConfigError(
                where, "gives another answer at every evaluation", "base the rule on the person's attributes"
            )
    group_per = string(join(path, "group_per"), raw["group_per"]) if "group_per" in raw else None
    return MembersSettings(
        source=RULE_MEMBERS, job=string(join(path, "job"), raw["job"]), rule=rule, group_per=group_per
    )
