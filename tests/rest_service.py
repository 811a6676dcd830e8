"""An in-house style REST service for the tests: an aiohttp app on 127.0.0.1, its state in memory.

It speaks no standard on purpose. Users (`u-00017`) and groups (`g-00003`) live under `/api/users` and
`/api/groups`; an object comes in an envelope `{"data": {...}}`, a search or a listing as `{"items":
[...], "next_cursor": ...}` (with a `Link: rel="next"` header too), an error as `{"error": {"message":
...}}`. A user's `login` is unique whatever its case (409), an `email` must hold an `@` (400); a
group's members are user ids, added with
PUT and removed with DELETE on `/api/groups/{id}/members/{user_id}`. Listings page by `cursor` and
`limit`, by `offset` and `limit`, or by `page` and `per_page`, whichever the query names.

`RestService.faults` stands in front of that state: the next requests answered 503 with `Retry-After`
or 429, each request stalled, a 500 on the Nth request from now, or a POST applied whose connection is
then dropped instead of answered. `requests` records what was asked, so a test can count calls, and
`after` plays another writer between two requests.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Any
KEY = "k-3a0c7e19d2f84b6a"  # the API key the service accepts in X-Api-Key


@dataclass(slots=True)
class Faults:
    """Switches, each spent as it fires."""

    status_503: int = 0  # the next so many requests get 503 with Retry-After
    retry_after: str = "1"
    status_429: int = 0
    stall_s: float = 0.0  # every request waits so long before it is served
    fail_nth: int = 0  # the Nth request from now gets a 500
    drop_after_post: int = 0  # the next so many POSTs are applied, then their connection dropped
    _count: int = 0


@dataclass(slots=True)
class RestService:
    """The service's state and switches; `url` once started (see `started`)."""

    key: str | None = KEY
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    requests: list[tuple[str, str]] = field(default_factory=list)
    after: Callable[[web.Request], None] | None = None  # runs after each request served: another writer
    url: str = ""
    _next: int = 1

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faulty])
        for kind in ("users", "groups"):
            app.router.add_get(f"/api/{kind}", self._search)
            app.router.add_post(f"/api/{kind}", self._create)
            app.router.add_get(f"/api/{kind}/{{id}}", self._read)
            app.router.add_patch(f"/api/{kind}/{{id}}", self._patch)
            app.router.add_put(f"/api/{kind}/{{id}}", self._put)
            app.router.add_delete(f"/api/{kind}/{{id}}", self._delete)
        app.router.add_post("/api/users/{id}/disable", self._disable)
        app.router.add_put("/api/groups/{id}/members/{member}", self._add_member)
        app.router.add_delete("/api/groups/{id}/members/{member}", self._remove_member)
        return app

    def by_login(self, login: str) -> list[dict[str, Any]]:
        return [u for u in self.users.values() if u["login"].casefold() == login.casefold()]

    # -- faults and auth, in front of the state ---------------------------------------------------------

    @web.middleware
    async def _faulty(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        faults = self.faults
        faults._count += 1
        if faults.stall_s:
            await asyncio.sleep(faults.stall_s)
        if faults.status_503:
            faults.status_503 -= 1
            return _error(503, "down for maintenance", headers={"Retry-After": faults.retry_after})
        if faults.status_429:
            faults.status_429 -= 1
            return _error(429, "slow down", headers={"Retry-After": faults.retry_after})
        if faults.fail_nth:
            faults.fail_nth -= 1
            if faults.fail_nth == 0:
                return _error(500, "internal error")
        given = request.headers.get("X-Api-Key")
        if self.key is not None and given != self.key:
            return _error(401, f"API key {given!r} is not valid")  # echoed, as careless services do
        response = await handler(request)
        if self.after is not None:
            self.after(request)
        if request.method == "POST" and faults.drop_after_post:
            faults.drop_after_post -= 1
            assert request.transport is not None
            request.transport.abort()  # applied, never answered
        return response

    # -- handlers ---------------------------------------------------------------------------------------

    def _store(self, request: web.Request) -> tuple[str, dict[str, dict[str, Any]]]:
        kind = request.path.split("/")[2]
        return kind, self.users if kind == "users" else self.groups

    async def _search(self, request: web.Request) -> web.Response:
        _, store = self._store(request)
        q = request.query
        found = sorted(store.values(), key=lambda o: o["id"])
        for name in ("login", "email", "name", "external_id"):
            if name in q:
                found = [o for o in found if str(o.get(name, "")).casefold() == q[name].casefold()]
        limit = int(q.get("limit") or q.get("per_page") or 1000)
        if "offset" in q:
            start = int(q["offset"])
        elif "page" in q:
            start = (int(q["page"]) - 1) * limit
        else:
            start = next((i for i, o in enumerate(found) if o["id"] > q.get("cursor", "")), len(found))
        page = found[start : start + limit]
        more = start + limit < len(found)
        cursor = page[-1]["id"] if more and page else None
        headers = {}
        if cursor:
            headers["Link"] = f'<{request.path}?cursor={cursor}&limit={limit}>; rel="next"'
        return web.json_response({"items": page, "next_cursor": cursor}, headers=headers)

    async def _read(self, request: web.Request) -> web.Response:
        _, store = self._store(request)
        found = store.get(request.match_info["id"])
        return _data(found) if found else _error(404, f"no object {request.match_info['id']}")

    async def _create(self, request: web.Request) -> web.Response:
        kind, store = self._store(request)
        body = await request.json()
        refused = self._refused(kind, body, None)
        if refused is not None:
            return refused
        new_id = f"{kind[0]}-{self._next:05d}"
        self._next += 1
        body = {**body, "id": new_id}
        body.setdefault("active", True) if kind == "users" else body.setdefault("members", [])
        store[new_id] = body
        return _data(body, status=201)

    async def _patch(self, request: web.Request) -> web.Response:
        return await self._write(request, merge=True)

    async def _put(self, request: web.Request) -> web.Response:
        return await self._write(request, merge=False)

    async def _write(self, request: web.Request, *, merge: bool) -> web.Response:
        kind, store = self._store(request)
        current = store.get(request.match_info["id"])
        if current is None:
            return _error(404, f"no object {request.match_info['id']}")
        body = await request.json()
        updated = _merged(current, body) if merge else {**body, "id": current["id"]}
        refused = self._refused(kind, updated, current["id"])
        if refused is not None:
            return refused
        store[current["id"]] = updated
        return _data(updated)

    async def _disable(self, request: web.Request) -> web.Response:
        user = self.users.get(request.match_info["id"])
        if user is None:
            return _error(404, "no such user")
        user["active"] = False
        return web.Response(status=204)

    async def _delete(self, request: web.Request) -> web.Response:
        _, store = self._store(request)
        if store.pop(request.match_info["id"], None) is None:
            return _error(404, "no such object")
        return web.Response(status=204)

    async def _add_member(self, request: web.Request) -> web.Response:
        group, member = self.groups.get(request.match_info["id"]), request.match_info["member"]
        if group is None or member not in self.users:
            return _error(404, "no such group or user")
        if member not in group["members"]:
            group["members"].append(member)
        return web.Response(status=204)

    async def _remove_member(self, request: web.Request) -> web.Response:
        group, member = self.groups.get(request.match_info["id"]), request.match_info["member"]
        if group is None or member not in group["members"]:
            return _error(404, "not a member")
        group["members"].remove(member)
        return web.Response(status=204)

    def _refused(self, kind: str, body: Any, own_id: str | None) -> web.Response | None:
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        if kind == "users":
            login = body.get("login")
            if not isinstance(login, str) or not login:
                return _error(400, "login is required")
            if any(u["id"] != own_id for u in self.by_login(login)):
                return _error(409, f"login {login!r} is taken")
            email = body.get("email")
            if email is not None and "@" not in str(email):
                return _error(400, f"email {email!r} is not an address")
        elif not body.get("name"):
            return _error(400, "name is required")
        return None


def _merged(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(current)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _data(obj: Any, *, status: int = 200) -> web.Response:
    return web.json_response({"data": obj}, status=status)


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status, headers=headers)


@asynccontextmanager
async def serving() -> AsyncIterator[RestService]:
    """A fresh service, served for the block and stopped after it."""
    service = RestService()
    runner = await started(service)
    try:
        yield service
    finally:
        await runner.cleanup()


async def started(service: RestService) -> web.AppRunner:
    """Serve `service` on a free port of 127.0.0.1 (its `url` set to the API's base); clean up the
    runner this returns."""
    runner = web.AppRunner(service.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[attr-defined]
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    service.url = f"http://127.0.0.1:{port}/api"
    return runner
