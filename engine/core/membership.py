"""Group membership: which members a group should hold in the target, by their target ids.

A group job names the user job whose objects are its members (`members.job`, on the same target). The
source gives each group's members as source ids of that job, and that job's state gives their target
ids. A member the state does not know yet (not provisioned so far, or failed) is *pending*: the group
is sent with the members that resolve, and its state records a hash marked pending, so the group is not
taken as applied; a later cycle, once the member resolves, adds it.

What a group holds is recorded per member (source id -> target id) from the results, so a member that
leaves the source is removed from the group, and one whose account was replaced is swapped, without
touching members that someone else added in the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.config.validation import as_mapping, check_keys, join, string
from engine.mapping.base import attribute_hash

PENDING_PREFIX = "pending:"
"""Starts the applied hash of a group that still waits for members: it never equals a complete plan."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MembersSettings:
    """Where a group job finds its members: `source` attribute, holding member source ids of `job`."""

    source: str
    job: str
    separator: str = ";"
    """Splits a string value (a CSV cell such as `E1;E2`); a list value (JSON Lines, SCIM) is used as is."""


def parse_members(path: str, raw: Any) -> MembersSettings:
    raw = as_mapping(path, raw)
    check_keys(path, raw, ("source", "job", "separator"), required=("source", "job"))
    separator = string(join(path, "separator"), raw.get("separator", ";"))
    return MembersSettings(
        source=string(join(path, "source"), raw["source"]),
        job=string(join(path, "job"), raw["job"]),
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


class Membership:
    """Resolves the members of a job's groups against the state of its member job."""

    __slots__ = ("_applied", "_separator", "_source", "_target_ids")

    def __init__(
        self,
        settings: MembersSettings,
        *,
        target_ids: Mapping[str, str],
        applied: Mapping[str, Mapping[str, str]],
    ) -> None:
        self._source = settings.source
        self._separator = settings.separator
        self._target_ids = target_ids
        self._applied = applied

    def wanted(self, attributes: Mapping[str, Any]) -> list[str]:
        """The member source ids one group names in the source."""
        return member_ids(attributes.get(self._source), self._separator)

    def resolve(self, target_ids: Mapping[str, str]) -> None:
        """Resolve members against `target_ids` from now on: a cycle loads those of each batch's
        members rather than every member's at once."""
        self._target_ids = target_ids

    def plan(self, source_id: str, attributes: Mapping[str, Any], attributes_hash: str) -> MemberPlan:
        """The members of one group: those to add and remove, given what its last applied result holds."""
        wanted = member_ids(attributes.get(self._source), self._separator)
        target_ids = self._target_ids
        members = {m: t for m in wanted if (t := target_ids.get(m)) is not None}
        applied = self._applied.get(source_id, {})
        add = sorted({t for m, t in members.items() if applied.get(m) != t})
        remove = sorted({t for m, t in applied.items() if members.get(m) != t} - set(add))
        pending = len(wanted) - len(members)
        digest = attribute_hash({"attributes": attributes_hash, "members": sorted(members.items())})
        return MemberPlan(members, add, remove, pending, f"{PENDING_PREFIX}{digest}" if pending else digest)
