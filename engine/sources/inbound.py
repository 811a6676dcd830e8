"""The inbound SCIM service as a job's source (`type: scim_inbound`): its mirror, read whole.

What an identity provider pushed is stored in the mirror (`engine.store.mirror`) before it is
answered; a job over the inbound service reads the mirror as any source is read, so a scheduled cycle
finds whatever a push did not get to plan at once (the engine stopped in between), reconciliation
compares the target with it, and `roster plan` shows what a cycle would do.

An object's source id is the resource's `id`, which Roster assigned: the ids the provider then uses
for group members and a manager are source ids of these jobs, so `members:` and `reference:` resolve
them with no mapping. Attributes are flattened as the SCIM source flattens them
(`engine.sources.scim_flatten`); a group's `members` become the list of its members' ids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from common.config.validation import check_keys, choice, join
from common.errors import ConfigError, SourceError
from engine.model import SourceObject
from engine.sources.base import ProblemLog
from engine.sources.scim_flatten import flatten
from engine.store.mirror import Mirror, Stored
from engine.store.state import StateStore

RESOURCE_TYPES = {"user": "User", "group": "Group"}
_KEYS = ("type", "resource_type")


@dataclass(frozen=True, slots=True)
class InboundSourceSettings:
    """A job's inbound source: which resources of the mirror it reads."""

    resource_type: str


def parse_inbound_source(path: str, raw: Mapping[str, Any], *, object_type: str) -> InboundSourceSettings:
    """Validate a job's `source:` of type scim_inbound; the resource type follows the job's
    object_type unless given (it must agree)."""
    check_keys(path, raw, _KEYS)
    expected = RESOURCE_TYPES.get(object_type)
    if expected is None:
        raise ConfigError(
            path, f"reads Users or Groups, not {object_type}s", "make the job a user or group job"
        )
    given = raw.get("resource_type", expected)
    choice(join(path, "resource_type"), given, tuple(RESOURCE_TYPES.values()))
    if given != expected:
        raise ConfigError(
            join(path, "resource_type"),
            f"is {given}, but the job's object_type is {object_type}",
            f"leave resource_type out, or write {expected}",
        )
    return InboundSourceSettings(resource_type=given)


class InboundSource(ProblemLog):
    """Reads the mirror's resources of one type; see the module docstring."""

    full = True
    """The mirror holds every resource pushed and not deleted."""
    watermark = None

    def __init__(self, settings: InboundSourceSettings, state: StateStore | None) -> None:
        super().__init__()
        if state is None:
            raise SourceError(
                "an inbound SCIM source is read from the state store, which this command was not given: "
                "pass --state (or run it where the engine runs)"
            )
        self.settings = settings
        self._mirror = Mirror(state)

    def __repr__(self) -> str:
        return f"InboundSource({self.settings.resource_type}s)"

    async def batches(self, size: int) -> AsyncIterator[list[SourceObject]]:
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self._forget_problems()
        async for page in self._mirror.pages(self.settings.resource_type, size):
            yield [as_source_object(stored) for stored in page]


def as_source_object(stored: Stored) -> SourceObject:
    """A mirrored resource as a source object: its id, its flattened attributes, its members' ids."""
    attributes = flatten(stored.body)
    members = stored.body.get("members")
    if isinstance(members, list):
        attributes["members"] = [m["value"] for m in members if isinstance(m, dict) and m.get("value")]
    return SourceObject(stored.id, attributes)
