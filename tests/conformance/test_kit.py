"""The conformance kit can fail: a connector that breaks one rule of the contract is caught by the
check named for that rule, and a connector that keeps them all passes every check.

The connector here keeps its objects in memory (`STORES`), where the probe reads them; each flag in its
`broken:` setting breaks one rule, as connectors have been seen to.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from common.errors import ConnectorError, PermanentError, TransientError
from common.plugins import API_VERSION, Loaded, Origin
from queues.contracts import Operation
from roster.testing import Profile, Refusal, Sample, run_conformance
from workers.connectors.base import Applied, AsyncContextConnector, Outcome
from workers.connectors.plugin import ConnectorPlugin, connector_types

STORES: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
REFUSED = "refuse-me"
_ids = itertools.count(1)


class MemoryConnector(AsyncContextConnector):
    """A target in a dict. `url: memory://STORE` names the store; a URL with a port is a server to dial
    (the kit points it at dead ones). `broken` lists the rules it breaks."""

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.url = urlsplit(settings["url"])
        self.broken = set(settings.get("broken", ()))

    async def open(self) -> None:
        if self.url.port is None:
            return
        try:
            reader, writer = await asyncio.open_connection(self.url.hostname, self.url.port)
        except OSError as exc:
            kind = PermanentError if "permanent-for-unreachable" in self.broken else TransientError
            raise kind(f"cannot reach {self.url.netloc}: {exc}") from None
        try:
            if "no-timeout" in self.broken:
                await reader.read(1)
            else:
                await asyncio.wait_for(reader.read(1), 0.5)
        except TimeoutError:
            raise TransientError(f"{self.url.netloc} did not answer within 0.5 s") from None
        finally:
            writer.close()

    async def aclose(self) -> None:
        return None

    async def apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        if self.url.port is not None:
            raise TransientError("no server")
        store = STORES[self.url.netloc]
        outcomes: list[Outcome] = []
        for op in ops:
            try:
                outcomes.append(self._apply_one(store.setdefault(op.object_type, {}), op))
            except ConnectorError as error:
                if "batch-fails-whole" in self.broken:
                    return [error] * len(ops)
                outcomes.append(error)
        return outcomes

    def _apply_one(self, objects: dict[str, dict[str, Any]], op: Operation) -> Outcome:
        if REFUSED in str(op.attributes.values()):
            kind = TransientError if "refused-as-transient" in self.broken else PermanentError
            raise kind(f"the memory target refuses {REFUSED!r}")
        target_id = op.target_id if op.target_id in objects else self._match(objects, op)
        if op.action == "delete":
            if target_id is None:
                if "delete-missing-error" in self.broken:
                    raise PermanentError("no such object")
                return Applied(op.target_id)
            del objects[target_id]
            return Applied(target_id)
        if op.action == "disable":
            if target_id is not None:
                objects[target_id]["active"] = False
            return Applied(target_id or op.target_id)
        attributes = dict(op.attributes)
        if "trims" in self.broken:
            attributes = {k: v.strip() if isinstance(v, str) else v for k, v in attributes.items()}
        if target_id is None or (op.action == "create" and "no-matching" in self.broken):
            target_id = f"m{next(_ids)}"
            objects[target_id] = {"members": []} if op.object_type == "group" else {}
        current = objects[target_id]
        if "replaces-whole" in self.broken:
            current.clear()
        current.update(attributes, active="ignores-disabled" in self.broken or not op.disabled)
        members = current.setdefault("members", []) if op.object_type == "group" else []
        members[:] = [m for m in members if m not in op.members_remove]
        members += [m for m in op.members_add if m not in members]
        return Applied(target_id)

    def _match(self, objects: dict[str, dict[str, Any]], op: Operation) -> str | None:
        for name, value in op.matching:
            for target_id, attributes in objects.items():
                if attributes.get(name) == value:
                    return target_id
        return None


class MemoryProbe:
    def __init__(self, store: str) -> None:
        self.store = STORES[store]

    async def read(self, object_type: str, target_id: str) -> Mapping[str, Any] | None:
        return self.store.get(object_type, {}).get(target_id)

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        objects = self.store.get(object_type, {})
        return [target_id for target_id, attributes in objects.items() if attributes.get(attribute) == value]

    async def plant(self, object_type: str, attributes: Mapping[str, Any]) -> str:
        target_id = f"planted{next(_ids)}"
        self.store.setdefault(object_type, {})[target_id] = {"members": [], **attributes}
        return target_id

    async def set(self, object_type: str, target_id: str, attributes: Mapping[str, Any]) -> None:
        self.store[object_type][target_id].update(attributes)


PROFILE = Profile(
    samples={
        "user": Sample(
            match="userName",
            attributes={"userName": "{key}", "displayName": "Ada {key}"},
            changes={"displayName": "Ada Renamed {key}"},
            disabled={"active": False},
            unmapped={"note": "set outside"},
        ),
        "group": Sample(match="displayName", attributes={"displayName": "{key}"}),
    },
    refusal=Refusal(attributes={"displayName": REFUSED}, message="refuses"),
    members=True,
    patience_s=2.0,
)


@pytest.fixture
def memory_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The memory connector, registered as the `memory` type for the length of a test."""
    plugin = ConnectorPlugin(
        api_version=API_VERSION, parse=lambda path, raw, base_dir: dict(raw), build=MemoryConnector
    )
    origin = Origin("memory", f"{__name__}:MemoryConnector", "tests", "0")
    monkeypatch.setitem(connector_types().loaded, "memory", Loaded(origin, plugin))
    yield
    STORES.clear()


async def run(broken: Sequence[str] = ()) -> dict[str, str]:
    store = f"store{next(_ids)}"
    STORES[store] = {}
    target = {"name": "memory", "type": "memory", "url": f"memory://{store}", "broken": list(broken)}
    report = await run_conformance(target, MemoryProbe(store), PROFILE, base_dir=Path.cwd())
    assert report.prefix.startswith("roster-ck-")
    assert not report.leftovers
    assert not [o for kinds in STORES[store].values() for o in kinds], "the kit left objects behind"
    return {result.name: result.status for result in report.results}


async def test_a_connector_that_keeps_the_contract_passes_every_check(memory_kind: None) -> None:
    statuses = await run()
    assert "failed" not in statuses.values()
    # The group sample has no `disabled`, `changes` nor `unmapped`, and the refusal is a user's.
    assert {name for name, status in statuses.items() if status == "not run"} == {
        "group/crud:disable",
        "group/crud:create-disabled",
        "group/crud:update-disabled",
        "group/crud:update",
        "group/crud:update-unmapped",
        "group/batch:isolation",
    }


@pytest.mark.parametrize(
    ("broken", "caught_by"),
    [
        (
            "no-matching",
            {
                "user/crud:create-again",
                "user/match:planted",
                "user/batch:redelivery",
                "user/values:hostile",
                "user/crud:create-disabled",
            },
        ),
        ("permanent-for-unreachable", {"error:transient-refused"}),
        ("no-timeout", {"error:transient-stalled"}),
        ("replaces-whole", {"user/crud:update-unmapped", "groups:members"}),
        ("batch-fails-whole", {"user/batch:isolation"}),
        ("delete-missing-error", {"user/crud:delete-gone", "group/crud:delete-gone"}),
        ("trims", {"user/values:hostile", "group/values:hostile"}),
        ("refused-as-transient", {"error:permanent", "user/batch:isolation"}),
        ("ignores-disabled", {"user/crud:create-disabled", "user/crud:update-disabled"}),
    ],
)
async def test_a_connector_that_breaks_a_rule_is_caught_by_its_check(
    memory_kind: None, broken: str, caught_by: set[str]
) -> None:
    statuses = await run([broken])
    failed = {name for name, status in statuses.items() if status == "failed"}
    assert caught_by <= failed
    assert failed <= caught_by | {f"group/{name.partition('/')[2]}" for name in caught_by}
