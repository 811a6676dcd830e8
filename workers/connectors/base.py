"""The `Connector` protocol: how a worker applies a batch of operations to one target.

A connector must be idempotent: it matches each object in the target before it writes, so a
redelivered create becomes an update, a delete of a missing object succeeds, and a retry never makes a
duplicate. It reports each operation separately, so that one bad object leaves its batch alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from common.errors import ConnectorError
from queues.contracts import Operation
from workers.limits import Gate


@dataclass(frozen=True, slots=True)
class Applied:
    """An operation that the target now reflects; `target_id` is the object's id in the target."""

    target_id: str | None


_C = TypeVar("_C", bound="AsyncContextConnector")

Outcome = Applied | ConnectorError
"""Per operation: applied, or the error that decides its fate (transient or permanent)."""


class Connector(Protocol):
    """Applies operations to one target. Opened once per worker, used concurrently, closed once."""

    @property
    def gate(self) -> Gate | None:
        """The target's limits (concurrency, rate, a pause after Retry-After) when the connector keeps them
        itself; the worker shows its pause in the metrics."""
        ...

    async def open(self) -> None: ...

    async def apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        """Apply `ops` and return one outcome per operation, in the same order.

        Raise a `ConnectorError` (or anything else) only when the whole batch failed the same way,
        for instance when the target cannot be reached at all.
        """
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Lister(Protocol):
    """A connector that can list the target's objects of a kind (a capability: not every target can).

    The engine links a first cycle's creates by one listing rather than one search each (see
    `engine.pipeline.listing`), so a listing must be complete or fail: an object left out would look
    absent, and its create would skip the search that finds it.
    """

    def listing_fields(self, object_type: str, attributes: Sequence[str]) -> list[str]:
        """The attributes each listed object carries: `attributes` (the job's matching ones) in their
        order, then any other that this connector matches on; a `ConnectorError` if one cannot be listed."""
        ...

    def list_objects(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[list[Any]]]:
        """Pages of rows `[target id, *values of fields]` (None where an object has no value, a list
        where it has several), every object once; raise a `ConnectorError` if the listing cannot be
        completed."""
        ...


class AsyncContextConnector:
    """Gives a connector `async with`: opened on enter, closed on exit, whatever the connector."""

    gate: Gate | None = None

    async def open(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: _C) -> _C:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class ConnectorFactory(Protocol):
    """Builds a connector from a target's settings (already validated by `workers/config.py`)."""

    def __call__(self, name: str, settings: Mapping[str, Any]) -> Connector: ...
