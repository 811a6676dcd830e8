"""Reference attributes: a source attribute that holds source ids of another job's objects (or of the
same job's), sent to the target as those objects' target ids: a user's manager as the manager's SCIM id,
DN or SQL key.

A mapping `{target: enterprise.manager.value, reference: {source: manager, job: people}}` copies the
source ids; before planning, the cycle loads the referenced objects' target ids from the state (a batch
at a time) and the planner puts them in place. A reference that does not resolve (the referenced object
is not provisioned yet, failed, or left) is sent empty, and the object's hash is marked pending, as a
group with pending members is: it is not taken as applied, and the cycle after the referenced object
exists sets it. A referenced object whose target id changes (an LDAP rename moves its DN) changes the
hash of every object that points to it, which are then updated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

from engine.core.membership import PENDING_PREFIX
from engine.mapping.base import DirectMapping
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

    def apply(self, mapped: Mapped) -> int:
        """Put the target ids in place of the source ids in `mapped` (in place); returns how many did
        not resolve (sent empty), and marks the hash pending when any did not.

        The hash becomes a digest of the mapped hash (which covers the source ids) and the target ids
        put in place: either changing changes it, and the attributes are not hashed a second time."""
        pending = 0
        attributes = mapped.attributes
        parts = [mapped.hash]
        for m in self._mappings:
            value = attributes.get(m.target)
            if value is None:
                parts.append("")
                continue
            known = self._by_job[m.job]
            if type(value) is str:  # most: one id, and most resolve
                target_id = known.get(value)
                if target_id is None:
                    target_id = known.get(value.strip())
                    pending += 1 if target_id is None and value.strip() else 0
                attributes[m.target] = target_id
                parts.append(target_id or "")
                continue
            if isinstance(value, list):
                ids = _ids(value)
                resolved = [t for i in ids if (t := known.get(i)) is not None]
                pending += len(ids) - len(resolved)
                attributes[m.target] = resolved or None
            else:
                one = _ids(value)
                target_id = known.get(one[0]) if one else None
                pending += 1 if one and target_id is None else 0
                attributes[m.target] = target_id
            resolved = attributes[m.target]
            parts.append("\x1e".join(resolved) if isinstance(resolved, list) else resolved or "")
        # Ids are text: joined by separators no id holds, a digest of them is cheap and exact.
        digest = blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
        mapped.hash = f"{PENDING_PREFIX}{digest}" if pending else digest
        return pending


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return [text for item in items if item is not None and (text := str(item).strip())]
