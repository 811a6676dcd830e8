"""A stand-in for the badge system's REST API, in memory, for tests: `python -m badge_connector.service`.

    POST   /badges                    {"employee_no", "display_name", "email", "active"} -> 201 the badge
    GET    /badges/{id}               -> 200 the badge, 404
    GET    /badges?employee_no=N      -> 200 {"badges": [...]}
    PATCH  /badges/{id}               {fields} -> 200 the badge
    DELETE /badges/{id}               -> 204, 404

Every request needs `Authorization: Bearer <token>`. An employee number holds one badge (409 on a second);
`display_name` is required and `email` must hold an `@` (400), as the real service checks. Errors are
`{"error": "..."}`.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from aiohttp import web

FIELDS = ("employee_no", "display_name", "email", "active")


class BadgeService:
    def __init__(self, token: str) -> None:
        self.token = token
        self.badges: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/badges", self._create)
        app.router.add_get("/badges", self._search)
        app.router.add_get("/badges/{id}", self._read)
        app.router.add_patch("/badges/{id}", self._update)
        app.router.add_delete("/badges/{id}", self._delete)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "a valid bearer token is required")
        return await handler(request)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        problem = _invalid(body, creating=True)
        if problem:
            return _error(400, problem)
        for badge in self.badges.values():
            if badge["employee_no"] == body["employee_no"]:
                return _error(409, f"employee_no {body['employee_no']} already has badge {badge['id']}")
        badge = {"id": f"badge-{next(self._ids):05d}", "active": True, **body}
        self.badges[badge["id"]] = badge
        return web.json_response(badge, status=201)

    async def _search(self, request: web.Request) -> web.Response:
        number = request.query.get("employee_no")
        found = [b for b in self.badges.values() if number is None or b["employee_no"] == number]
        return web.json_response({"badges": found})

    async def _read(self, request: web.Request) -> web.Response:
        badge = self.badges.get(request.match_info["id"])
        return web.json_response(badge) if badge else _error(404, "no such badge")

    async def _update(self, request: web.Request) -> web.Response:
        badge = self.badges.get(request.match_info["id"])
        if badge is None:
            return _error(404, "no such badge")
        body = await request.json()
        problem = _invalid(body, creating=False)
        if problem:
            return _error(400, problem)
        badge.update(body)
        return web.json_response(badge)

    async def _delete(self, request: web.Request) -> web.Response:
        if self.badges.pop(request.match_info["id"], None) is None:
            return _error(404, "no such badge")
        return web.Response(status=204)


def _invalid(body: Any, *, creating: bool) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        return f"unknown field {unknown[0]}"
    if creating and not body.get("employee_no"):
        return "employee_no: required"
    if (creating or "display_name" in body) and not body.get("display_name"):
        return "display_name: required"
    email = body.get("email")
    if email is not None and "@" not in str(email):
        return f"email: {email!r} is not an e-mail address"
    return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def main() -> None:
    parser = argparse.ArgumentParser(description="the badge system's REST API, in memory, for tests")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    web.run_app(BadgeService(args.token).app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
