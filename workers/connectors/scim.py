"""The SCIM 2.0 target (RFC 7643, RFC 7644): Users, with the enterprise extension, and Groups, over aiohttp.

**Idempotence.** Every operation finds its object first: by `target_id` when known (`GET /Users/{id}`),
otherwise by its matching attributes in precedence order (the operation's `matching` pairs first, then
the target's `matching:` list), in one `GET /Users?filter=a eq "x" or b eq "y"` whose answer is ranked
here, or one GET per attribute when the server refuses `or`. A redelivered create therefore updates,
a 409 on create is resolved by matching again, and several objects matching one attribute is a
`PermanentError` (duplicates in the target), never a guess. Groups are matched too, on `externalId`
(set to the operation's `source_id` unless mapped), since group names are not unique.

**Writes.** Create is a POST; update is a PATCH with only the attributes that differ from the object
just fetched (no request when nothing does), or a PUT of the merged object with `update_method: put`;
disable is `active=false`; delete is a DELETE, where 404 counts as done (as does disabling a missing
object). Users get `active: true` on create and update unless `active` is mapped. Group members come
from `members_add`/`members_remove` (target ids of users), never from attributes: those already in
(or already out of) the group are skipped, the rest go in PATCHes of `member_chunk_size` values, removals
as one `members[value eq "<id>"]` path each (some servers refuse a remove with a value list).

**Attribute names** in operations are flat paths, written as a SCIM PATCH path would be:

* `userName`, `active`, `title`: a core attribute; `name.givenName`: a sub-attribute;
* `emails[type eq "work"].value` (or just `emails[type eq "work"]`, meaning its `value`): the entry of a
  multi-valued attribute with that `type`; `emails` with a list value replaces the whole attribute;
* `enterprise.department`, `enterprise.manager.value`, or the full URN form
  `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department` (any extension URN works);
* `password` is never read back by a server, so it is sent with every update that carries it;
* a value of None removes the attribute;
* `{"$unique": [candidates]}` (SelectUniqueValue) becomes the first candidate that no other object holds
  (one filtered GET each; a value the object already holds is kept); all taken is a `PermanentError`.
  Such a value is never a matching key, so map another matching attribute (e.g. `externalId`) beside it.

**Errors.** 429, and 503 with `Retry-After`, pause the whole target for that long (every call waits);
they, other 5xx, 408, timeouts and network errors are `TransientError`. Other 4xx (400, 401, 403, 404 on
update, 409 that matching cannot resolve) are `PermanentError` with the server's `detail` and `scimType`,
the HTTP status as `code`. Credentials are redacted from every message.

Settings (beside `name`, `type: scim`, `max_inflight`, `retry`; url, auth, timeouts, TLS and proxy are
read by `common/peers/http_settings.py`, as a SCIM source reads them)::

    url: https://app.example.com/scim/v2        # required
    auth: {type: bearer, token: ${TOKEN}}        # see common/peers/http_auth.py; none by default
    matching: {user: [userName, externalId], group: [externalId, displayName]}
    update_method: patch                         # or put
    member_chunk_size: 100
    max_concurrency: 8                           # requests in flight to the target
    rate_per_s: 50                               # requests per second; unlimited by default
    timeout_s: 30                                # per request
    connect_timeout_s: 10
    max_pause_s: 300                             # ceiling on a Retry-After
    verify_tls: true
    ca_file: certs/app-ca.pem                    # relative to the config file
    proxy: http://proxy:3128                     # else HTTP(S)_PROXY / NO_PROXY when trust_env
    trust_env: true
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from common.config.validation import as_list, as_mapping, check_keys, choice, integer, join, positive, string
from common.errors import AuthError, ConfigError, ConnectorError, PermanentError, TransientError
from common.peers.http_auth import Credentials
from common.peers.http_settings import HTTP_KEYS, HttpSettings, parse_http_settings, parse_retry_after
from queues.contracts import Operation
from workers.connectors.base import Applied, AsyncContextConnector, Outcome
from workers.limits import Gate
from workers.unique import unique_candidates

log = logging.getLogger("roster.connectors.scim")

USER_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA: Final = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ObjectType = Literal["user", "group"]
_ENDPOINTS: Final = {"user": "/Users", "group": "/Groups"}
_CORE: Final = {"user": USER_SCHEMA, "group": GROUP_SCHEMA}
_WRITE_ONLY: Final = frozenset({"password"})
_DEFAULT_429_PAUSE_S: Final = 1.0
_MATCH_PAGE: Final = 50
_UNIQUE_RETRIES: Final = 2  # POSTs retried after a 409 because a unique candidate was taken meanwhile
_DETAIL_MAX: Final = 500
_KEYS: Final = (*HTTP_KEYS, "matching", "update_method", "member_chunk_size", "max_concurrency", "rate_per_s")
_PATH_RE: Final = re.compile(
    r'(?P<name>[A-Za-z][\w-]*)(?:\[type eq "(?P<type>[^"\\]*)"\])?(?:\.(?P<sub>\$?[A-Za-z][\w-]*))?'
)


# -- Attribute paths ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttrPath:
    """A flat attribute name read as a place in a SCIM resource (see the module docstring)."""

    name: str
    schema: str | None = None  # an extension URN; None for the core schema
    type: str | None = None  # selects the entry of a multi-valued attribute
    sub: str | None = None

    @property
    def prefix(self) -> str:
        return f"{self.schema}:" if self.schema else ""

    def scim(self) -> str:
        """The path as PATCH and filters write it."""
        selector = f'[type eq "{self.type}"]' if self.type is not None else ""
        return f"{self.prefix}{self.name}{selector}{'.' + self.sub if self.sub else ''}"

    def filter(self, value: Any) -> str:
        if self.type is not None:
            return f'{self.prefix}{self.name}[type eq "{self.type}" and {self.sub} eq {literal(value)}]'
        return f"{self.scim()} eq {literal(value)}"

    def get(self, resource: Mapping[str, Any]) -> Any:
        container = _field(resource, self.schema) if self.schema else resource
        value = _field(container, self.name) if isinstance(container, Mapping) else None
        if self.type is not None:
            value = _entry(value, self.type)
        return _field(value, self.sub) if self.sub and isinstance(value, Mapping) else value

    def set(self, resource: dict[str, Any], value: Any) -> None:
        """Write `value` into `resource` (None removes it), adding the extension to `schemas`."""
        container = resource
        if self.schema:
            container = resource.setdefault(self.schema, {})
            schemas = resource.setdefault("schemas", [])
            if self.schema not in schemas:
                schemas.append(self.schema)
        if self.type is None and self.sub is None:
            _put(container, self.name, value)
            return
        if self.type is None:
            _put(container.setdefault(self.name, {}), self.sub or "", value)
            return
        entries = container.setdefault(self.name, [])
        entry = _entry(entries, self.type)
        if entry is None:
            entry = {"type": self.type}
            entries.append(entry)
        _put(entry, self.sub or "value", value)


@functools.lru_cache(maxsize=4096)
def parse_path(text: str) -> AttrPath:
    """Read a flat attribute name, or raise ValueError saying what is wrong with it."""
    schema = None
    rest = text
    if text.startswith("enterprise."):
        schema, rest = ENTERPRISE_SCHEMA, text.removeprefix("enterprise.")
    elif text[:4].lower() == "urn:":
        # The attribute follows the URN's last colon; a [type eq "..."] selector may hold colons too.
        end = text.split("[", 1)[0].rfind(":")
        schema, rest = text[:end], text[end + 1 :]
    found = _PATH_RE.fullmatch(rest)
    if not found:
        raise ValueError(
            f"{text!r} is not a SCIM attribute path; write name, name.sub, "
            'name[type eq "work"].sub, enterprise.name or urn:...:name'
        )
    kind = found["type"]
    return AttrPath(found["name"], schema, kind, found["sub"] or ("value" if kind is not None else None))


def literal(value: Any) -> str:
    """A filter comparison value: strings as JSON strings (RFC 7644 §3.4.2.2), so `"` and `\\` are escaped."""
    if value is None or isinstance(value, bool | int | float | str):
        return orjson.dumps(value).decode()
    raise PermanentError(f"a {type(value).__name__} cannot be a matching value")


def _field(container: Any, name: str | None) -> Any:
    """Attribute names are case-insensitive (RFC 7643 §2.1); servers answer in their own case."""
    if not isinstance(container, Mapping) or name is None:
        return None
    if name in container:
        return container[name]
    lowered = name.lower()
    return next((v for k, v in container.items() if k.lower() == lowered), None)


def _entry(entries: Any, kind: str) -> Any:
    if not isinstance(entries, list):
        return None
    kind = kind.lower()
    return next((e for e in entries if isinstance(e, dict) and str(e.get("type", "")).lower() == kind), None)


def _put(container: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        container.pop(key, None)
    else:
        container[key] = value


# -- Settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ScimSettings:
    """A validated SCIM target (see the module docstring for each key); its repr hides the secrets."""

    http: HttpSettings
    user_matching: tuple[str, ...] = ("userName", "externalId")
    group_matching: tuple[str, ...] = ("externalId", "displayName")
    update_method: Literal["patch", "put"] = "patch"
    member_chunk_size: int = 100
    max_concurrency: int = 8
    rate_per_s: float | None = None
    path: str = field(default="", compare=False)

    @property
    def url(self) -> str:
        return self.http.url

    def matching(self, kind: ObjectType) -> tuple[str, ...]:
        return self.user_matching if kind == "user" else self.group_matching


def parse_scim_settings(path: str, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> ScimSettings:
    """Validate a SCIM target's own settings (found at `path`), or raise `ConfigError` naming the key."""
    raw = as_mapping(path, raw)
    check_keys(path, raw, _KEYS, required=("url",))
    http = parse_http_settings(path, raw, base_dir=base_dir)

    def at(key: str) -> str:
        return join(path, key)

    matching = as_mapping(at("matching"), raw.get("matching") or {})
    check_keys(at("matching"), matching, ("user", "group"))
    defaults = ScimSettings(http=http)
    user_matching = _matching(at("matching.user"), matching.get("user"), defaults.user_matching)
    group_matching = _matching(at("matching.group"), matching.get("group"), defaults.group_matching)
    rate = raw.get("rate_per_s")
    return ScimSettings(
        http=http,
        user_matching=user_matching,
        group_matching=group_matching,
        update_method=choice(at("update_method"), raw.get("update_method", "patch"), ("patch", "put")),  # type: ignore[arg-type]
        member_chunk_size=integer(at("member_chunk_size"), raw.get("member_chunk_size", 100), minimum=1),
        max_concurrency=integer(at("max_concurrency"), raw.get("max_concurrency", 8), minimum=1),
        rate_per_s=None if rate is None else positive(at("rate_per_s"), rate),
        path=path,
    )


def _matching(path: str, raw: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None:
        return default
    names = tuple(string(join(path, i), name) for i, name in enumerate(as_list(path, raw)))
    if not names:
        raise ConfigError(path, "is empty", "list at least one attribute, e.g. [userName]")
    for i, name in enumerate(names):
        try:
            parse_path(name)
        except ValueError as exc:
            raise ConfigError(join(path, i), str(exc)) from None
    return names


# -- The connector -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any
    what: str  # "PATCH /Users/123", to name the call in errors


class ScimConnector(AsyncContextConnector):
    """Applies operations to one SCIM service; see the module docstring for the guarantees."""

    def __init__(self, name: str, settings: ScimSettings) -> None:
        self.name = name
        self.settings = settings
        self.gate = Gate(max_concurrency=settings.max_concurrency, rate_per_s=settings.rate_per_s)
        self._credentials = Credentials(settings.http.auth, timeout=settings.http.timeout)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._or_filters = True  # until the server refuses one
        self._proxy_secret = settings.http.proxy_secret
        self._headers = {"Accept": "application/scim+json, application/json"}
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"ScimConnector({self.name!r}, {self.settings.url})"

    async def open(self) -> None:
        """Build the session and its bounded pool; the first request connects."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._session is not None:
            return
        # One spare connection for the OAuth token endpoint, which the gate does not count.
        limit = self.settings.max_concurrency + 1
        self._session = self.settings.http.session(limit=limit, headers=self._headers)

    async def aclose(self) -> None:
        """Close the pool; safe to call twice."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        """Apply `ops` concurrently, at most `max_concurrency` at a time; one outcome each, in order."""
        if self._session is None:
            raise RuntimeError(f"{self!r} is not open")
        outcomes: list[Outcome | None] = [None] * len(ops)
        pending: Iterator[tuple[int, Operation]] = iter(enumerate(ops))

        async def drain() -> None:
            for i, op in pending:  # the lanes share one iterator, so each op is taken once
                outcomes[i] = await self._apply_one(op)

        await asyncio.gather(*(drain() for _ in range(min(len(ops), self.settings.max_concurrency))))
        return [outcome for outcome in outcomes if outcome is not None]

    async def _apply_one(self, op: Operation) -> Outcome:
        try:
            kind = _kind(op)
            if op.action == "delete":
                return await self._delete(op, kind)
            current = await self._find(op, kind)
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
            return self._redacted(error)
        except Exception as exc:
            log.exception("event=scim_op_crashed target=%s op=%s", self.name, op.op_id)
            return TransientError(self._redact(f"unexpected {type(exc).__name__}: {exc}"))

    # -- Finding -------------------------------------------------------------------------------------

    async def _find(self, op: Operation, kind: ObjectType) -> dict[str, Any] | None:
        if op.target_id:
            answer = await self._call("GET", f"{_ENDPOINTS[kind]}/{quote(op.target_id, safe='')}")
            if answer.status == 200 and isinstance(answer.body, dict):
                return answer.body
            if answer.status != 404:
                raise self._error(answer)
        return await self._match(op, kind)

    async def _match(self, op: Operation, kind: ObjectType) -> dict[str, Any] | None:
        keys = self._match_keys(op, kind)
        if not keys:
            raise PermanentError(
                f"{kind} {op.source_id!r} has no value for any matching attribute "
                f"({', '.join(self.settings.matching(kind))}); map one of them"
            )
        if len(keys) > 1 and self._or_filters:
            found, decided = await self._match_at_once(kind, keys)
            if decided:
                return found
        for path, value in keys:
            resources, total = await self._search(kind, path.filter(value))
            if total > 1:
                raise self._duplicates(kind, path, total)
            if resources:
                return resources[0]
        return None

    async def _match_at_once(
        self, kind: ObjectType, keys: list[tuple[AttrPath, Any]]
    ) -> tuple[dict[str, Any] | None, bool]:
        """One GET for every key, ranked here by precedence; (match, False) when it cannot decide."""
        query = " or ".join(f"({path.filter(value)})" for path, value in keys)
        try:
            resources, total = await self._search(kind, query)
        except PermanentError as error:
            if error.code != "400":
                raise
            self._or_filters = False  # this server reads only simple filters: one GET per key from now
            return None, False
        if total > len(resources):
            return None, False
        for path, value in keys:
            hits = [r for r in resources if _same_key(path.get(r), value)]
            if len(hits) > 1:
                raise self._duplicates(kind, path, len(hits))
            if hits:
                return hits[0], True
        return None, not resources  # found something none of the keys explains: ask one by one

    def _match_keys(self, op: Operation, kind: ObjectType) -> list[tuple[AttrPath, Any]]:
        names: list[tuple[str, Any]] = [(name, value) for name, value in op.matching]
        for name in self.settings.matching(kind):
            value = op.attributes.get(name)
            if value is None and kind == "group" and name == "externalId":
                value = op.source_id
            names.append((name, value))
        keys: dict[AttrPath, Any] = {}
        for name, value in names:
            path = _path(name)
            if value not in (None, "") and unique_candidates(value) is None and path not in keys:
                keys[path] = value
        return list(keys.items())

    async def _search(self, kind: ObjectType, query: str) -> tuple[list[dict[str, Any]], int]:
        answer = await self._call(
            "GET", _ENDPOINTS[kind], query=f"filter={quote(query, safe='')}&count={_MATCH_PAGE}"
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

    # -- Writing -------------------------------------------------------------------------------------

    async def _create(self, op: Operation, kind: ObjectType) -> Outcome:
        first, rest = [], []
        if kind == "group":
            first, rest = _chunks_of(list(dict.fromkeys(op.members_add)), self.settings.member_chunk_size)
        for tries_left in range(_UNIQUE_RETRIES, -1, -1):
            resolved = await self._resolve_unique(op, kind, None)
            body: dict[str, Any] = {"schemas": [_CORE[kind]]}
            for path, value in self._desired(resolved, kind).items():
                path.set(body, value)
            if first:
                body["members"] = [{"value": member} for member in first]
            answer = await self._call("POST", _ENDPOINTS[kind], body=body)
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
            await self._patch(kind, target_id, [_add_members(chunk)])
        return Applied(target_id)

    async def _update(self, op: Operation, kind: ObjectType, current: dict[str, Any]) -> Outcome:
        target_id = _id_of(current)
        desired = self._desired(op, kind)
        if self.settings.update_method == "put":
            await self._put(kind, current, desired, op)
            return Applied(target_id)
        requests = self._member_patches(current, op)
        changes = _diff(current, desired)
        if changes:
            requests = [changes + requests[0], *requests[1:]] if requests else [changes]
        for operations in requests:
            await self._patch(kind, target_id, operations)
        return Applied(target_id)

    async def _disable(self, op: Operation, kind: ObjectType, current: dict[str, Any]) -> Outcome:
        if kind == "group":
            raise PermanentError("a SCIM group has no active flag to disable; delete it instead")
        target_id = _id_of(current)
        if current.get("active") is False:
            return Applied(target_id)
        if self.settings.update_method == "put":
            await self._put(kind, current, {_path("active"): False}, None)
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
            path = _path(name)
            own_id = _id_of(current) if current is not None else None
            held = path.get(current) if current is not None else None
            for candidate in candidates:
                if held is not None and _same_key(held, candidate):
                    break
                resources, total = await self._search(kind, path.filter(candidate))
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
        answer = await self._call("DELETE", f"{_ENDPOINTS[kind]}/{quote(target_id, safe='')}")
        if answer.status not in (200, 204, 404):
            raise self._error(answer)
        return Applied(target_id)

    async def _patch(self, kind: ObjectType, target_id: str, operations: list[dict[str, Any]]) -> None:
        body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
        answer = await self._call("PATCH", f"{_ENDPOINTS[kind]}/{quote(target_id, safe='')}", body=body)
        if answer.status not in (200, 204):
            raise self._error(answer)

    async def _put(
        self, kind: ObjectType, current: dict[str, Any], desired: Mapping[AttrPath, Any], op: Operation | None
    ) -> None:
        """Replace the object with `current` overlaid by `desired`: attributes not mapped survive."""
        body = copy.deepcopy(current)
        body.pop("meta", None)
        for path, value in desired.items():
            path.set(body, value)
        if op is not None and kind == "group" and (op.members_add or op.members_remove):
            kept = [m for m in body.get("members") or [] if m.get("value") not in set(op.members_remove)]
            present = {m.get("value") for m in kept}
            kept += [{"value": m} for m in dict.fromkeys(op.members_add) if m not in present]
            body["members"] = kept
        if body == {k: v for k, v in current.items() if k != "meta"}:
            return
        target_id = _id_of(current)
        answer = await self._call("PUT", f"{_ENDPOINTS[kind]}/{quote(target_id, safe='')}", body=body)
        if answer.status not in (200, 204):
            raise self._error(answer)

    def _member_patches(self, current: Mapping[str, Any], op: Operation) -> list[list[dict[str, Any]]]:
        """PATCH bodies for the members to remove then add, skipping what the group already shows.

        A group read without a `members` key (none yet, or a server that leaves them out) hides
        nothing: every removal and addition is then sent, which a server takes as a no-op if needed.
        """
        listed = current.get("members")
        present = (
            {m.get("value") for m in listed if isinstance(m, dict)} if isinstance(listed, list) else None
        )
        wanted = dict.fromkeys(op.members_add)  # an id in both lists stays: added after its removal
        removals = [
            m
            for m in dict.fromkeys(op.members_remove)
            if m not in wanted and (present is None or m in present)
        ]
        additions = [m for m in wanted if present is None or m not in present]
        size = self.settings.member_chunk_size
        requests = [
            [{"op": "remove", "path": f"members[value eq {literal(m)}]"} for m in removals[i : i + size]]
            for i in range(0, len(removals), size)
        ]
        requests += [[_add_members(additions[i : i + size])] for i in range(0, len(additions), size)]
        return requests

    def _desired(self, op: Operation, kind: ObjectType) -> dict[AttrPath, Any]:
        if kind == "group" and "members" in op.attributes:
            raise PermanentError("group members come from members_add/members_remove, not from an attribute")
        desired = {_path(name): value for name, value in op.attributes.items()}
        if kind == "user" and op.action in ("create", "update"):
            desired.setdefault(_path("active"), True)
        if kind == "group" and op.action in ("create", "update"):
            desired.setdefault(_path("externalId"), op.source_id)
        return desired

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, query: str = "", body: Any = None) -> _Answer:
        """One request through the gate; a 401 under OAuth is retried once with a fresh token."""
        session = self._session
        if session is None:
            raise TransientError(f"{self!r} is closed")
        what = f"{method} {path}"
        url = URL(f"{self.settings.url}{path}{'?' + query if query else ''}", encoded=True)
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/scim+json"} if data is not None else {}
        for attempt in (1, 2):
            authorization = await self._authorization(session)
            if authorization:
                headers["Authorization"] = authorization
            async with self.gate.slot():
                self.requests_sent += 1
                try:
                    async with session.request(
                        method, url, data=data, headers=headers, proxy=self.settings.http.proxy
                    ) as response:
                        status, payload = response.status, await response.read()
                        retry_after = response.headers.get("Retry-After")
                except aiohttp.ClientConnectorCertificateError as exc:
                    raise PermanentError(f"{what}: TLS certificate refused: {exc}", code="tls") from None
                except TimeoutError:
                    raise TransientError(
                        f"{what}: no answer within {self.settings.http.timeout_s:g} s", code="timeout"
                    ) from None
                except aiohttp.ClientError as exc:
                    raise TransientError(f"{what}: {type(exc).__name__}: {exc}", code="network") from None
            if status == 401 and attempt == 1 and self._credentials.refreshable:
                self._credentials.invalidate(authorization)
                continue
            break
        if status == 429 or (status == 503 and retry_after is not None):
            self._throttled(status, retry_after)
        try:
            document = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            if 200 <= status < 300:
                raise PermanentError(
                    f"{what}: HTTP {status} with a body that is not JSON", code=str(status)
                ) from None
            document = None
        return _Answer(status, document, what)

    async def _authorization(self, session: aiohttp.ClientSession) -> str | None:
        """The Authorization header; a token endpoint's failure becomes this connector's error."""
        try:
            return await self._credentials.header(session)
        except AuthError as exc:
            raise (TransientError if exc.transient else PermanentError)(exc.message, code=exc.code) from None

    def _throttled(self, status: int, retry_after: str | None) -> None:
        seconds = parse_retry_after(retry_after)
        if seconds is None:
            seconds = _DEFAULT_429_PAUSE_S
        seconds = min(seconds, self.settings.http.max_pause_s)
        if seconds > self.gate.pause.remaining_s:
            log.warning("event=scim_throttled target=%s status=%d pause_s=%.2f", self.name, status, seconds)
        self.gate.pause.extend(seconds)

    def _error(self, answer: _Answer) -> ConnectorError:
        """The error an unwanted answer amounts to, with the server's own words."""
        status, document = answer.status, answer.body if isinstance(answer.body, dict) else {}
        scim_type, detail = document.get("scimType"), document.get("detail")
        text = f"{answer.what}: HTTP {status}"
        if scim_type:
            text += f" {scim_type}"
        if detail:
            text += f": {str(detail)[:_DETAIL_MAX]}"
        transient = status >= 500 or status in (408, 425, 429)
        return (TransientError if transient else PermanentError)(self._redact(text), code=str(status))

    def _redact(self, text: str) -> str:
        for secret in (*self._credentials.secrets(), self._proxy_secret):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _redacted(self, error: ConnectorError) -> ConnectorError:
        text = self._redact(error.message)
        return error if text == error.message else type(error)(text, code=error.code)


def _kind(op: Operation) -> ObjectType:
    if op.object_type not in _ENDPOINTS:
        raise PermanentError(f"object type {op.object_type!r} is not one of user, group")
    return op.object_type  # type: ignore[return-value]


def _path(name: str) -> AttrPath:
    try:
        return parse_path(name)
    except ValueError as exc:
        raise PermanentError(str(exc)) from None


def _id_of(resource: Mapping[str, Any]) -> str:
    target_id = resource.get("id")
    if not isinstance(target_id, str) or not target_id:
        raise PermanentError("the target returned an object without an id")
    return target_id


def _same_key(current: Any, wanted: Any) -> bool:
    if isinstance(current, str) and isinstance(wanted, str):
        return current.casefold() == wanted.casefold()  # the server may compare without case
    return bool(current == wanted)


def _diff(current: Mapping[str, Any], desired: Mapping[AttrPath, Any]) -> list[dict[str, Any]]:
    """PATCH operations that bring `current` to `desired`, touching only what differs."""
    operations: list[dict[str, Any]] = []
    new_entries: dict[tuple[str | None, str, str], dict[str, Any]] = {}
    for path, value in desired.items():
        now = path.get(current)
        if path.name not in _WRITE_ONLY and now == value:
            continue
        if value is None:
            if now is not None:
                whole_entry = path.type is not None and path.sub == "value"
                target = f'{path.prefix}{path.name}[type eq "{path.type}"]' if whole_entry else path.scim()
                operations.append({"op": "remove", "path": target})
            continue
        if path.type is not None:
            container = _field(current, path.schema) if path.schema else current
            if _entry(_field(container, path.name), path.type) is None:
                # No entry of that type yet: a replace through the selector would find no target.
                entry = new_entries.setdefault((path.schema, path.name, path.type), {"type": path.type})
                entry[path.sub or "value"] = value
                continue
        operations.append({"op": "replace", "path": path.scim(), "value": value})
    for (schema, name, _), entry in new_entries.items():
        operations.append({"op": "add", "path": f"{schema + ':' if schema else ''}{name}", "value": [entry]})
    return operations


def _add_members(members: Sequence[str]) -> dict[str, Any]:
    return {"op": "add", "path": "members", "value": [{"value": m} for m in members]}


def _chunks_of(items: list[str], size: int) -> tuple[list[str], list[list[str]]]:
    """The first chunk (sent with a create) and the rest."""
    return items[:size], [items[i : i + size] for i in range(size, len(items), size)]
