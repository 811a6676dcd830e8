"""`ScimConnector`: applies operations to one SCIM service, finding each object before it writes.

**Idempotence.** Every operation finds its object first: by `target_id` when known (`GET /Users/{id}`),
otherwise by its matching attributes in precedence order (the operation's `matching` pairs first, then
the target's `matching:` list), one `GET /Users?filter=a eq "x"` per attribute, stopping at the first
that finds an object (never an `or` filter: many services refuse it, and servers that read it may scan
every object for it while they index a single `eq`). A redelivered create therefore updates,
a 409 on create is resolved by matching again, and several objects matching one attribute is a
`PermanentError` (duplicates in the target), never a guess. Groups are matched too, on `externalId`
(set to the operation's `source_id` unless mapped), since group names are not unique.

**Listing.** `list_objects` pages through `/Users` or `/Groups` (see `listing.py`) for the engine, which
links a cycle's creates by it: a create it found comes with the object's `target_id` (read by id, no
search); one it did not find comes with `listed`, and the searches on those attributes are skipped. A
409 on that POST still matches again and adopts what another writer created meanwhile.

**Writes.** Create is a POST; update is a PATCH with only the attributes that differ from the object just
fetched (no request when nothing does), or a PUT of the merged object with `update_method: put`; disable
is `active=false`; delete is a DELETE, where 404 counts as done (as does disabling a missing object).
Users get `active: true` on create and update unless `active` is mapped, and `active: false` when the
operation leaves them disabled (`disabled`): the POST creates them disabled, and an update (or a create
that finds its object) leaves them so; a group is never disabled, and such an operation fails. Group
members come from `members_add`/`members_remove` (target ids of users, and of groups nested in the group:
those `members_groups` names, sent with `type: Group`, the others with `type: User`), never from
attributes: those already in (or already out of) the group are skipped, the rest go in PATCHes of
`member_chunk_size` values, removals as one `members[value eq "<id>"]` path each (some servers refuse a
remove with a value list).

**Values.** Attribute names are the flat paths of `paths.py`; a value of None removes the attribute;
`{"$unique": [candidates]}` (SelectUniqueValue) becomes the first candidate that no other object holds
(one filtered GET each; a value the object already holds is kept); all taken is a `PermanentError`.
Such a value is never a matching key, so map another matching attribute (e.g. `externalId`) beside it.

**Errors** as every HTTP connector's (`workers/connectors/http.py`): 429, and 503 with `Retry-After`,
pause the whole target; they, other 5xx, 408, timeouts and network errors are `TransientError`. Other 4xx
(400, 401, 403, 404 on update, 409 that matching cannot resolve) are `PermanentError` with the server's
`detail` and `scimType`, the HTTP status as `code`. Credentials are redacted from every message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from common.errors import ConnectorError, PermanentError
from common.peers.scim_schemas import (
    ENDPOINTS,
    GROUP_SCHEMA,
    IDENTIFIERS,
    PATCH_SCHEMA,
    USER_SCHEMA,
    ObjectType,
)
from common.peers.scim_transport import SCIM_JSON, ScimAnswer, refusal_text
from common.unique import unique_candidates
from queues.contracts import Operation
from workers.connectors.base import Applied, Outcome
from workers.connectors.http import HttpConnector, HttpTarget
from workers.connectors.scim.diff import (
    GROUP_NOT_DISABLED,
    add_members,
    chunks_of,
    desired,
    diff,
    member,
    member_patches,
    put_body,
)
from workers.connectors.scim.listing import PageReader, listing_query
from workers.connectors.scim.paths import AttrPath, attr_path, overlay, same_key
from workers.connectors.scim.settings import ScimSettings

_CORE: Final = {"user": USER_SCHEMA, "group": GROUP_SCHEMA}
_MATCH_PAGE: Final = 50
_UNIQUE_RETRIES: Final = 2  # POSTs retried after a 409 because a unique candidate was taken meanwhile
_DETAIL_MAX: Final = 500


class ScimConnector(HttpConnector):
    """Applies operations to one SCIM service; see the module docstring for the guarantees."""

    def __init__(self, name: str, settings: ScimSettings) -> None:
        self.settings = settings
        super().__init__(
            name,
            HttpTarget(
                name,
                settings.http,
                max_concurrency=settings.max_concurrency,
                rate_per_s=settings.rate_per_s,
                refusal=lambda status, body: refusal_text(status, body, detail_max=_DETAIL_MAX),
                media_type=SCIM_JSON,
            ),
        )
        self._transport = self._target.transport

    async def _apply_one(self, op: Operation) -> Outcome:
        try:
            kind = _kind(op)
            if op.action == "delete":
                return await self._delete(op, kind)
            current = await self._find(op, kind, listed=op.action == "create")
            if op.action == "create":
                if current is None:
                    return await self._create(op, kind)
                return await self._update(await self._resolve_unique(op, kind, current), kind, current)
            if current is None:
                if op.action == "disable":
                    return Applied(op.target_id)  # nothing left to disable
                raise PermanentError(
                    f"{op.object_type} {op.target_id or op.match_value or op.source_id!r} "
                    "is not in the target: nothing to update",
                    code="404",
                )
            if op.action == "disable":
                return await self._disable(op, kind, current)
            return await self._update(await self._resolve_unique(op, kind, current), kind, current)
        except ConnectorError as error:
            return self._target.redacted(error)
        except Exception as exc:
            return self._target.crashed(exc, op.op_id)

    # -- Finding -------------------------------------------------------------------------------------

    async def _find(self, op: Operation, kind: ObjectType, *, listed: bool = False) -> dict[str, Any] | None:
        if op.target_id:
            answer = await self._call("GET", _object_path(kind, op.target_id))
            if answer.status == 200 and isinstance(answer.body, dict):
                return answer.body
            if answer.status != 404:
                raise self._error(answer)
        return await self._match(op, kind, listed=listed)

    async def _match(self, op: Operation, kind: ObjectType, *, listed: bool = False) -> dict[str, Any] | None:
        """The object holding the first matching key that any object holds, asked one key at a time.

        One `attr eq "value"` GET per key, in precedence order, stopping at the first hit: a single `eq`
        is what every service reads (some read nothing else: no `or`) and what servers index, where an
        `or` of several is often a scan of every object. A later key is asked only when no object holds
        the earlier ones, so a hit on it never belongs to an object that another key points at.

        `listed`: skip the keys that a listing of the target found no object holding (`op.listed`).

        An object found by a later key that holds another externalId, when externalId comes first, is
        someone else's (two groups named alike, told apart by their externalId): never adopted, so two
        source objects never share one target object.
        """
        keys = self._match_keys(op, kind)
        if not keys:
            raise PermanentError(
                f"{kind} {op.source_id!r} has no value for any matching attribute "
                f"({', '.join(self.settings.matching(kind))}); map one of them"
            )
        if listed and op.listed:
            keys = [(path, value) for path, value in keys if not _listed_absent(op, path, value)]
        for n, (path, value) in enumerate(keys):
            resources, total = await self._lookup(kind, path, value)
            if total > 1:
                raise self._duplicates(kind, path, total)
            if resources and not _someone_else(resources[0], keys[:n]):
                return resources[0]
        return None

    def _match_keys(self, op: Operation, kind: ObjectType) -> list[tuple[AttrPath, Any]]:
        names: list[tuple[str, Any]] = [(name, value) for name, value in op.matching]
        for name in self.settings.matching(kind):
            value = op.attributes.get(name)
            if value is None and kind == "group" and name == "externalId":
                value = op.source_id
            names.append((name, value))
        keys: dict[AttrPath, Any] = {}
        for name, value in names:
            path = attr_path(name)
            if value not in (None, "") and unique_candidates(value) is None and path not in keys:
                keys[path] = value
        return list(keys.items())

    async def _lookup(self, kind: ObjectType, path: AttrPath, value: Any) -> tuple[list[dict[str, Any]], int]:
        """The objects that hold `value` at `path` (a page of them) and how many do. A typed entry
        (`emails[type eq "work"].value`) is asked as `emails.value eq "x"`, a filter that services reading
        only `eq` and `and` accept, and only the answers whose entry of that type holds it are kept."""
        resources, total = await self._search(kind, path.filter(value))
        if path.type is None:
            return resources, total
        kept = [r for r in resources if path.holds(r, value)]
        # Past the page, those not seen might hold it in that entry: count them, to be safe.
        return kept, len(kept) + max(total - len(resources), 0)

    async def _search(self, kind: ObjectType, query: str) -> tuple[list[dict[str, Any]], int]:
        answer = await self._call(
            "GET", ENDPOINTS[kind], query=f"filter={quote(query, safe='')}&count={_MATCH_PAGE}"
        )
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise self._error(answer)
        resources = [r for r in answer.body.get("Resources") or [] if isinstance(r, dict)]
        total = answer.body.get("totalResults")
        return resources, total if isinstance(total, int) else len(resources)

    def _duplicates(self, kind: ObjectType, path: AttrPath, count: int) -> PermanentError:
        return PermanentError(
            f"{count} {kind}s in the target match on {path.scim()}: duplicate entries; "
            "remove all but one, or match on a unique attribute",
            code="duplicate",
        )

    # -- Listing -------------------------------------------------------------------------------------

    def listing_fields(self, object_type: str, attributes: Sequence[str]) -> list[str]:
        """`attributes`, then the target's own `matching:` names (see `workers.connectors.base.Lister`)."""
        kind = _kind_of(object_type)
        for name in attributes:
            attr_path(name)  # a name that is no SCIM path is refused here, not on the first page
        return list(dict.fromkeys([*attributes, *self.settings.matching(kind)]))

    async def list_objects(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[list[Any]]]:
        """Every object of the kind, a page at a time (see `workers.connectors.scim.listing`)."""
        kind = _kind_of(object_type)
        paths = [attr_path(name) for name in fields]
        reader = PageReader(kind, paths)
        while not reader.done:
            try:
                query = listing_query(paths, reader.next_index)
                answer = await self._call("GET", ENDPOINTS[kind], query=query)
                if answer.status != 200:
                    raise self._error(answer)
                rows = reader.read(answer.body)
            except ConnectorError as error:
                raise self._target.redacted(error) from None
            if rows:
                yield rows

    # -- Writing -------------------------------------------------------------------------------------

    async def _create(self, op: Operation, kind: ObjectType) -> Outcome:
        first: list[str] = []
        rest: list[list[str]] = []
        if kind == "group":
            first, rest = chunks_of(list(dict.fromkeys(op.members_add)), self.settings.member_chunk_size)
        for tries_left in range(_UNIQUE_RETRIES, -1, -1):
            resolved = await self._resolve_unique(op, kind, None)
            body = overlay({"schemas": [_CORE[kind]]}, desired(resolved, kind))
            if first:
                body["members"] = [member(m, op.members_groups) for m in first]
            answer = await self._call("POST", ENDPOINTS[kind], body=body)
            if answer.status != 409:
                break
            current = await self._match(op, kind)  # created meanwhile, or by an earlier try we never heard of
            if current is not None:
                return await self._update(await self._resolve_unique(op, kind, current), kind, current)
            if resolved is op or not tries_left:
                raise self._error(answer)
            # else a unique candidate was taken since it was checked: pick again
        if answer.status not in (200, 201) or not isinstance(answer.body, dict):
            raise self._error(answer)
        target_id = answer.body.get("id")
        if not isinstance(target_id, str):
            raise PermanentError(
                f"{answer.what} answered without the new object's id", code=str(answer.status)
            )
        for chunk in rest:
            await self._patch(kind, target_id, [add_members(chunk, op.members_groups)])
        return Applied(target_id)

    async def _update(self, op: Operation, kind: ObjectType, current: dict[str, Any]) -> Outcome:
        target_id = _id_of(current)
        wanted = desired(op, kind)
        if self.settings.update_method == "put":
            await self._put(kind, current, put_body(kind, current, wanted, op))
            return Applied(target_id)
        requests = member_patches(current, op, self.settings.member_chunk_size)
        changes = diff(current, wanted)
        if changes:
            requests = [changes + requests[0], *requests[1:]] if requests else [changes]
        for operations in requests:
            await self._patch(kind, target_id, operations)
        return Applied(target_id)

    async def _disable(self, op: Operation, kind: ObjectType, current: dict[str, Any]) -> Outcome:
        if kind == "group":
            raise PermanentError(GROUP_NOT_DISABLED)
        target_id = _id_of(current)
        if current.get("active") is False:
            return Applied(target_id)
        if self.settings.update_method == "put":
            await self._put(kind, current, put_body(kind, current, {attr_path("active"): False}, None))
        else:
            await self._patch(kind, target_id, [{"op": "replace", "path": "active", "value": False}])
        return Applied(target_id)

    async def _resolve_unique(
        self, op: Operation, kind: ObjectType, current: Mapping[str, Any] | None
    ) -> Operation:
        """`op` with each SelectUniqueValue attribute set to the first candidate no other object holds."""
        resolved: dict[str, Any] | None = None
        for name, value in op.attributes.items():
            candidates = unique_candidates(value)
            if candidates is None:
                continue
            path = attr_path(name)
            own_id = _id_of(current) if current is not None else None
            held = path.get(current) if current is not None else None
            for candidate in candidates:
                if held is not None and same_key(held, candidate):
                    break
                resources, total = await self._lookup(kind, path, candidate)
                if total == 0 or (total == len(resources) and all(r.get("id") == own_id for r in resources)):
                    break
            else:
                raise PermanentError(
                    f"all unique candidates taken for {name!r}: {', '.join(candidates)}", code="unique"
                )
            if resolved is None:
                resolved = dict(op.attributes)
            resolved[name] = candidate
        return op if resolved is None else dataclasses.replace(op, attributes=resolved)

    async def _delete(self, op: Operation, kind: ObjectType) -> Outcome:
        target_id = op.target_id
        if not target_id:
            current = await self._match(op, kind)
            if current is None:
                return Applied(None)
            target_id = _id_of(current)
        answer = await self._call("DELETE", _object_path(kind, target_id))
        if answer.status not in (200, 204, 404):
            raise self._error(answer)
        return Applied(target_id)

    async def _patch(self, kind: ObjectType, target_id: str, operations: list[dict[str, Any]]) -> None:
        body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
        answer = await self._call("PATCH", _object_path(kind, target_id), body=body)
        if answer.status not in (200, 204):
            raise self._error(answer)

    async def _put(self, kind: ObjectType, current: Mapping[str, Any], body: dict[str, Any] | None) -> None:
        """Replace the object with `body`; None (nothing would change) sends nothing."""
        if body is None:
            return
        answer = await self._call("PUT", _object_path(kind, _id_of(current)), body=body)
        if answer.status not in (200, 204):
            raise self._error(answer)

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, query: str = "", body: Any = None) -> ScimAnswer:
        """One request through the gate, its failures as this connector's errors."""
        return await self._target.call(method, path, query=query, body=body)

    def _error(self, answer: ScimAnswer) -> ConnectorError:
        """The error an unwanted answer amounts to, with the server's own words."""
        return self._target.error(answer)


def _kind(op: Operation) -> ObjectType:
    return _kind_of(op.object_type)


def _kind_of(object_type: str) -> ObjectType:
    if object_type not in ENDPOINTS:
        raise PermanentError(f"object type {object_type!r} is not one of user, group")
    return object_type  # type: ignore[return-value]


def _someone_else(resource: Mapping[str, Any], earlier: Sequence[tuple[AttrPath, Any]]) -> bool:
    """Whether `resource` holds another externalId than the operation's, when externalId is a key of
    higher precedence: an identifier, where a later key (displayName) is only a name. A user found by
    its externalId with another userName is the same user renamed; a group found by its displayName
    with another externalId is another group."""
    for path, value in earlier:
        if path.name.lower() not in IDENTIFIERS or path.prefix:
            continue
        held = path.get(resource)
        if held not in (None, "", []) and not same_key(held, value):
            return True
    return False


def _listed_absent(op: Operation, path: AttrPath, value: Any) -> bool:
    """A listing found no object holding `value` at `path`: the engine checked the operation's own
    value of an attribute in `op.listed` (never one the connector supplies, such as a group's source id)."""
    for name in op.listed:
        if attr_path(name) == path:
            own = next((v for n, v in op.matching if n == name), op.attributes.get(name))
            return own is not None and own == value
    return False


def _object_path(kind: ObjectType, target_id: str) -> str:
    return f"{ENDPOINTS[kind]}/{quote(target_id, safe='')}"


def _id_of(resource: Mapping[str, Any]) -> str:
    target_id = resource.get("id")
    if not isinstance(target_id, str) or not target_id:
        raise PermanentError("the target returned an object without an id")
    return target_id
