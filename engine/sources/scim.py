"""A source that reads Users or Groups from a SCIM 2.0 service (RFC 7644 §3.4.2), page by page.

**Paging.** Pages are asked for with `startIndex` and `count` and advanced by what came back, since
servers cap a page whatever `count` says (scim2-server at 1,000), until a page comes back empty or
`totalResults` is reached; `totalResults` is read again on every page. Each page after the first starts
one resource early, on the last one read: if that resource is not where it was, the listing moved under
the read (a delete before the cursor shifts every later resource back, and one would be skipped). The
read then goes on, and another pass follows that yields only what was not seen yet; if the listing is
still moving after `max_passes`, the read fails with `SourceError`, so that a missed resource never
looks deleted and gets deprovisioned. A resource seen twice is yielded once.

**Attribute names** are flattened (`scim_flatten.py`) to the names a mapping's `source:` uses, the same
paths the SCIM connector takes as target names (`userName`, `name.givenName`, `emails[type eq "work"].value`,
`enterprise.department`...); beside them:

* a group's `members` is the list of its members' source ids (see `member_id_attribute`); a member that is
  itself a group, or a user without that attribute, is left out and reported as a problem.

A resource that cannot be used (no id, an id another resource has) is a `SourceProblem` whose line is its
position in the listing; a service that cannot be read (refused credentials, a bad filter, still
failing after the retries) raises `SourceError`. 5xx, 408, 429 and network errors are retried with a
growing delay, or after `Retry-After`. Credentials never appear in errors or logs.

Settings (under a job's `source:`; the job's `object_type:` picks Users or Groups, and url, auth,
timeouts, TLS and proxy are read by `common/peers/http_settings.py`, as a SCIM target reads them)::

    type: scim
    url: https://idp.example.com/scim/v2            # required
    auth: {type: bearer, token: ${IDP_TOKEN}}       # as a SCIM target's auth:; none by default
    filter: 'active eq true'                        # a SCIM filter; everything by default
    attributes: [userName, name, emails]            # SCIM names asked for (?attributes=, plus the id
                                                    # attribute); all by default
    id_attribute: id                                # the source id: a flattened name, e.g. externalId
    member_id_attribute: id                         # groups: the users' attribute that is their source id
    page_size: 1000
    retries: 4                                      # per request, after the first try
    max_passes: 3
    timeout_s: 30                                   # per request
    connect_timeout_s: 10
    max_pause_s: 300                                # ceiling on one wait (a Retry-After)
    verify_tls: true
    ca_file: certs/idp-ca.pem                       # relative to the job file
    proxy: http://proxy:3128                        # else HTTP(S)_PROXY / NO_PROXY when trust_env
    trust_env: true
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from yarl import URL

from common.config.validation import as_list, check_keys, integer, join, string
from common.errors import AuthError, ConfigError, SourceError
from common.peers.http_settings import HTTP_KEYS, HttpSettings, parse_http_settings
from common.peers.scim_schemas import ENDPOINTS, ObjectType
from common.peers.scim_transport import ScimTransport, Unanswered, refusal_text
from engine.core.values import flaw
from engine.model import SourceObject
from engine.sources.base import ProblemLog
from engine.sources.scim_flatten import flatten, scim_name

log = logging.getLogger("roster.sources.scim")

_KEYS: Final = (
    *HTTP_KEYS,
    "type",
    "filter",
    "attributes",
    "id_attribute",
    "member_id_attribute",
    "page_size",
    "retries",
    "max_passes",
)
_TRANSIENT: Final = frozenset({408, 425, 429})
_FIRST_DELAY_S: Final = 0.5
_DETAIL_MAX: Final = 300
# A name the server's ?attributes= understands: attr, attr.sub, or urn:...:attr[.sub].
_PLAIN_NAME: Final = re.compile(r"(?:urn:[\w.:-]+:)?[A-Za-z][\w$-]*(?:\.[A-Za-z$][\w$-]*)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScimSourceSettings:
    """A validated SCIM source (see the module docstring for each key); its repr hides the secrets."""

    http: HttpSettings
    object_type: ObjectType
    filter: str | None = None
    attributes: tuple[str, ...] = ()
    id_attribute: str = "id"
    member_id_attribute: str = "id"
    page_size: int = 1000
    retries: int = 4
    max_passes: int = 3

    @property
    def url(self) -> str:
        return self.http.url

    def __post_init__(self) -> None:
        if self.object_type not in ENDPOINTS:
            raise ValueError(f"object_type must be user or group, got {self.object_type!r}")
        if self.page_size < 1 or self.max_passes < 1 or self.retries < 0:
            raise ValueError("page_size and max_passes must be at least 1, retries at least 0")


def parse_scim_source(
    path: str, raw: Mapping[str, Any], *, base_dir: Path, object_type: str
) -> ScimSourceSettings:
    """Validate a job's `source:` of type scim for a job of `object_type` (user or group).

    Errors name the key's path, the problem and the fix.
    """
    if "object_type" in raw:
        where = join(path, "object_type")
        raise ConfigError(where, "belongs to the job", "write `object_type:` beside `source:`, not in it")
    check_keys(path, raw, _KEYS, required=("url",))

    def at(key: str) -> str:
        return join(path, key)

    http = parse_http_settings(path, raw, base_dir=base_dir)
    if URL(http.url).path.rstrip("/").endswith(("/Users", "/Groups")):
        raise ConfigError(
            at("url"), "names an endpoint", "give the base URL; the job's object_type picks the endpoint"
        )
    attributes = tuple(
        string(join(at("attributes"), i), name)
        for i, name in enumerate(as_list(at("attributes"), raw.get("attributes") or []))
    )
    if object_type == "user" and "member_id_attribute" in raw:
        fix = "remove it, or make the job `object_type: group`"
        raise ConfigError(at("member_id_attribute"), "applies to groups only", fix)
    return ScimSourceSettings(
        http=http,
        object_type=object_type,  # type: ignore[arg-type]
        filter=string(at("filter"), raw["filter"]) if raw.get("filter") is not None else None,
        attributes=attributes,
        id_attribute=string(at("id_attribute"), raw.get("id_attribute", "id")),
        member_id_attribute=string(at("member_id_attribute"), raw.get("member_id_attribute", "id")),
        page_size=integer(at("page_size"), raw.get("page_size", 1000), minimum=1),
        retries=integer(at("retries"), raw.get("retries", 4), minimum=0),
        max_passes=integer(at("max_passes"), raw.get("max_passes", 3), minimum=1),
    )


# -- The source --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pass:
    """One read through the listing: where it is, and whether the listing moved under it."""

    start: int = 1
    anchor: str | None = None  # id of the last resource read, which the next page starts on
    moved: bool = False


class ScimSource(ProblemLog):
    """Streams the Users or Groups of one SCIM service; see the module docstring."""

    full = True
    """A SCIM service is always listed whole."""
    watermark = None

    def __init__(self, settings: ScimSourceSettings) -> None:
        super().__init__()
        self.settings = settings
        self.passes = 0
        self._transport = ScimTransport(settings.http, max_connections=2)
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"ScimSource({self.settings.url}{ENDPOINTS[self.settings.object_type]})"

    @property
    def requests_sent(self) -> int:
        return self._transport.requests_sent

    async def batches(self, size: int) -> AsyncIterator[list[SourceObject]]:
        """Yield lists of at most `size` objects, one page at a time."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self._forget_problems()
        self.passes = 0
        s = self.settings
        async with self._transport:
            members = await self._member_ids() if s.object_type == "group" else None
            seen: set[str] = set()  # resource ids, so a resource met twice is yielded once
            owners: dict[str, str] = {}  # source id -> resource id, to catch two resources with one id
            for pass_number in range(1, s.max_passes + 1):
                self.passes = pass_number
                read = _Pass()
                async for page in self._pages(ENDPOINTS[s.object_type], self._query(), read):
                    batch: list[SourceObject] = []
                    for position, resource in page:
                        obj = self._object(resource, position, seen, owners, members)
                        if obj is not None:
                            batch.append(obj)
                    for i in range(0, len(batch), size):
                        yield batch[i : i + size]
                if not read.moved:
                    return
                log.warning("event=scim_source_listing_moved source=%r pass=%d", self, pass_number)
            raise SourceError(
                f"{self!r}: the listing kept changing during {s.max_passes} reads (resources were "
                "added or removed while it was paged), so some may have been missed; nothing was "
                "deprovisioned. Run the cycle again, or raise the source's `max_passes:`"
            )

    def _query(self) -> str:
        s = self.settings
        parts = []
        if s.filter:
            parts.append(f"filter={quote(s.filter, safe='')}")
        if s.attributes:
            names = list(s.attributes)
            id_name = scim_name(s.id_attribute)
            if id_name not in names and s.id_attribute != "id" and _PLAIN_NAME.fullmatch(id_name):
                names.append(id_name)  # a source id the server was not asked for would be missing
            parts.append(f"attributes={quote(','.join(names), safe=',')}")
        return "&".join(parts)

    def _object(
        self,
        resource: Any,
        position: int,
        seen: set[str],
        owners: dict[str, str],
        members: dict[str, str] | None,
    ) -> SourceObject | None:
        if not isinstance(resource, dict):
            self._problem(position, "is not a JSON object; skipped")
            return None
        resource_id = resource.get("id")
        if not isinstance(resource_id, str) or not resource_id:
            self._problem(position, "has no id; skipped")
            return None
        if resource_id in seen:
            return None
        seen.add(resource_id)
        group = self.settings.object_type == "group"
        attributes = flatten({k: v for k, v in resource.items() if k != "members"} if group else resource)
        id_name = self.settings.id_attribute
        source_id = attributes.get(id_name)
        if type(source_id) is int:
            source_id = str(source_id)
        if not isinstance(source_id, str) or not source_id or source_id.isspace():
            self._problem(position, f"resource {resource_id} has no {id_name}; skipped")
            return None
        if (id_flaw := flaw(source_id)) is not None:
            self._problem(position, f"resource {resource_id!r} has a {id_name} that holds {id_flaw}; skipped")
            return None
        owner = owners.setdefault(source_id, resource_id)
        if owner != resource_id:
            self._problem(
                position, f"resource {resource_id} has the {id_name} {source_id!r} of {owner}; skipped"
            )
            return None
        if group:
            attributes["members"] = self._members(resource, position, members)
        return SourceObject(source_id, attributes, position)

    def _members(self, group: Mapping[str, Any], position: int, ids: dict[str, str] | None) -> list[str]:
        """The group's members as source ids; those that are groups or have no source id are left out."""
        found: dict[str, None] = {}
        left_out = 0
        for member in group.get("members") or []:
            value = member.get("value") if isinstance(member, dict) else None
            kind = member.get("type") if isinstance(member, dict) else None
            source_id = value if ids is None else ids.get(value) if isinstance(value, str) else None
            if not isinstance(source_id, str) or (isinstance(kind, str) and kind.lower() == "group"):
                left_out += 1
            else:
                found[source_id] = None
        if left_out:
            whom = "users" if ids is None else f"users with a {self.settings.member_id_attribute}"
            self._problem(
                position,
                f"group {group.get('id')} has {left_out} members that are not {whom}; left out",
                skipped=False,  # the group itself was read
            )
        return list(found)

    async def _member_ids(self) -> dict[str, str] | None:
        """User id -> source id, when the users' source id is not their SCIM id (None when it is)."""
        name = self.settings.member_id_attribute
        if name == "id":
            return None
        wire_name = scim_name(name)
        # The job's filter is for groups; the users are read whole, or only for that attribute.
        query = f"attributes={quote(wire_name, safe='')}" if _PLAIN_NAME.fullmatch(wire_name) else ""
        ids: dict[str, str] = {}
        for _ in range(self.settings.max_passes):
            read = _Pass()
            async for page in self._pages("/Users", query, read):
                for _, user in page:
                    if isinstance(user, dict) and isinstance(user.get("id"), str):
                        value = flatten(user).get(name)
                        if isinstance(value, str | int) and not isinstance(value, bool):
                            ids[user["id"]] = str(value)
            if not read.moved:
                return ids
        raise SourceError(f"{self!r}: the users kept changing while their {name} was read; run again")

    async def _pages(self, endpoint: str, query: str, read: _Pass) -> AsyncIterator[list[tuple[int, Any]]]:
        """Each page's new resources with their positions; `read.moved` tells whether the listing moved."""
        size = self.settings.page_size
        while True:
            overlap = read.anchor is not None
            position = read.start - 1 if overlap else read.start
            # One more when overlapping, so that a page still brings `page_size` new resources.
            paging = f"startIndex={position}&count={size + overlap}"
            document = await self._get(endpoint, f"{query}&{paging}" if query else paging)
            resources = document.get("Resources") or []
            if not isinstance(resources, list):
                raise SourceError(f"{self!r}: the listing's Resources is not a list")
            total = document.get("totalResults")
            if overlap:
                first = resources[0] if resources else None
                if isinstance(first, dict) and first.get("id") == read.anchor:
                    resources, position = resources[1:], position + 1
                else:  # the resource read last is no longer where it was
                    read.moved = True
            if not resources:
                if not overlap and isinstance(total, int) and total >= position:
                    read.moved = True  # fewer resources than the total said: they went meanwhile
                return
            yield list(enumerate(resources, position))
            read.start = position + len(resources)
            last = resources[-1]
            read.anchor = last.get("id") if isinstance(last, dict) else None
            if isinstance(total, int) and read.start > total:
                return

    async def _get(self, endpoint: str, query: str) -> dict[str, Any]:
        """One GET, retried on transient errors; anything else that is not a JSON object is a SourceError."""
        s = self.settings
        redact = self._transport.redact
        what = f"GET {endpoint}?{query}"
        attempt = 0
        while True:
            status, document, retry_after_s = 0, None, None
            try:
                answer = await self._transport.send("GET", endpoint, query=query)
            except AuthError as exc:  # the token endpoint's own errors, already free of secrets
                if not exc.transient:
                    raise SourceError(f"{self!r}: {exc}") from None
                problem = str(exc)
            except Unanswered as exc:
                if not exc.transient:
                    raise SourceError(redact(f"{self!r}: {exc.detail}")) from None
                problem = exc.detail
            else:
                status, document, retry_after_s = answer.status, answer.body, answer.retry_after_s
                problem = f"HTTP {status}"
            if status == 200:
                if isinstance(document, dict):
                    return document
                raise SourceError(redact(f"{self!r}: {what} answered 200 with no JSON object"))
            if status and status not in _TRANSIENT and status < 500:
                raise SourceError(redact(self._refusal(what, status, document)))
            if attempt >= s.retries:
                raise SourceError(
                    redact(f"{self!r}: {what} still failing after {attempt + 1} tries: {problem}")
                )
            delay = retry_after_s
            if delay is None:
                delay = _FIRST_DELAY_S * 2**attempt * self._rng.uniform(0.8, 1.2)
            delay = min(delay, s.http.max_pause_s)
            log.warning(
                "event=scim_source_retry source=%r problem=%r wait_s=%.2f", self, redact(problem), delay
            )
            attempt += 1
            await asyncio.sleep(delay)

    def _refusal(self, what: str, status: int, document: Any) -> str:
        text = f"{self!r}: {what} refused: {refusal_text(status, document, detail_max=_DETAIL_MAX)}"
        fix = {
            400: "check the source's `filter:` and `attributes:`",
            401: "check the source's `auth:`",
            403: "the credentials may not read this endpoint",
            404: "check the source's `url:`: it should end where /Users and /Groups begin",
        }.get(status)
        return f"{text} ({fix})" if fix else text
