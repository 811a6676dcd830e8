"""The inbound SCIM service over HTTP (RFC 7644): `/Users`, `/Groups`, `/Bulk` and the discovery
endpoints. A bulk operation goes through the same write (one function per method) as a single request.

Every answer that is not a success is SCIM's error shape with its `scimType` (`ScimProblem`), never an
HTML page or a traceback: a bad token, a body that is not JSON or too large, a filter that does not
parse, a PATCH path that does not exist, a name another User holds. Nothing is stored for a request
that is refused. A token names the jobs it may write (`engine.inbound.settings`); reading needs a
valid token too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final
from urllib.parse import unquote_plus

import orjson
from aiohttp import web

from common.peers.scim_schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA
from engine.inbound.bulk import MAX_OPERATIONS as MAX_OPERATIONS_BULK
from engine.inbound.bulk import BulkOperation, Done, bulk_response, parse_bulk, run_bulk
from engine.inbound.discovery import resource_types, schemas, service_provider_config
from engine.inbound.errors import ScimProblem
from engine.inbound.filter import indexed_equality, parse_filter
from engine.inbound.match import matches
from engine.inbound.openapi import inbound_openapi
from engine.inbound.patch import apply_patch
from engine.inbound.projection import names, project
from engine.inbound.quirks import ENTRA_GROUP_SCHEMA
from engine.inbound.service import Applied, InboundService
from engine.inbound.settings import InboundToken
from engine.store.mirror import MirrorConflict, MirrorTx, Stored

log = logging.getLogger("roster.engine.inbound.http")

SCIM_JSON: Final = "application/scim+json"
TOKEN_PATH: Final = "/oauth/token"
LIST_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ENDPOINTS: Final = {"Users": "User", "Groups": "Group"}
CORE: Final = {"User": USER_SCHEMA, "Group": GROUP_SCHEMA}
ALLOWED_SCHEMAS: Final = {
    "User": {USER_SCHEMA, ENTERPRISE_SCHEMA},
    "Group": {GROUP_SCHEMA, ENTRA_GROUP_SCHEMA},
}
NAME: Final = {"User": "userName", "Group": "displayName"}
DEFAULT_COUNT: Final = 100
MAX_COUNT: Final = 1_000
_TOKEN: Final = web.RequestKey("token", InboundToken)
_BULK_ID: Final = b"bulkId:"
"""What a bulk request holds when an operation names another's resource (RFC 7644 §3.7.2)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def inbound_app(service: InboundService, *, gate: Callable[[], str | None] | None = None) -> web.Application:
    """The application; `gate` says why the service is closed (a standby engine), if it is."""
    settings = service.settings
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[_errors(settings.max_body_bytes), _authenticated(service, gate)],
    )
    base = settings.base_path
    api = _Api(service)
    app.router.add_get(f"{base}/ServiceProviderConfig", api.service_provider_config)
    app.router.add_get(f"{base}/ResourceTypes", api.resource_types)
    app.router.add_get(f"{base}/ResourceTypes/{{name}}", api.resource_type)
    app.router.add_get(f"{base}/Schemas", api.schemas)
    app.router.add_get(f"{base}/Schemas/{{urn}}", api.schema)
    app.router.add_post(f"{base}/.search", api.search_all)
    document = inbound_openapi(base, oauth=bool(settings.clients))
    app.router.add_get(f"{base}/openapi.json", partial(_document, document))
    if settings.clients:
        app.router.add_post(f"{base}{TOKEN_PATH}", partial(issue_token, service))
    app.router.add_post(f"{base}/Bulk", api.bulk)
    for endpoint, resource_type in ENDPOINTS.items():
        app.router.add_post(f"{base}/{endpoint}", partial(api.create, resource_type))
        app.router.add_get(f"{base}/{endpoint}", partial(api.listing, resource_type))
        app.router.add_post(f"{base}/{endpoint}/.search", partial(api.search, resource_type))
        app.router.add_get(f"{base}/{endpoint}/{{id}}", partial(api.get, resource_type))
        app.router.add_put(f"{base}/{endpoint}/{{id}}", partial(api.replace, resource_type))
        app.router.add_patch(f"{base}/{endpoint}/{{id}}", partial(api.patch, resource_type))
        app.router.add_delete(f"{base}/{endpoint}/{{id}}", partial(api.delete, resource_type))
    return app


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=SCIM_JSON, headers=headers)


def _errors(max_body_bytes: int) -> Any:
    @web.middleware
    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every refusal in SCIM's error shape."""
        try:
            return await handler(request)
        except ScimProblem as problem:
            return _refused(problem)
        except web.HTTPRequestEntityTooLarge:
            detail = f"the body is larger than the {max_body_bytes:,} bytes this service takes"
            return _refused(ScimProblem(413, None, detail))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return _refused(ScimProblem(exc.status, None, exc.reason or "refused"), allow)
        except Exception:
            log.exception("event=inbound_error method=%s path=%s", request.method, request.path)
            detail = "the service failed on this request; the engine's log has the cause"
            return _refused(ScimProblem(500, None, detail))

    return answer


def _refused(problem: ScimProblem, headers: dict[str, str] | None = None) -> web.Response:
    return scim_response(
        problem.body(), problem.status, {**(_problem_headers(problem) or {}), **(headers or {})}
    )


def _problem_headers(problem: ScimProblem) -> dict[str, str] | None:
    if problem.status == 401:
        return {"WWW-Authenticate": 'Bearer realm="roster"'}
    if problem.status == 503:
        return {"Retry-After": "5"}
    return None


def _authenticated(service: InboundService, gate: Callable[[], str | None] | None) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        closed = gate() if gate is not None else None
        if closed is not None:
            raise ScimProblem(503, None, closed)
        if request.path == f"{service.settings.base_path}{TOKEN_PATH}":
            return await handler(request)  # the client authenticates with its credentials there
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise ScimProblem(401, None, "send a bearer token: Authorization: Bearer <token>")
        token = service.token(presented.strip())
        if token is None:
            raise ScimProblem(401, None, "the bearer token is not one of this service's")
        request[_TOKEN] = token
        return await handler(request)

    return check


async def _document(document: dict[str, Any], _request: web.Request) -> web.Response:
    return web.json_response(document)


async def issue_token(service: InboundService, request: web.Request) -> web.Response:
    """The token endpoint of the client credentials grant (RFC 6749 §4.4): the client's id and secret
    in HTTP Basic or in the form, `grant_type=client_credentials`; errors in OAuth's shape (§5.2)."""
    if request.content_type != "application/x-www-form-urlencoded":  # RFC 6749 §4.4.2
        return _oauth_error(400, "invalid_request", "send the form as application/x-www-form-urlencoded")
    try:
        form = await request.post()
    except ValueError:
        return _oauth_error(400, "invalid_request", "the form could not be read")
    client_id, secret = _basic(request.headers.get("Authorization", ""))
    if client_id is None:
        client_id, secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials is served")
    client = service.settings.client(client_id, secret or "") if client_id else None
    if client is None:
        log.warning("event=inbound_client_refused client_id=%r", client_id[:64])
        return _oauth_error(401, "invalid_client", "unknown client_id, or a wrong client_secret")
    body = {
        "access_token": service.issued.issue(client),
        "token_type": "Bearer",
        "expires_in": int(service.issued.lifetime_s),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _basic(header: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return unquote_plus(client_id), unquote_plus(secret)  # RFC 6749 §2.3.1: form-encoded, then Basic


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="roster"'
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=headers
    )


class _Api:
    def __init__(self, service: InboundService) -> None:
        self.service = service
        self.mirror = service.mirror

    # -- Discovery ------------------------------------------------------------------------------------

    async def service_provider_config(self, request: web.Request) -> web.Response:
        return scim_response(
            service_provider_config(
                self._base(request),
                MAX_COUNT,
                self.service.settings.max_body_bytes,
                max_operations=MAX_OPERATIONS_BULK,
            )
        )

    async def resource_types(self, request: web.Request) -> web.Response:
        found = resource_types(self._base(request))
        return scim_response(_listed(found, 1, len(found)))

    async def resource_type(self, request: web.Request) -> web.Response:
        for found in resource_types(self._base(request)):
            if found["id"] == request.match_info["name"]:
                return scim_response(found)
        raise ScimProblem(404, None, f"no resource type {request.match_info['name']!r}: User or Group")

    async def schemas(self, request: web.Request) -> web.Response:
        found = schemas(self._base(request))
        return scim_response(_listed(found, 1, len(found)))

    async def schema(self, request: web.Request) -> web.Response:
        for found in schemas(self._base(request)):
            if found["id"] == request.match_info["urn"]:
                return scim_response(found)
        raise ScimProblem(404, None, f"no schema {request.match_info['urn']!r}")

    # -- Resources ------------------------------------------------------------------------------------

    async def create(self, resource_type: str, request: web.Request) -> web.Response:
        token, body = self._writer(request), await _json(request)
        stored = await self.mirror.write(
            lambda tx: self.create_in(tx, token, resource_type, body), names=_user_names(resource_type, body)
        )
        await self._pushed(stored.resource_type, stored.id, stored)
        return self._answer(request, stored, 201)

    async def get(self, resource_type: str, request: web.Request) -> web.Response:
        return self._answer(request, await self._stored(resource_type, request.match_info["id"]))

    async def replace(self, resource_type: str, request: web.Request) -> web.Response:
        token, body, if_version = self._writer(request), await _json(request), _if_match(request)
        resource_id = request.match_info["id"]
        stored = await self.mirror.write(
            lambda tx: self.update_in(tx, token, "PUT", resource_type, resource_id, body, if_version),
            keys=[(resource_type, resource_id)],
            names=_user_names(resource_type, body),
        )
        await self._pushed(stored.resource_type, stored.id, stored)
        return self._answer(request, stored)

    async def patch(self, resource_type: str, request: web.Request) -> web.Response:
        token, body, if_version = self._writer(request), await _json(request), _if_match(request)
        resource_id = request.match_info["id"]
        stored = await self.mirror.write(
            lambda tx: self.update_in(tx, token, "PATCH", resource_type, resource_id, body, if_version),
            keys=[(resource_type, resource_id)],
        )
        await self._pushed(stored.resource_type, stored.id, stored)
        if resource_type == "Group" and not {"attributes", "excludedAttributes"} & set(request.query):
            # Entra asks 204 for a Group PATCH, not every member again; Okta takes it (RFC 7644 §3.5.2)
            return web.Response(status=204, headers={"ETag": stored.etag})
        return self._answer(request, stored)

    async def delete(self, resource_type: str, request: web.Request) -> web.Response:
        token, if_version = self._writer(request), _if_match(request)
        resource_id = request.match_info["id"]
        await self.mirror.write(
            lambda tx: self.delete_in(tx, token, resource_type, resource_id, if_version),
            keys=[(resource_type, resource_id)],
        )
        await self._pushed(resource_type, resource_id, None)
        return web.Response(status=204)

    async def bulk(self, request: web.Request) -> web.Response:
        """POST `/Bulk` (RFC 7644 §3.7): each operation through the same writes as a single request,
        all of them in one transaction of the mirror (and answered once it committed). With `respond:
        applied` the answer waits for every operation's targets (all at once, not one after another);
        with `respond: stored` they are planned in the background."""
        token = self._writer(request)
        raw = await request.read()
        parsed = parse_bulk(_decoded(raw), max_operations=MAX_OPERATIONS_BULK, references=_BULK_ID in raw)
        base = self._base(request)
        pushed: dict[int, tuple[str, str, Stored | None]] = {}

        def program(tx: MirrorTx) -> dict[int, dict[str, Any]]:
            def perform(op: BulkOperation) -> Done:
                done, key = self._bulk_write(tx, token, op)
                pushed[op.index] = key
                return done

            return run_bulk(parsed, perform, lambda endpoint, i: f"{base}/{endpoint}/{i}")

        answers = await self.mirror.write(
            program,
            keys=[
                (op.resource_type, op.resource_id)
                for op in parsed.operations
                if op.resource_id is not None and not op.references
            ],
            names=[
                n
                for op in parsed.operations
                if op.method != "PATCH"
                for n in _user_names(op.resource_type, op.data)
            ],
        )
        applying = {index: w for index, push in pushed.items() if (w := self.service.push(*push)) is not None}
        if applying:
            await asyncio.gather(*map(asyncio.shield, applying.values()))
        for index, work in applying.items():
            try:
                _raise_for(work.result())
            except ScimProblem as problem:
                answers[index]["status"], answers[index]["response"] = str(problem.status), problem.body()
        return scim_response(bulk_response(list(answers.values())))

    def _bulk_write(
        self, tx: MirrorTx, token: InboundToken, op: BulkOperation
    ) -> tuple[Done, tuple[str, str, Stored | None]]:
        """One bulk operation, written; what it answers and what to push."""
        if_version = _version(op.version)
        if op.method == "DELETE":
            assert op.resource_id is not None  # parse_bulk: only a POST has none
            self.delete_in(tx, token, op.resource_type, op.resource_id, if_version)
            return Done(status=204), (op.resource_type, op.resource_id, None)
        if op.method == "POST":
            stored = self.create_in(tx, token, op.resource_type, op.data)
            status = 201
        else:
            assert op.resource_id is not None
            stored = self.update_in(
                tx, token, op.method, op.resource_type, op.resource_id, op.data, if_version
            )
            status = 200
        done = Done(status=status, resource_id=stored.id, version=stored.etag)
        return done, (stored.resource_type, stored.id, stored)

    # -- Writes: one per method, shared by the single requests and /Bulk, each in a mirror transaction --

    def create_in(self, tx: MirrorTx, token: InboundToken, resource_type: str, body: Any) -> Stored:
        self._writable(token, resource_type)
        try:
            stored, _created = tx.create(resource_type, _checked(resource_type, body))
        except MirrorConflict as conflict:
            raise ScimProblem(409, "uniqueness", conflict.detail) from None
        return stored

    def update_in(
        self,
        tx: MirrorTx,
        token: InboundToken,
        method: str,
        resource_type: str,
        resource_id: str,
        body: Any,
        if_version: int | None,
    ) -> Stored:
        """A PUT (`method`) or a PATCH of the resource, from what it holds in the transaction."""
        self._writable(token, resource_type)
        change = partial(_CHANGES[method], resource_type, body)
        try:
            stored = tx.update(resource_type, resource_id, change, if_version=if_version)
        except MirrorConflict as conflict:
            if conflict.kind == "version":
                raise ScimProblem(412, None, conflict.detail) from None
            raise ScimProblem(409, "uniqueness", conflict.detail) from None
        if stored is None:
            raise ScimProblem(404, None, f"no {resource_type} {resource_id!r}")
        return stored

    def delete_in(
        self, tx: MirrorTx, token: InboundToken, resource_type: str, resource_id: str, if_version: int | None
    ) -> None:
        self._writable(token, resource_type)
        try:
            deleted = tx.delete(resource_type, resource_id, if_version=if_version)
        except MirrorConflict as conflict:
            raise ScimProblem(412, None, conflict.detail) from None
        if not deleted:
            raise ScimProblem(404, None, f"no {resource_type} {resource_id!r}")

    async def listing(self, resource_type: str, request: web.Request) -> web.Response:
        return await self._answer_query(request, resource_type, _url_query(request))

    async def search(self, resource_type: str, request: web.Request) -> web.Response:
        """POST `/.search` (RFC 7644 §3.4.3): the query in the body, where a URL would be too long."""
        return await self._answer_query(request, resource_type, _body_query(await _json(request)))

    async def search_all(self, request: web.Request) -> web.Response:
        """POST `/.search` at the root: Users, then Groups."""
        return await self._answer_query(request, None, _body_query(await _json(request)))

    async def _answer_query(
        self, request: web.Request, resource_type: str | None, query: Query
    ) -> web.Response:
        types = [resource_type] if resource_type is not None else list(ENDPOINTS.values())
        if query.filter:
            found = [s for t in types for s in await self._filtered(t, query.filter)]
            total, page = len(found), found[query.start - 1 : query.start - 1 + query.count]
        else:  # every resource: counted, then one page read
            total = sum([await self.mirror.count(t) for t in types])
            page = await self._page(types, query.start, query.count)
        shown = [self._shown(request, s, query.attributes, query.excluded) for s in page]
        return scim_response(_listed(shown, query.start, total))

    # -- Helpers --------------------------------------------------------------------------------------

    async def _pushed(self, resource_type: str, resource_id: str, stored: Stored | None) -> None:
        applied = await self.service.pushed(resource_type, resource_id, stored)
        _raise_for(applied)

    async def _stored(self, resource_type: str, resource_id: str) -> Stored:
        stored = await self.mirror.get(resource_type, resource_id)
        if stored is None:
            raise ScimProblem(404, None, f"no {resource_type} {resource_id!r}")
        return stored

    async def _filtered(self, resource_type: str, text: str) -> list[Stored]:
        node = parse_filter(text)
        equality = indexed_equality(node)
        if equality is not None and equality[0] in ("id", "externalId", NAME[resource_type]):
            attribute, value = equality
            if attribute == "id":
                one = await self.mirror.get(resource_type, value)
                return [one] if one is not None else []
            ids = await self.mirror.find(
                resource_type,
                name=value if attribute != "externalId" else None,
                external_id=value if attribute == "externalId" else None,
            )
            found = [s for i in ids if (s := await self.mirror.get(resource_type, i)) is not None]
            return [s for s in found if matches(s.body, node)]  # the index is wider than the filter
        return [s async for page in self.mirror.pages(resource_type) for s in page if matches(s.body, node)]

    async def _page(self, types: Sequence[str], start: int, count: int) -> list[Stored]:
        """`count` resources from the `start`th (1-based) of the types' in turn, each in id order."""
        page: list[Stored] = []
        skipped = 0
        for resource_type in types:
            async for stored in _each(self.mirror.pages(resource_type)):
                if len(page) >= count:
                    return page
                if skipped < start - 1:
                    skipped += 1
                    continue
                page.append(stored)
        return page

    def _writable(self, token: InboundToken, resource_type: str) -> None:
        refused = self.service.may_write(token.jobs, resource_type)
        if refused is not None:
            raise ScimProblem(403, None, refused)

    @staticmethod
    def _writer(request: web.Request) -> InboundToken:
        return request[_TOKEN]

    def _answer(self, request: web.Request, stored: Stored, status: int = 200) -> web.Response:
        headers = {"ETag": stored.etag}
        if status == 201:
            endpoint = "Users" if stored.resource_type == "User" else "Groups"
            headers["Location"] = f"{self._base(request)}/{endpoint}/{stored.id}"
        return scim_response(self._shown(request, stored), status, headers)

    def _shown(
        self,
        request: web.Request,
        stored: Stored,
        attributes: Sequence[str] | None = None,
        excluded: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The resource as answered: with its location, and only the attributes asked for (RFC 7644
        §3.4.2.5; by default those of the request's URL)."""
        endpoint = "Users" if stored.resource_type == "User" else "Groups"
        meta = {**stored.body.get("meta", {}), "location": f"{self._base(request)}/{endpoint}/{stored.id}"}
        if attributes is None:
            attributes = names(request.query.get("attributes"))
        if excluded is None:
            excluded = names(request.query.get("excludedAttributes"))
        return project({**stored.body, "meta": meta}, attributes, excluded)

    def _base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{self.service.settings.base_path}"


async def _each(pages: Any) -> Any:
    async for page in pages:
        for stored in page:
            yield stored


def _raise_for(applied: Applied) -> None:
    """With `respond: applied`: the target's refusal as the answer, or 503 when it did not answer."""
    if applied.failures:
        job, error = applied.failures[0]
        raise ScimProblem(400, None, f"stored, but job {job} could not apply it to its target: {error}")
    if applied.timed_out:
        jobs = ", ".join(applied.timed_out)
        raise ScimProblem(
            503, None, f"stored, but the target of job(s) {jobs} did not answer in time; retry later"
        )


async def _json(request: web.Request) -> Any:
    return _decoded(await request.read())


def _decoded(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ScimProblem(400, "invalidSyntax", f"the body is not JSON: {exc}") from None


def _checked(resource_type: str, body: Any) -> dict[str, Any]:
    """A User or Group as the client writes it: an object with its core schema and the name it needs."""
    if not isinstance(body, dict):
        raise ScimProblem(400, "invalidSyntax", f"the body is a {type(body).__name__}, not a {resource_type}")
    listed = body.get("schemas")
    if not isinstance(listed, list) or CORE[resource_type] not in listed:
        raise ScimProblem(400, "invalidValue", f"schemas must list {CORE[resource_type]}")
    unknown = [s for s in listed if s not in ALLOWED_SCHEMAS[resource_type]]
    if unknown:
        raise ScimProblem(
            400, "invalidValue", f"unknown schema(s) for a {resource_type}: {', '.join(map(str, unknown))}"
        )
    name = body.get(NAME[resource_type])
    if not isinstance(name, str) or not name.strip():
        raise ScimProblem(400, "invalidValue", f"a {resource_type} needs {NAME[resource_type]}")
    return body


def _replaced(resource_type: str, body: Any, current: Stored) -> dict[str, Any]:
    checked = _checked(resource_type, body)
    _same_id(checked, current.id)
    return checked


def _patched(resource_type: str, body: Any, current: Stored) -> dict[str, Any]:
    return _checked(resource_type, apply_patch(current.body, body))


_CHANGES: Final = {"PUT": _replaced, "PATCH": _patched}
"""What a PUT and a PATCH make of a resource's content."""


def _user_names(resource_type: str, body: Any) -> list[str]:
    """The userName a write names, to be read ahead with the others of its transaction."""
    name = body.get("userName") if resource_type == "User" and isinstance(body, dict) else None
    return [name] if isinstance(name, str) else []


def _same_id(body: dict[str, Any], resource_id: str) -> None:
    if "id" in body and body["id"] != resource_id:
        raise ScimProblem(400, "mutability", f"id is {resource_id!r} and cannot change")


def _if_match(request: web.Request) -> int | None:
    return _version(request.headers.get("If-Match"))


def _version(header: str | None) -> int | None:
    """The version an If-Match header (or a bulk operation's `version`) names; None for any."""
    if header is None or header.strip() == "*":
        return None
    tag = header.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ScimProblem(412, None, f"If-Match {header!r} is no version of this service's")
    return int(tag)


def _integer(raw: Any, name: str, default: int, *, minimum: int) -> int:
    """A paging number from a URL or a search body: below `minimum` counts as `minimum` (RFC 7644
    §3.4.2.4), anything but an integer is refused."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        raise ScimProblem(400, "invalidValue", f"{name} must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ScimProblem(400, "invalidValue", f"{name} must be an integer, got {raw!r}") from None
    return max(value, minimum)


@dataclass(frozen=True, slots=True)
class Query:
    """What a list or a search asks for."""

    start: int = 1
    count: int = DEFAULT_COUNT
    filter: str | None = None
    attributes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def _url_query(request: web.Request) -> Query:
    return Query(
        start=_integer(request.query.get("startIndex"), "startIndex", 1, minimum=1),
        count=min(_integer(request.query.get("count"), "count", DEFAULT_COUNT, minimum=0), MAX_COUNT),
        filter=request.query.get("filter") or None,
        attributes=tuple(names(request.query.get("attributes"))),
        excluded=tuple(names(request.query.get("excludedAttributes"))),
    )


def _body_query(body: Any) -> Query:
    """A SearchRequest's query; its `attributes` and `excludedAttributes` are lists of names."""
    if not isinstance(body, dict) or SEARCH_SCHEMA not in (body.get("schemas") or []):
        raise ScimProblem(
            400, "invalidValue", f"a search is a SearchRequest: schemas must list {SEARCH_SCHEMA}"
        )

    def listed(key: str) -> tuple[str, ...]:
        value = body.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ScimProblem(400, "invalidValue", f"{key} must be a list of attribute names")
        return tuple(value)

    text = body.get("filter")
    if text is not None and not isinstance(text, str):
        raise ScimProblem(400, "invalidFilter", "filter must be a string")
    return Query(
        start=_integer(body.get("startIndex"), "startIndex", 1, minimum=1),
        count=min(_integer(body.get("count"), "count", DEFAULT_COUNT, minimum=0), MAX_COUNT),
        filter=text or None,
        attributes=listed("attributes"),
        excluded=listed("excludedAttributes"),
    )


def _listed(resources: list[dict[str, Any]], start: int, total: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
