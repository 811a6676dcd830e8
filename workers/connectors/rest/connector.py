"""`RestConnector`: applies operations to an in-house REST service described in YAML (`settings.py`).

**Idempotence.** Every operation finds its object first: by `target_id` with `read` when the target
can read (a 404 there falls back to matching), otherwise with each `match` call in turn whose
placeholders have values (the operation's matching pairs overlay its attributes), stopping at the first
that finds one. A search answer is checked: only objects whose attributes named in the search URL
hold the searched values (text compared case-insensitively) count, so a service that searches by
prefix or ignores a parameter never makes a wrong match; two that count are a `PermanentError`
(duplicates in the target), never a guess. A create that finds its object updates it instead; a 409
on create matches again and updates what it finds; a create whose answer holds no id matches again to
learn it.

**Writes.** Create sends `create` with the body of every attribute. Update reads the object (or uses
the one that matching found) and sends `update` with only the attributes whose value differs, and no
request when none does; when the target cannot read (no `read`), or the update is a PUT, it sends the
whole body. Disable sends `disable` (a 404 counts as done, as does a missing object); delete sends
`delete`, where a 404 counts as done. Group members come from `members_add`/`members_remove`, one
`members.add`/`members.remove` call per member, where a 409 on add and a 404 on remove count as done.
A SelectUniqueValue attribute is refused: the service's own rules decide uniqueness here.

**Disabled accounts.** A create or an update that leaves the account disabled (`disabled`) fills
`{enabled}` with false (else true). Where the create's (or update's) body carries `{enabled}`, that one
request does it: the object is created disabled, never enabled first, and an update compares the flag
where the object shows it (`attributes: {enabled: active}`; where it shows none, the update is always
sent). Where the body does not carry it, the `disable` call follows the create or update within the
same operation, so that a retry after a crash between the two still ends disabled (the create that
finds its object updates and disables it). With neither, such an operation fails before it writes,
naming both settings.

**Errors** as every HTTP connector's (`workers/connectors/http.py`): 429 and 503 with `Retry-After`
pause the whole target; 5xx, 408, 429, timeouts and network errors are `TransientError`; other 4xx are
`PermanentError` with the service's message (at `error_path`, else a top-level `message`, `error` or
`detail` text). Credentials are redacted from every message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from common.errors import ConnectorError, PermanentError
from common.peers.http_transport import HttpAnswer
from common.unique import unique_candidates
from queues.contracts import Operation
from workers.connectors.base import Applied, Outcome
from workers.connectors.http import HttpConnector, HttpTarget
from workers.connectors.rest.listing import PageWalk
from workers.connectors.rest.settings import Call, ObjectSettings, RestSettings
from workers.connectors.rest.templates import ENABLED, SPECIAL, Unfilled, as_text

_MESSAGE_MAX: Final = 500
_ABSENT: Final = object()


@dataclass(frozen=True, slots=True)
class _Found:
    """An object in the target: its id, and the object as read (None when the target cannot read)."""

    target_id: str
    current: dict[str, Any] | None


class RestConnector(HttpConnector):
    """Applies operations to one REST service; see the module docstring for the guarantees."""

    def __init__(self, name: str, settings: RestSettings) -> None:
        self.settings = settings
        super().__init__(
            name,
            HttpTarget(
                name,
                settings.http,
                max_concurrency=settings.max_concurrency,
                rate_per_s=settings.rate_per_s,
                refusal=self._refusal,
            ),
        )

    async def _apply_one(self, op: Operation) -> Outcome:
        try:
            spec = self._spec(op.object_type)
            for name, value in op.attributes.items():
                if unique_candidates(value) is not None:
                    raise PermanentError(f"{name}: a REST target cannot pick among unique candidates")
            if op.action == "delete":
                return await self._delete(op, spec)
            if op.disabled and op.action in ("create", "update"):
                _can_disable(op, spec)
            found = await self._find(op, spec)
            if op.action == "create":
                return await (self._create(op, spec) if found is None else self._update(op, spec, found))
            if found is None:
                if op.action == "disable":
                    return Applied(op.target_id)  # nothing left to disable
                raise PermanentError(
                    f"{op.object_type} {op.target_id or op.match_value or op.source_id!r} "
                    "is not in the target: nothing to update",
                    code="404",
                )
            if op.action == "disable":
                return await self._disable(op, spec, found)
            return await self._update(op, spec, found)
        except ConnectorError as error:
            return self._target.redacted(error)
        except Exception as exc:
            return self._target.crashed(exc, op.op_id)

    def _spec(self, object_type: str) -> ObjectSettings:
        spec = self.settings.of(object_type)
        if spec is None:
            raise PermanentError(
                f"target {self.name!r} describes no {object_type}s: add `{object_type}s:` to its settings"
            )
        return spec

    # -- Finding -------------------------------------------------------------------------------------

    async def _find(self, op: Operation, spec: ObjectSettings) -> _Found | None:
        if op.target_id:
            if spec.read is None:
                return _Found(op.target_id, None)  # trusted: the target cannot be asked
            answer = await self._send("read", spec.read, _values(op, op.target_id))
            if answer.status == 200:
                current = spec.read.path.get(answer.body)
                if not isinstance(current, dict):
                    raise PermanentError(f"{answer.what}: the answer holds no object at {spec.read.path}")
                return _Found(op.target_id, current)
            if answer.status != 404:
                raise self._target.error(answer)
        return await self._match(op, spec)

    async def _match(self, op: Operation, spec: ObjectSettings) -> _Found | None:
        """The object that the first `match` call able to run finds, or None when none finds one."""
        values = _values(op, None)
        ran = False
        for call in spec.match:
            try:
                call.url.render(values)
            except Unfilled:
                continue  # this search needs an attribute the operation has no value for
            ran = True
            answer = await self._send("match", call, values)
            if answer.status != 200:
                raise self._target.error(answer)
            items = call.path.get(answer.body)
            if not isinstance(items, list):
                raise PermanentError(f"{answer.what}: the answer holds no list at {call.path}")
            hits = [item for item in items if isinstance(item, dict) and _holds(spec, call, item, values)]
            if len(hits) > 1:
                raise PermanentError(
                    f"{answer.what}: {len(hits)} {op.object_type}s match: duplicate entries in the "
                    "target; remove all but one, or match on a unique attribute",
                    code="duplicate",
                )
            if hits:
                target_id = _id_text(
                    spec.id_path.get(hits[0]), f"{answer.what}: an object's id at {spec.id_path}"
                )
                return _Found(target_id, hits[0])
        if spec.match and not ran:
            raise PermanentError(
                f"{op.object_type} {op.source_id!r} has no value for any attribute its searches name "
                f"({', '.join(n for c in spec.match for n in c.url.names)}); map one of them"
            )
        return None

    # -- Writing -------------------------------------------------------------------------------------

    async def _create(self, op: Operation, spec: ObjectSettings) -> Outcome:
        call = _needed(spec.create, op, "create")
        values = _values(op, None)
        answer = await self._send("create", call, values, body=_body(call, values, op.attributes, None))
        if answer.status == 409:
            found = await self._match(op, spec)  # created meanwhile, or by an earlier try never answered
            if found is None:
                raise self._target.error(answer)
            return await self._update(op, spec, found)
        if not 200 <= answer.status < 300:
            raise self._target.error(answer)
        target_id = spec.id_path.get(call.path.get(answer.body))
        if target_id in (None, ""):
            found = await self._match(op, spec)
            if found is None:
                raise PermanentError(f"{answer.what} answered without the new object's id at {spec.id_path}")
            target_id = found.target_id
        target_id = _id_text(target_id, f"{answer.what}: the new object's id at {spec.id_path}")
        if op.disabled and not _flags(call):
            await self._disable(op, spec, _Found(target_id, None))
        await self._members(op, spec, target_id)
        return Applied(target_id)

    async def _update(self, op: Operation, spec: ObjectSettings, found: _Found) -> Outcome:
        changed: list[str] | None = None
        values = _values(op, found.target_id)
        flagged = spec.update is not None and _flags(spec.update)
        if found.current is not None:
            current = found.current
            changed = [
                name
                for name, value in op.attributes.items()
                if not _same(spec.attribute_path(name).get(current, _ABSENT), value)
            ]
            held = spec.attribute_path(ENABLED).get(current, _ABSENT)
            if flagged and ENABLED not in changed and not _same(held, values[ENABLED]):
                changed.append(ENABLED)  # the body's flag is sent whenever the body is
        if changed is None or changed:
            call = _needed(spec.update, op, "update")
            whole = changed is None or call.method == "PUT"
            body = _body(call, values, op.attributes, None if whole else changed)
            answer = await self._send("update", call, values, body=body)
            if answer.status == 404:
                raise PermanentError(
                    f"{answer.what}: the object is not in the target: nothing to update", code="404"
                )
            if not 200 <= answer.status < 300:
                raise self._target.error(answer)
        if op.disabled and not flagged:
            await self._disable(op, spec, found)
        await self._members(op, spec, found.target_id)
        return Applied(found.target_id)

    async def _disable(self, op: Operation, spec: ObjectSettings, found: _Found) -> Outcome:
        call = _needed(spec.disable, op, "disable")
        values = _values(op, found.target_id)
        body = call.body.render(values) if call.body is not None else None
        answer = await self._send("disable", call, values, body=body)
        if answer.status != 404 and not 200 <= answer.status < 300:
            raise self._target.error(answer)
        return Applied(found.target_id)

    async def _delete(self, op: Operation, spec: ObjectSettings) -> Outcome:
        call = _needed(spec.delete, op, "delete")
        target_id = op.target_id
        if not target_id:
            found = await self._match(op, spec)
            if found is None:
                return Applied(None)
            target_id = found.target_id
        values = _values(op, target_id)
        body = call.body.render(values) if call.body is not None else None
        answer = await self._send("delete", call, values, body=body)
        if answer.status != 404 and not 200 <= answer.status < 300:
            raise self._target.error(answer)
        return Applied(target_id)

    async def _members(self, op: Operation, spec: ObjectSettings, target_id: str) -> None:
        """Each member added, then each removed, one call each; already in (409), already out (404)."""
        for members, call, done, what in (
            (op.members_add, spec.members_add, 409, "members.add"),
            (op.members_remove, spec.members_remove, 404, "members.remove"),
        ):
            if not members:
                continue
            call = _needed(call, op, what)
            for member_id in dict.fromkeys(members):
                values = {**_values(op, target_id), "member_id": member_id}
                body = call.body.render(values) if call.body is not None else None
                answer = await self._send(what, call, values, body=body)
                if answer.status != done and not 200 <= answer.status < 300:
                    raise self._target.error(answer)

    # -- Listing -------------------------------------------------------------------------------------

    def listing_fields(self, object_type: str, attributes: Sequence[str]) -> list[str]:
        """`attributes`, then those the type's searches name (see `workers.connectors.base.Lister`)."""
        spec = self._spec(object_type)
        if spec.listing is None:
            raise PermanentError(f"{object_type}s cannot be listed: the target has no `list:` for them")
        searched = [name for call in spec.match for name in call.url.names if name not in SPECIAL]
        return list(dict.fromkeys([*attributes, *searched]))

    async def list_objects(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[list[Any]]]:
        """Every object of the type, a page at a time (see `workers.connectors.rest.listing`)."""
        try:
            walk = PageWalk(object_type, self._spec(object_type), fields, self.settings.url)
        except ConnectorError as error:
            raise self._target.redacted(error) from None
        while not walk.done:
            try:
                path, query = walk.request
                answer = await self._target.call("GET", path, query=query)
                if answer.status != 200:
                    raise self._target.error(answer)
                rows = walk.read(answer.body, answer.next_url)
            except ConnectorError as error:
                raise self._target.redacted(error) from None
            if rows:
                yield rows

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _send(
        self, what: str, call: Call, values: Mapping[str, Any], *, body: Any = None
    ) -> HttpAnswer:
        try:
            path, query = call.url.render(values)
        except Unfilled as exc:
            raise PermanentError(f"{what}: the URL's {exc}", code="template") from None
        return await self._target.call(call.method, path, query=query, body=body)

    def _refusal(self, status: int, document: Any) -> str:
        """`HTTP 400: <the service's message>`."""
        message: Any = None
        if self.settings.error_path is not None:
            message = self.settings.error_path.get(document)
        elif isinstance(document, dict):
            message = next(
                (document[k] for k in ("message", "error", "detail") if isinstance(document.get(k), str)),
                None,
            )
        if isinstance(message, str | int | float) and message != "":
            return f"HTTP {status}: {str(message)[:_MESSAGE_MAX]}"
        return f"HTTP {status}"


def _values(op: Operation, target_id: str | None) -> dict[str, Any]:
    """What templates are filled from: the attributes, the matching pairs, and the ids known."""
    values: dict[str, Any] = {name: value for name, value in op.matching if name not in op.attributes}
    values.update(op.attributes)
    values["source_id"] = op.source_id
    if op.disabled:
        values[ENABLED] = False
    else:
        values.setdefault(ENABLED, True)
    if target_id:
        values["target_id"] = target_id
    return values


def _body(
    call: Call, values: Mapping[str, Any], attributes: Mapping[str, Any], changed: Collection[str] | None
) -> Any:
    """The body of a write: its template filled, or the (changed) attributes themselves."""
    if call.body is not None:
        return call.body.render(values, changed=changed)
    return {name: value for name, value in attributes.items() if changed is None or name in changed}


def _flags(call: Call) -> bool:
    """Whether `call`'s body carries the account's state (`{enabled}`), so that it needs no disable call."""
    return call.body is not None and ENABLED in call.body.names


def _can_disable(op: Operation, spec: ObjectSettings) -> None:
    """A `PermanentError`, before anything is written, when an operation that leaves the account disabled
    has no way to: no `disable` call, and a create or update body it may send without `{enabled}`."""
    if spec.disable is not None:
        return
    calls = (spec.create, spec.update) if op.action == "create" else (spec.update,)
    if all(call is not None and _flags(call) for call in calls):
        return
    section = f"{op.object_type}s"
    raise PermanentError(
        f"this {op.object_type} is to be left disabled, and the target has no way to disable it: add "
        f'`disable:` under `{section}:` in its settings, or "{{enabled}}" in the body of its create and '
        'update (e.g. active: "{enabled}")',
        code="config",
    )


def _needed(call: Call | None, op: Operation, what: str) -> Call:
    if call is None:
        raise PermanentError(
            f"the target describes no {what} for {op.object_type}s: "
            f"add `{what}:` under `{op.object_type}s:` in its settings"
        )
    return call


def _holds(spec: ObjectSettings, call: Call, item: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether a search's hit holds every searched attribute's value (where it shows that attribute)."""
    for name in call.url.names:
        if name in SPECIAL:
            continue
        held = spec.attribute_path(name).get(item, _ABSENT)
        if held is not _ABSENT and not _searched(held, values[name]):
            return False
    return True


def _searched(held: Any, wanted: Any) -> bool:
    """Whether a hit's value is the one searched for, as the URL carried it: text, any case."""
    if isinstance(held, list | dict) or held is None:
        return False
    return as_text(held).casefold() == as_text(wanted).casefold()


def _same(held: Any, wanted: Any) -> bool:
    """Whether the target's value is the wanted one, exactly (`True` is not `1`); absent is None."""
    if held is _ABSENT:
        return wanted is None
    return bool(held == wanted) and isinstance(held, bool) == isinstance(wanted, bool)


def _id_text(value: Any, what: str) -> str:
    """An object's id as text (a number becomes its digits); `PermanentError` when there is none."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise PermanentError(f"{what} is missing")
    return value
