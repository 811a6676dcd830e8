"""The mirror: the inbound SCIM service's resources as they were pushed to it, in the state store.

A cloud identity provider that pushes into Roster (issue 19) reads back what it wrote: GET and list
answer from here, and the jobs whose source is the inbound service read it as their source
(`engine.sources.inbound`), so scheduled cycles, reconciliation and `roster plan` work on pushed data
as on any other. Each write is one transaction, durable before the service answers: a change the
client was told about is never lost, and one the engine did not get to plan at once is found by the
next cycle over the mirror, like any source change.

Ids are Roster's (RFC 7643 §3.1: the service provider assigns `id`); a resource keeps its id, its
`meta.created` and its place through replaces. `version` counts the writes of a resource (its ETag,
`W/"3"`). Among Users, `userName` is unique without regard to case (RFC 7643 §4.1.1), so a second
resource with the name is refused, unless it is the same content again: a client that retries a POST
whose answer it lost gets the resource it created, not a conflict.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from engine.store.schema import mirror
from engine.store.state import StateStore

NAME_ATTRIBUTES = {"User": "userName", "Group": "displayName"}
"""The attribute whose casefolded value a resource is found by (and, for Users, unique by)."""

UNIQUE_NAMES = frozenset({"User"})

SERVER_SET = ("id", "meta")
"""Attributes the service sets: never taken from a request, left out when contents are compared."""

NOT_STORED = ("password",)
"""Secrets a client may send that the mirror does not keep (nor any job provision, for now): a state
store is not a password vault."""

_PAGE = 1_000


class MirrorConflict(Exception):
    """A write that would break the mirror's rules: a name another resource holds, or a version
    that is no longer the current one. `kind` is `uniqueness` or `version`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Stored:
    """A resource as the mirror holds it: its body (with `id` and `meta`) and its version."""

    resource_type: str
    id: str
    body: dict[str, Any]
    version: int

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


class Mirror:
    """The mirror's reads and writes, on the state store's database."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    async def get(self, resource_type: str, resource_id: str) -> Stored | None:
        query = sa.select(mirror.c.body, mirror.c.version).where(
            mirror.c.resource_type == resource_type, mirror.c.id == resource_id
        )
        async with self._state.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Stored(resource_type, resource_id, orjson.loads(row[0]), row[1])

    async def get_many(self, resource_type: str, resource_ids: Sequence[str]) -> dict[str, Stored]:
        """The resources of these ids that the mirror holds, by id."""
        found: dict[str, Stored] = {}
        async with self._state.engine.connect() as conn:
            for start in range(0, len(resource_ids), _PAGE):
                query = sa.select(mirror.c.id, mirror.c.body, mirror.c.version).where(
                    mirror.c.resource_type == resource_type,
                    mirror.c.id.in_(resource_ids[start : start + _PAGE]),
                )
                for row in await conn.execute(query):
                    found[row[0]] = Stored(resource_type, row[0], orjson.loads(row[1]), row[2])
        return found

    async def find(
        self, resource_type: str, *, name: str | None = None, external_id: str | None = None
    ) -> list[str]:
        """The ids of the resources with this name (without regard to case) or this externalId."""
        query = sa.select(mirror.c.id).where(mirror.c.resource_type == resource_type)
        if name is not None:
            query = query.where(mirror.c.name_key == _key(name))
        if external_id is not None:
            query = query.where(mirror.c.external_id == external_id)
        async with self._state.engine.connect() as conn:
            return [row[0] for row in await conn.execute(query.order_by(mirror.c.id))]

    async def create(self, resource_type: str, resource: Mapping[str, Any]) -> tuple[Stored, bool]:
        """Store a new resource under a new id; returns it and whether it was created (False: the same
        content was stored before under its name, and that one is returned)."""
        now = time.time()
        body = _content(resource)
        name = _name(resource_type, body)
        async with self._state.engine.begin() as conn:
            if name is not None and resource_type in UNIQUE_NAMES:
                held = await _holder(conn, resource_type, name, None)
                if held is not None:
                    stored = Stored(resource_type, held[0], orjson.loads(held[1]), held[2])
                    if _content(stored.body) == body:
                        return stored, False
                    raise _taken(resource_type, name, held[0])
            resource_id = uuid.uuid4().hex
            body = _with_meta(body, resource_type, resource_id, created=now, modified=now, version=1)
            await _write(
                conn,
                name,
                mirror.insert().values(
                    resource_type=resource_type,
                    id=resource_id,
                    external_id=_external_id(body),
                    name_key=None if name is None else _key(name),
                    body=orjson.dumps(body).decode(),
                    version=1,
                    created_at=now,
                    updated_at=now,
                ),
            )
        return Stored(resource_type, resource_id, body, 1), True

    async def replace(
        self,
        resource_type: str,
        resource_id: str,
        resource: Mapping[str, Any],
        *,
        if_version: int | None = None,
    ) -> Stored | None:
        """Replace a resource's content (PUT, or a PATCH applied), keeping its id and creation time;
        None when there is none. `if_version`: only if that is still its version (If-Match)."""
        now = time.time()
        body = _content(resource)
        name = _name(resource_type, body)
        async with self._state.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(mirror.c.body, mirror.c.version, mirror.c.created_at)
                    .where(mirror.c.resource_type == resource_type, mirror.c.id == resource_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None
            old = orjson.loads(row[0])
            if if_version is not None and row[1] != if_version:
                raise MirrorConflict(
                    "version", f"{resource_type} {resource_id} is at version {row[1]}, not {if_version}"
                )
            if _content(old) == body:
                return Stored(resource_type, resource_id, old, row[1])  # nothing changed: no new version
            kept = name is not None and name == _name(resource_type, old)  # held already: unique
            if name is not None and resource_type in UNIQUE_NAMES and not kept:
                held = await _holder(conn, resource_type, name, resource_id)
                if held is not None:
                    raise _taken(resource_type, name, held[0])
            version = row[1] + 1
            body = _with_meta(body, resource_type, resource_id, created=row[2], modified=now, version=version)
            await _write(
                conn,
                name,
                mirror.update()
                .where(mirror.c.resource_type == resource_type, mirror.c.id == resource_id)
                .values(
                    external_id=_external_id(body),
                    name_key=None if name is None else _key(name),
                    body=orjson.dumps(body).decode(),
                    version=version,
                    updated_at=now,
                ),
            )
        return Stored(resource_type, resource_id, body, version)

    async def delete(self, resource_type: str, resource_id: str, *, if_version: int | None = None) -> bool:
        """Remove a resource; whether there was one. `if_version`: only if that is still its version."""
        where = (mirror.c.resource_type == resource_type, mirror.c.id == resource_id)
        async with self._state.engine.begin() as conn:
            if if_version is not None:
                row = (
                    await conn.execute(sa.select(mirror.c.version).where(*where).with_for_update())
                ).first()
                if row is not None and row[0] != if_version:
                    raise MirrorConflict(
                        "version", f"{resource_type} {resource_id} is at version {row[0]}, not {if_version}"
                    )
            done = await conn.execute(mirror.delete().where(*where))
        return bool(done.rowcount)

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


def _taken(resource_type: str, name: str, holder: str) -> MirrorConflict:
    attribute = NAME_ATTRIBUTES[resource_type]
    return MirrorConflict("uniqueness", f"{attribute} {name!r} is already held by {resource_type} {holder}")


async def _write(conn: Any, name: str | None, statement: Any) -> None:
    """Run an insert or update of the mirror; a name that another write took meanwhile (the unique
    index) is the same conflict as one found before."""
    try:
        await conn.execute(statement)
    except sa.exc.IntegrityError as exc:
        raise MirrorConflict("uniqueness", f"userName {name!r} is already held by another User") from exc


async def _holder(conn: Any, resource_type: str, name: str, other_than: str | None) -> Any:
    """The (id, body, version) of another resource holding `name`, if one does."""
    query = sa.select(mirror.c.id, mirror.c.body, mirror.c.version).where(
        mirror.c.resource_type == resource_type, mirror.c.name_key == _key(name)
    )
    if other_than is not None:
        query = query.where(mirror.c.id != other_than)
    return (await conn.execute(query.limit(1))).first()


def _content(resource: Mapping[str, Any]) -> dict[str, Any]:
    """What the client gave: everything but what the service sets and the secrets it does not keep."""
    return {k: v for k, v in resource.items() if k not in SERVER_SET and k.lower() not in NOT_STORED}


def _name(resource_type: str, body: Mapping[str, Any]) -> str | None:
    value = body.get(NAME_ATTRIBUTES.get(resource_type, ""))
    return value if isinstance(value, str) and value.strip() else None


def _external_id(body: Mapping[str, Any]) -> str | None:
    value = body.get("externalId")
    return value if isinstance(value, str) else None


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _with_meta(
    body: dict[str, Any],
    resource_type: str,
    resource_id: str,
    *,
    created: float,
    modified: float,
    version: int,
) -> dict[str, Any]:
    return {
        **body,
        "id": resource_id,
        "meta": {
            "resourceType": resource_type,
            "created": _timestamp(created),
            "lastModified": _timestamp(modified),
            "version": f'W/"{version}"',
        },
    }


def _timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
