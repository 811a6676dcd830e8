"""Writes to the mirror, many in one transaction: a unit of work, and the writer that groups them.

Each write to the mirror reads before it writes (is the name held? is the version still the one the
client named?), and a transaction per write costs more round trips to the database than its checks
cost CPU: on SQLite through aiosqlite about 2 ms a write, 450 writes a second. So writes run as
*programs* on a `MirrorTx`: a program's reads come from what the transaction read already (and what
the programs before it wrote), its writes are kept in memory, checked one after another exactly as if
each were alone, and the transaction sends them to the database together (a few statements for any
number) and commits. `MirrorWriter` runs the programs that arrive while a transaction is under way as
the next one (group commit): a `/Bulk` request is one program, a PATCH another, and nothing is answered
before the transaction that holds it has committed.

A program that fails (a conflict it does not catch, a refused request) leaves no trace in the
transaction: what it wrote is undone before the next program runs. A transaction that the database
refuses fails every program in it, and none of them was stored.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa

from common.errors import StateError
from common.peers.sql_bulk import BulkStatement
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

MAX_PROGRAMS = 64
"""Programs in one transaction, at most: a burst is committed in a few steps, not one long one."""

_PER_QUERY = 500

T = TypeVar("T")
Key = tuple[str, str]
"""(resource type, id)."""


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


@dataclass(frozen=True, slots=True)
class _Row:
    body: dict[str, Any]
    version: int
    created_at: float
    updated_at: float
    name_key: str | None

    def stored(self, resource_type: str, resource_id: str) -> Stored:
        return Stored(resource_type, resource_id, self.body, self.version)


Program = Callable[["MirrorTx"], T]


class MirrorTx:
    """The writes of one transaction: checked one after another against what the mirror holds and
    what the writes before them did, sent to the database by `flush`."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        """Where the transaction reads (not the write transaction: see `MirrorWriter`)."""
        self._rows: dict[Key, _Row | None] = {}
        """Every resource read or written, as it is now (None: there is none)."""
        self._read: dict[Key, _Row | None] = {}
        """What the database holds of each resource written, for the flush."""
        self._holders: dict[str, str | None] = {}
        """A User name's key: the id of the User holding it now (None: nobody)."""
        self._undo: list[tuple[dict[Any, Any], Any, Any, bool]] = []

    # -- Reads ------------------------------------------------------------------------------------------

    def prefetch(self, keys: Iterable[Key] = (), names: Iterable[str] = ()) -> None:
        """Read these resources and these User names' holders in a few queries, not one each."""
        by_type: dict[str, list[str]] = {}
        for resource_type, resource_id in keys:
            if (resource_type, resource_id) not in self._rows:
                by_type.setdefault(resource_type, []).append(resource_id)
        for resource_type, ids in by_type.items():
            self._load(resource_type, mirror.c.id, sorted(set(ids)))
        wanted = sorted({name_key(n) for n in names} - self._holders.keys())
        found = self._load("User", mirror.c.name_key, wanted)
        for key in wanted:
            self._holders.setdefault(key, found.get(key))

    def get(self, resource_type: str, resource_id: str) -> Stored | None:
        row = self._row(resource_type, resource_id)
        return None if row is None else row.stored(resource_type, resource_id)

    # -- Writes -----------------------------------------------------------------------------------------

    def create(self, resource_type: str, resource: Mapping[str, Any]) -> tuple[Stored, bool]:
        """Store a new resource under a new id; returns it and whether it was created (False: the same
        content was stored before under its name, and that one is returned)."""
        body = content(resource)
        name = resource_name(resource_type, body)
        if name is not None and resource_type in UNIQUE_NAMES:
            holder = self._holder(name_key(name))
            if holder is not None:
                held = self._row(resource_type, holder)
                assert held is not None  # a holder's row is known
                if content(held.body) == body:
                    return held.stored(resource_type, holder), False
                raise _taken(resource_type, name, holder)
        resource_id = os.urandom(16).hex()  # as random as uuid4, without its object
        now = time.time()
        row = _Row(
            with_meta(body, resource_type, resource_id, created=now, modified=now, version=1),
            1,
            now,
            now,
            None if name is None else name_key(name),
        )
        self._set(self._read, (resource_type, resource_id), None)
        self._put(resource_type, resource_id, row)
        return row.stored(resource_type, resource_id), True

    def update(
        self,
        resource_type: str,
        resource_id: str,
        change: Callable[[Stored], Mapping[str, Any]],
        *,
        if_version: int | None = None,
    ) -> Stored | None:
        """Replace a resource's content with what `change` makes of it (PUT: the request's body; PATCH:
        the body patched), keeping its id and creation time; None when there is none. `if_version`:
        only if that is still its version (If-Match). What `change` raises is the write's answer."""
        row = self._current(resource_type, resource_id, if_version)
        if row is None:
            return None
        body = content(change(row.stored(resource_type, resource_id)))
        if content(row.body) == body:
            return row.stored(resource_type, resource_id)  # nothing changed: no new version
        name = resource_name(resource_type, body)
        key = None if name is None else name_key(name)
        if name is not None and key is not None and resource_type in UNIQUE_NAMES and key != row.name_key:
            holder = self._holder(key)
            if holder is not None and holder != resource_id:
                raise _taken(resource_type, name, holder)
        now = time.time()
        version = row.version + 1
        created = row.created_at
        new = _Row(
            with_meta(body, resource_type, resource_id, created=created, modified=now, version=version),
            version,
            row.created_at,
            now,
            key,
        )
        self._put(resource_type, resource_id, new)
        return new.stored(resource_type, resource_id)

    def delete(self, resource_type: str, resource_id: str, *, if_version: int | None = None) -> bool:
        """Remove a resource; whether there was one. `if_version`: only if that is still its version."""
        if self._current(resource_type, resource_id, if_version) is None:
            return False
        self._put(resource_type, resource_id, None)
        return True

    # -- The transaction --------------------------------------------------------------------------------

    def mark(self) -> int:
        return len(self._undo)

    def undo(self, mark: int) -> None:
        """Forget what was written since `mark`: a program that failed leaves nothing behind."""
        while len(self._undo) > mark:
            mapping, key, previous, existed = self._undo.pop()
            if existed:
                mapping[key] = previous
            else:
                mapping.pop(key, None)

    def flush(self, conn: sa.Connection) -> None:
        """Send what the programs wrote, in the write transaction `conn`: deletes, then updates, then
        inserts. A User renamed lets its old name go (NULL) before any name is taken, so no order of
        renames trips the unique index."""
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        renamed: list[dict[str, Any]] = []
        deletes: list[dict[str, Any]] = []
        for (resource_type, resource_id), was in self._read.items():
            now = self._rows[(resource_type, resource_id)]
            where = {"t": resource_type, "i": resource_id}
            if now is None:
                if was is not None:
                    deletes.append(where)
                continue
            row = {
                "resource_type": resource_type,
                "id": resource_id,
                "external_id": external_id(now.body),
                "name_key": now.name_key,
                "body": orjson.dumps(now.body).decode(),
                "version": now.version,
                "created_at": now.created_at,
                "updated_at": now.updated_at,
            }
            if was is None:
                inserts.append(row)
            elif now is not was:
                # bind names other than the columns' own, which SQLAlchemy keeps for itself
                updates.append({**where, **{f"v_{c}": row[c] for c in _UPDATED}})
                if was.name_key != now.name_key and was.name_key is not None:
                    renamed.append(where)
        same = (mirror.c.resource_type == sa.bindparam("t"), mirror.c.id == sa.bindparam("i"))
        if deletes:
            conn.execute(mirror.delete().where(*same), deletes)
        if renamed:
            conn.execute(mirror.update().where(*same).values(name_key=None), renamed)
        if updates:
            statement = mirror.update().where(*same).values({c: sa.bindparam(f"v_{c}") for c in _UPDATED})
            conn.execute(statement, updates)
        if inserts:
            insert = _insert_statement(conn.dialect)
            insert.execute_blocking(conn, [tuple(row[key] for key in insert.keys) for row in inserts])
        self._read.clear()

    # -- Inside ------------------------------------------------------------------------------------------

    def _row(self, resource_type: str, resource_id: str) -> _Row | None:
        key = (resource_type, resource_id)
        if key not in self._rows:
            self._load(resource_type, mirror.c.id, [resource_id])
            self._rows.setdefault(key, None)
        return self._rows[key]

    def _current(self, resource_type: str, resource_id: str, if_version: int | None) -> _Row | None:
        """The resource as it is now, if it is at `if_version` (or any version when None)."""
        row = self._row(resource_type, resource_id)
        if row is not None and if_version is not None and row.version != if_version:
            raise MirrorConflict(
                "version", f"{resource_type} {resource_id} is at version {row.version}, not {if_version}"
            )
        return row

    def _holder(self, key: str) -> str | None:
        if key not in self._holders:
            found = self._load("User", mirror.c.name_key, [key])
            self._holders[key] = found.get(key)
        return self._holders[key]

    def _load(self, resource_type: str, column: Any, values: list[str]) -> dict[str, str]:
        """Read the resources whose `column` is one of `values`, into what the transaction knows
        (what it wrote already stays as written); by value, the id that has it."""
        found: dict[str, str] = {}
        for start in range(0, len(values), _PER_QUERY):
            query = sa.select(
                mirror.c.id,
                mirror.c.body,
                mirror.c.version,
                mirror.c.created_at,
                mirror.c.updated_at,
                mirror.c.name_key,
            ).where(mirror.c.resource_type == resource_type, column.in_(values[start : start + _PER_QUERY]))
            for resource_id, body, version, created_at, updated_at, key in self._conn.execute(query):
                row = _Row(orjson.loads(body), version, created_at, updated_at, key)
                self._rows.setdefault((resource_type, resource_id), row)
                if key is not None and resource_type in UNIQUE_NAMES:
                    self._holders.setdefault(key, resource_id)
                value = resource_id if column is mirror.c.id else key
                if value is not None:
                    found[value] = resource_id
        return found

    def _put(self, resource_type: str, resource_id: str, row: _Row | None) -> None:
        key = (resource_type, resource_id)
        before = self._rows.get(key)
        if key not in self._read:
            self._set(self._read, key, before)
        self._set(self._rows, key, row)
        if resource_type not in UNIQUE_NAMES:
            return
        old = None if before is None else before.name_key
        new = None if row is None else row.name_key
        if old != new:
            if old is not None:
                self._set(self._holders, old, None)
            if new is not None:
                self._set(self._holders, new, resource_id)

    def _set(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        self._undo.append((mapping, key, mapping.get(key), key in mapping))
        mapping[key] = value


Queued = tuple[Program[Any], asyncio.Future[Any], tuple[Key, ...], tuple[str, ...]]


class MirrorWriter:
    """Runs programs on the mirror, those that arrive while a transaction is under way together as
    the next one; each program's result is given once its transaction has committed.

    A transaction runs whole as blocking code in one hop (`engine.store.blocking`): its reads, its
    programs, its writes and the commit. It holds the state store's writer turn meanwhile, and goes
    before the other writers that wait (its clients wait for it)."""

    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._queue: list[Queued] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, program: Program[T], *, keys: Iterable[Key] = (), names: Iterable[str] = ()) -> T:
        """Run `program` in the next transaction; `keys` and `names` (resources and User names it
        will read) are read for the whole transaction at once."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((program, future, tuple(keys), tuple(names)))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
        return await asyncio.shield(future)

    async def aclose(self) -> None:
        """Let the transaction under way and those queued finish: they were promised an answer."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            await self._transactions()
        finally:  # cancelled (the engine stops): whoever waits is told, not left waiting
            for _, future, _, _ in self._queue:
                future.cancel()
            self._queue.clear()

    async def _transactions(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_PROGRAMS], self._queue[MAX_PROGRAMS:]
            try:
                outcomes = await self._state.run_writing(partial(_run_programs, batch), urgent=True)
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                error = StateError(f"the mirror could not be written: {exc}")
                outcomes = [(error, None)] * len(batch)
            except BaseException:
                for _, future, _, _ in batch:
                    future.cancel()
                raise
            for (_, future, _, _), (raised, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if raised is not None:
                    future.set_exception(raised)
                else:
                    future.set_result(value)


def _run_programs(batch: list[Queued], conn: sa.Connection) -> list[tuple[BaseException | None, Any]]:
    """Read what the programs named, run them one after another, and write what they wrote: what
    each returned or raised."""
    tx = MirrorTx(conn)
    tx.prefetch([k for *_, keys, _ in batch for k in keys], [n for *_, names in batch for n in names])
    outcomes: list[tuple[BaseException | None, Any]] = []
    for program, *_ in batch:
        mark = tx.mark()
        try:
            outcomes.append((None, program(tx)))
        except Exception as exc:  # the program's answer, as raised: nothing of it stays
            tx.undo(mark)
            outcomes.append((exc, None))
    tx.flush(conn)
    return outcomes


_UPDATED = ("external_id", "name_key", "body", "version", "created_at", "updated_at")
"""The columns a write sets; an insert sets the key's too."""
_INSERT_KEYS = ("resource_type", "id", *_UPDATED)


@functools.lru_cache(maxsize=4)
def _insert_statement(dialect: sa.Dialect) -> BulkStatement:
    """The mirror's INSERT as driver SQL, many rows to a statement on SQLite (`common.peers.sql_bulk`):
    SQLAlchemy's processing of each row's parameters cost more than SQLite's insert."""
    return BulkStatement.compile(mirror.insert(), dialect, _INSERT_KEYS)


def _taken(resource_type: str, name: str, holder: str) -> MirrorConflict:
    attribute = NAME_ATTRIBUTES[resource_type]
    return MirrorConflict("uniqueness", f"{attribute} {name!r} is already held by {resource_type} {holder}")


def content(resource: Mapping[str, Any]) -> dict[str, Any]:
    """What the client gave: everything but what the service sets and the secrets it does not keep."""
    return {k: v for k, v in resource.items() if k not in SERVER_SET and k.lower() not in NOT_STORED}


def resource_name(resource_type: str, body: Mapping[str, Any]) -> str | None:
    value = body.get(NAME_ATTRIBUTES.get(resource_type, ""))
    return value if isinstance(value, str) and value.strip() else None


def external_id(body: Mapping[str, Any]) -> str | None:
    value = body.get("externalId")
    return value if isinstance(value, str) else None


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def with_meta(
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
    """`at` in RFC 3339 with milliseconds; the second's part is made once (a bulk writes hundreds)."""
    whole = int(at)
    return f"{_second(whole)}.{int((at - whole) * 1000):03d}Z"


@functools.lru_cache(maxsize=8)
def _second(whole: int) -> str:
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
