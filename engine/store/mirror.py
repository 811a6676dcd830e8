"""The mirror: the inbound SCIM service's resources as they were pushed to it, in the state store.

A cloud identity provider that pushes into Roster (issue 19) reads back what it wrote: GET and list
answer from here, and the jobs whose source is the inbound service read it as their source
(`engine.sources.inbound`), so scheduled cycles, reconciliation and `roster plan` work on pushed data
as on any other. Each write is durable before the service answers (many are committed together:
`engine.store.mirror_writes`): a change the client was told about is never lost, and one the engine
did not get to plan at once is found by the next cycle over the mirror, like any source change.

Ids are Roster's (RFC 7643 §3.1: the service provider assigns `id`); a resource keeps its id, its
`meta.created` and its place through replaces. `version` counts the writes of a resource (its ETag,
`W/"3"`). Among Users, `userName` is unique without regard to case (RFC 7643 §4.1.1), so a second
resource with the name is refused, unless it is the same content again: a client that retries a POST
whose answer it lost gets the resource it created, not a conflict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa

from engine.store.mirror_writes import (
    NAME_ATTRIBUTES,
    NOT_STORED,
    SERVER_SET,
    UNIQUE_NAMES,
    Key,
    MirrorConflict,
    MirrorTx,
    MirrorWriter,
    Program,
    Stored,
    name_key,
)
from engine.store.schema import mirror
from engine.store.state import StateStore

__all__ = [
    "NAME_ATTRIBUTES",
    "NOT_STORED",
    "SERVER_SET",
    "UNIQUE_NAMES",
    "Mirror",
    "MirrorConflict",
    "MirrorTx",
    "Stored",
]

T = TypeVar("T")
_PAGE = 1_000


class Mirror:
    """The mirror's reads, and its writes (`write`), on the state store's database."""

    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._writer = MirrorWriter(state)

    async def write(self, program: Program[T], *, keys: Iterable[Key] = (), names: Iterable[str] = ()) -> T:
        """Run `program` on a `MirrorTx`; its result once the transaction that holds it committed.
        `keys` and `names`: the resources and User names it will read, read with those of the
        programs beside it (see `MirrorWriter.run`)."""
        return await self._writer.run(program, keys=keys, names=names)

    async def aclose(self) -> None:
        await self._writer.aclose()

    async def create(self, resource_type: str, resource: dict[str, Any]) -> tuple[Stored, bool]:
        """`MirrorTx.create` alone."""
        return await self.write(lambda tx: tx.create(resource_type, resource))

    async def get(self, resource_type: str, resource_id: str) -> Stored | None:
        query = sa.select(mirror.c.body, mirror.c.version).where(
            mirror.c.resource_type == resource_type, mirror.c.id == resource_id
        )
        async with self._state.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Stored(resource_type, resource_id, orjson.loads(row[0]), row[1])

    async def find(
        self, resource_type: str, *, name: str | None = None, external_id: str | None = None
    ) -> list[str]:
        """The ids of the resources with this name (without regard to case) or this externalId."""
        query = sa.select(mirror.c.id).where(mirror.c.resource_type == resource_type)
        if name is not None:
            query = query.where(mirror.c.name_key == name_key(name))
        if external_id is not None:
            query = query.where(mirror.c.external_id == external_id)
        async with self._state.engine.connect() as conn:
            return [row[0] for row in await conn.execute(query.order_by(mirror.c.id))]

    async def count(self, resource_type: str) -> int:
        query = sa.select(sa.func.count()).select_from(mirror).where(mirror.c.resource_type == resource_type)
        async with self._state.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def pages(self, resource_type: str, size: int = _PAGE) -> AsyncIterator[list[Stored]]:
        """Every resource of the type, in id order, `size` at a time (keyset paging: a resource
        written meanwhile does not shift the pages)."""
        after = ""
        while True:
            query = (
                sa.select(mirror.c.id, mirror.c.body, mirror.c.version)
                .where(mirror.c.resource_type == resource_type, mirror.c.id > after)
                .order_by(mirror.c.id)
                .limit(size)
            )
            async with self._state.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            if not rows:
                return
            yield [Stored(resource_type, r[0], orjson.loads(r[1]), r[2]) for r in rows]
            after = rows[-1][0]
