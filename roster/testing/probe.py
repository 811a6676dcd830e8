"""How the conformance kit reads a target's truth: the `Probe` protocol an author implements, its two
optional capabilities (`Planter`, `Setter`), and `ListingProbe`, a probe made from a connector's own
listing for targets whose author wrote none (`roster connector-check`).

The kit never trusts the connector's word about the target: every check reads the outcome back through
the probe, which talks to the target on its own (a SQL select, a SCIM GET, an LDAP search).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from common.errors import ConnectorError
from queues.contracts import MEMBERS
from workers.connectors.base import Lister


@runtime_checkable
class Probe(Protocol):
    """Reads the target, independently of the connector under test."""

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        """The object's attributes by the names the job maps (a group's members under `"members"`, as
        target ids), or None when there is no such object."""
        ...

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        """The target ids of every object whose `attribute` holds `value` (as the target compares it)."""
        ...


@runtime_checkable
class Planter(Protocol):
    """A probe that can create an object outside the connector (for `match:planted`)."""

    async def plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        """Create an object holding `attributes`; its target id."""
        ...


@runtime_checkable
class Setter(Protocol):
    """A probe that can set attributes outside the connector (for `crud:update-unmapped`)."""

    async def set(self, object_type: str, target_id: str, attributes: Mapping[str, Any]) -> None: ...


class ListingProbe:
    """A probe that lists the target through the connector's `Lister` capability: a read is a listing
    searched for one id. It can neither plant nor set. Slow on a large target, which is why an author's
    own probe is better; good enough for a check from the command line."""

    def __init__(self, lister: Lister, attributes: Mapping[str, Sequence[str]]) -> None:
        """`attributes`: per object type, the attributes to read (the sample's)."""
        self._lister = lister
        self._attributes = {kind: list(names) for kind, names in attributes.items()}

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        for row in await self._rows(object_type):
            if row["__id__"] == target_id:
                return {name: value for name, value in row.items() if name != "__id__"}
        return None

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        return [
            row["__id__"]
            for row in await self._rows(object_type, [attribute])
            if _holds(row.get(attribute), value)
        ]

    async def _rows(self, object_type: str, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
        wanted = list(dict.fromkeys([*self._attributes.get(object_type, []), *extra]))
        if object_type == "group" and MEMBERS not in wanted:
            wanted.append(MEMBERS)
        try:
            fields = self._lister.listing_fields(object_type, wanted)
        except ConnectorError:
            wanted = [name for name in wanted if name != MEMBERS]  # a target that lists no members
            fields = self._lister.listing_fields(object_type, wanted)
        rows: list[dict[str, Any]] = []
        async for page in self._lister.list_objects(object_type, fields):
            for listed in page:
                rows.append({"__id__": str(listed[0]), **dict(zip(fields, listed[1:], strict=True))})
        return rows


def _holds(held: Any, value: Any) -> bool:
    if isinstance(held, list):
        return any(_holds(one, value) for one in held)
    if isinstance(held, str) and isinstance(value, str):
        return held.casefold() == value.casefold()
    return bool(held == value)
