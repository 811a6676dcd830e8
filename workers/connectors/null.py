"""A target that does nothing: every operation is applied at once. The benchmark's connector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from queues.contracts import Operation
from workers.connectors.base import Applied, AsyncContextConnector, Outcome


class NullConnector(AsyncContextConnector):
    """Applies nothing and reports every operation applied, with the match value as its target id."""

    def __init__(self, name: str = "null", settings: Mapping[str, Any] | None = None) -> None:
        self.name = name

    async def open(self) -> None:
        return None

    async def apply(self, ops: Sequence[Operation]) -> list[Outcome]:
        return [Applied(target_id=str(op.target_id or op.match_value or op.source_id)) for op in ops]

    async def aclose(self) -> None:
        return None
