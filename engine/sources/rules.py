"""Groups by rule ("birthright" groups): the source of a group job whose members are computed from the
people of its member job (`members: {job, rule, group_per}`), not read from a column.

Each cycle of the group job reads the member job's source again, whole, and keeps the people the member
job provisions (its scoping) for whom `rule` holds (CBool of its value, as IIF takes a condition). Without
`group_per` they are the members of one group, whose source id is the job's name; with it, of a group per
distinct value of that attribute (each value of a list), whose source id is the value. Each group is one
source object `{value, members}`: the job's mappings name it from `[value]`, and the members go through
the planning every group job has (per-member records, removals, pending members), so a person who
moves from Sales to Marketing leaves one group and joins the other in the group job's next cycle.

A row of the people that could not be read, or on which the rule fails, may be anyone's member: the read
is refused whole, naming them, and no group changes (a row that could not be read is not a person who
left). The groups are formed in memory: an id per person, about 60 bytes each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from common.errors import ConfigError, SourceError
from engine.core.membership import RULE_MEMBERS
from engine.core.scoping import ScopingFilter
from engine.mapping.expression import Expression
from engine.mapping.functions.errors import MappingError
from engine.mapping.functions.values import OMIT, truth
from engine.model import SourceObject
from engine.sources.base import ProblemLog, Source

if TYPE_CHECKING:
    from engine.store.state import StateStore

READ_BATCH = 5_000
"""People read at a time from the member job's source."""


class Opens(Protocol):
    """A job's source settings (`engine.sources.registry.SourceSettings`), as far as they are used here."""

    def open(self, since: str | None = None, *, state: StateStore | None = None) -> Source: ...


@dataclass(frozen=True, slots=True)
class RuleGroupSettings:
    """What a group job by rule reads: its member job's source and scoping, its rule and grouping."""

    people: Opens
    scoping: ScopingFilter | None
    rule: Expression | None
    group_per: str | None
    group_id: str
    """The one group's source id, without `group_per`: the group job's name."""
    member_job: str


def refuse_source(path: str, _raw: Mapping[str, Any]) -> None:
    """`type: rules` is not written: a group job by rule reads its member job's source."""
    raise ConfigError(
        path,
        "a group job whose members are by rule reads its member job's source",
        "remove `source:` and give `members: {job, rule, group_per}`",
    )


class RuleGroupSource(ProblemLog):
    """The groups of a job by rule, formed from one whole read of the people (see the module doc)."""

    full = True
    watermark = None

    def __init__(self, settings: RuleGroupSettings, state: StateStore | None) -> None:
        super().__init__()
        self.settings = settings
        self.state = state

    async def batches(self, size: int) -> AsyncIterator[list[SourceObject]]:
        groups = await self.groups()
        objects = [
            SourceObject(group_id, {"value": group_id, RULE_MEMBERS: members})
            for group_id, members in sorted(groups.items())
        ]
        for start in range(0, len(objects), max(size, 1)):
            yield objects[start : start + size]

    async def groups(self) -> dict[str, list[str]]:
        """Each group's member source ids, in the people source's order."""
        settings = self.settings
        people = settings.people.open(None, state=self.state)  # whole: a group is whoever is in it
        scope = settings.scoping.matches if settings.scoping is not None else None
        rule = settings.rule.evaluate if settings.rule is not None else None
        group_per = settings.group_per
        groups: dict[str, list[str]] = {} if group_per is not None else {settings.group_id: []}
        failed: list[str] = []
        async for batch in people.batches(READ_BATCH):
            for person in batch:
                attributes = person.attributes
                try:
                    if scope is not None and not scope(attributes):
                        continue
                    if rule is not None:
                        held = rule(attributes)
                        if held is OMIT or not truth(held):
                            continue
                except MappingError as exc:
                    failed.append(f"{person.source_id}: {exc}")
                    continue
                if group_per is None:
                    groups[settings.group_id].append(person.source_id)
                    continue
                for value in _values(attributes.get(group_per)):
                    groups.setdefault(value, []).append(person.source_id)
        if people.skipped or failed:
            raise SourceError(_refusal(settings.member_job, people.skipped, people.problems, failed))
        return groups


def _values(value: Any) -> list[str]:
    """The groups an attribute's value puts a person in: each non-empty value, as text."""
    items = value if isinstance(value, list | tuple) else [value]
    return list(dict.fromkeys(text for item in items if item is not None and (text := str(item).strip())))


def _refusal(job: str, skipped: int, problems: list[Any], failed: list[str]) -> str:
    """Why the groups were not formed, naming the first rows at fault."""
    said: list[str] = []
    if skipped:
        first = "; ".join(f"line {p.line}: {p.message}" for p in problems[:3])
        said.append(f"{skipped} row(s) of the source of job {job!r} could not be read ({first})")
    if failed:
        said.append(f"the rule failed on {len(failed)} person(s) ({'; '.join(failed[:3])})")
    return (
        " and ".join(said) + ": no group by rule was changed, since those people may be anyone's members; "
        "fix the rows (or the rule) and the next cycle forms the groups"
    )
