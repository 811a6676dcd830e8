"""`BadgeConnector`: people in the badge system, one badge per employee number.

Every operation finds its badge first (by the id Roster linked, else by `employee_no`), so a redelivered
create updates the badge it made the first time, and a delete of a badge that is gone is done. An update
sends only the fields that differ, and enables the account again; a create or update that leaves it
disabled (`op.disabled`) writes `active: false` in that same request. 4xx answers are permanent errors
with the service's own message; 5xx, 429 and network trouble are transient, and Roster retries them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
from roster.connector import (
    Applied,
    AsyncContextConnector,
    ConnectorError,
    Operation,
    Outcome,
    PermanentError,
    TransientError,
)

from badge_connector.settings import BadgeSettings

FIELDS = ("employee_no", "display_name", "email", "active")
CONCURRENCY = 4


class BadgeConnector(AsyncContextConnector):
    def __init__(self, name: str, settings: BadgeSettings) -> None:
        self.name = name
        self.settings = settings
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.settings.token}"},
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        lanes = asyncio.Semaphore(CONCURRENCY)

        async def one(op: Operation) -> Outcome:
            async with lanes:
                try:
                    return await self._apply(op)
                except ConnectorError as error:
                    return error

        return list(await asyncio.gather(*(one(op) for op in ops)))

    async def _apply(self, op: Operation) -> Outcome:
        if op.object_type != "user":
            return PermanentError(f"the badge system holds people only, not {op.object_type}s")
        current = await self._find(op)
        if op.action == "delete":
            if current is not None:
                await self._call("DELETE", f"/badges/{current['id']}", ok=(204, 404))
            return Applied(current["id"] if current else op.target_id)
        if op.action == "disable":
            if current is None:
                return Applied(op.target_id)  # nothing left to disable
            return Applied(await self._patch(current, {"active": False}))
        wanted = {name: value for name, value in op.attributes.items() if name in FIELDS}
        unknown = sorted(set(op.attributes) - set(FIELDS))
        if unknown:
            fields = ", ".join(FIELDS)
            return PermanentError(f"the badge system has no field {', '.join(unknown)} (it has {fields})")
        if op.disabled:
            wanted["active"] = False  # to stay disabled (a prehire): created so, never enabled first
        else:
            wanted.setdefault("active", True)  # an update enables again
        if current is None:
            status, body = await self._call("POST", "/badges", json=wanted, ok=(201, 409))
            if status == 201:
                return Applied(body["id"])
            current = await self._find(op)  # made meanwhile by another writer: update it instead
            if current is None:
                raise PermanentError(f"badge system: {body.get('error')}", code="409")
        return Applied(await self._patch(current, wanted))

    async def _find(self, op: Operation) -> dict[str, Any] | None:
        if op.target_id:
            status, body = await self._call("GET", f"/badges/{op.target_id}", ok=(200, 404))
            if status == 200:
                return body
        number = op.attributes.get("employee_no") or dict(op.matching).get("employee_no")
        if not number:
            return None
        _, body = await self._call("GET", "/badges", params={"employee_no": str(number)})
        badges = body["badges"]
        if len(badges) > 1:
            raise PermanentError(f"badge system: {len(badges)} badges hold employee_no {number}")
        return badges[0] if badges else None

    async def _patch(self, current: dict[str, Any], wanted: dict[str, Any]) -> str:
        changes = {name: value for name, value in wanted.items() if current.get(name) != value}
        if changes:
            await self._call("PATCH", f"/badges/{current['id']}", json=changes)
        return str(current["id"])

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        assert self._http is not None, "the connector is not open"
        try:
            async with self._http.request(
                method, self.settings.url + path, json=json, params=params
            ) as answer:
                body = await answer.json(content_type=None) if answer.status != 204 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"badge system unreachable: {type(exc).__name__}: {exc}") from None
        if answer.status in ok:
            return answer.status, body
        message = body.get("error") if isinstance(body, dict) else None
        text = f"badge system answered {answer.status} to {method} {path}: {message or 'no message'}"
        if answer.status >= 500 or answer.status == 429:
            raise TransientError(text, code=str(answer.status))
        raise PermanentError(text, code=str(answer.status))
