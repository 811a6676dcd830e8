"""Reference attributes: a source attribute that holds source ids of another job's objects (or of the
same job's), sent to the target as those objects' target ids: a user's manager as the manager's SCIM id,
DN or SQL key.

A mapping `{target: enterprise.manager.value, reference: {source: manager, job: people}}` copies the
source ids, and the object's hash covers them as they are: an unchanged cycle looks up no target id.
An object that is planned (it changed, or is new) gets the target ids put in place (`put`), loaded
from the state for the objects a batch plans. A reference that does not resolve (the referenced object
is not provisioned yet, failed, or left) is sent empty, and the object's hash is marked pending, as a
group with pending members is: it is not taken as applied, and is planned again each cycle until the
referenced object has a target id.

A referenced object whose target id changes (an LDAP rename moves its DN) or goes (it is deleted)
is a *move*, which the state store records itself (`StateStore.moves`); the next cycle of each job
whose references name it plans the objects that do (`names_any`), and updates them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from engine.core.membership import PENDING_PREFIX
from engine.mapping.base import DirectMapping, Mapper
from engine.model import Mapped, SourceObject


@dataclass(frozen=True, slots=True)
class ResolvedReference:
    """One source id a reference attribute names, and the target id it is sent as (None: the object
    it names has no target id yet, so it is sent empty), for `roster plan` and `roster preview`."""

    attribute: str
    job: str
    source_id: str
    target_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceMapping(DirectMapping):
    """Copies the source ids in `source`; `job` is the job whose objects they name."""

    job: str = ""


class References:
    """Resolves a job's reference attributes against the state of the jobs they name."""

    __slots__ = ("_by_job", "_mappings")

    def __init__(self, mappings: Sequence[ReferenceMapping]) -> None:
        self._mappings = tuple(mappings)
        self._by_job: dict[str, dict[str, str]] = {m.job: {} for m in self._mappings}

    @property
    def jobs(self) -> tuple[str, ...]:
        """The jobs whose objects the references name."""
        return tuple(self._by_job)

    def wanted(self, batch: Iterable[SourceObject]) -> dict[str, set[str]]:
        """The referenced source ids of a batch, by the job that holds them."""
        wanted: dict[str, set[str]] = {job: set() for job in self._by_job}
        for m in self._mappings:
            ids = wanted[m.job]
            source = m.source
            for obj in batch:
                value = obj.attributes.get(source)
                if type(value) is str:  # most: one id
                    if text := value.strip():
                        ids.add(text)
                elif value is not None:
                    ids.update(_ids(value))
        return wanted

    def resolve(self, job: str, target_ids: Mapping[str, str]) -> None:
        """Resolve `job`'s references against these target ids from now on (a batch's)."""
        self._by_job[job] = dict(target_ids)

    def shown(self, source: Mapping[str, Any]) -> list[ResolvedReference]:
        """Each source id that `source` (an object's source attributes) names, with the target id it
        resolves to in the batch resolved last."""
        return [
            ResolvedReference(m.target, m.job, source_id, self._by_job[m.job].get(source_id))
            for m in self._mappings
            for source_id in _ids(source.get(m.source))
        ]

    def names_any(self, source: Mapping[str, Any], moved: Mapping[str, Set[str]]) -> bool:
        """Whether `source` (an object's source attributes) names an object that `moved` holds (by
        job)."""
        for m in self._mappings:
            ids = moved.get(m.job)
            if ids and any(i in ids for i in _ids(source.get(m.source))):
                return True
        return False

    def put(self, attributes: dict[str, Any]) -> int:
        """Put the target ids in place of the source ids in mapped `attributes` (in place), after they
        were hashed; returns how many did not resolve (sent empty)."""
        pending = 0
        for m in self._mappings:
            value = attributes.get(m.target)
            if value is None:
                continue
            known = self._by_job[m.job]
            if type(value) is str:  # most: one id, and most resolve
                target_id = known.get(value)
                if target_id is None:
                    target_id = known.get(value.strip())
                    pending += 1 if target_id is None and value.strip() else 0
                attributes[m.target] = target_id
            elif isinstance(value, list):
                ids = _ids(value)
                resolved = [t for i in ids if (t := known.get(i)) is not None]
                pending += len(ids) - len(resolved)
                attributes[m.target] = resolved or None
            else:
                one = _ids(value)
                target_id = known.get(one[0]) if one else None
                pending += 1 if one and target_id is None else 0
                attributes[m.target] = target_id
        return pending


def map_object(mapper: Mapper, source: Mapping[str, Any], references: References | None) -> Mapped:
    """`source` mapped, its hash as a cycle compares it (the source ids the references name, marked
    pending when one did not resolve), and its references as the target ids `references` resolved
    last, as they are sent."""
    mapped = mapper.map(source)
    if references is not None and (pending := references.put(mapped.attributes)):
        mapped.pending = pending
        mapped.hash = PENDING_PREFIX + mapped.hash
    return mapped


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return [text for item in items if item is not None and (text := str(item).strip())]
