"""Queue names, shared by every broker so that the engine and the workers agree on them."""

from __future__ import annotations

from typing import Final

RESULTS_QUEUE: Final = "roster.results"
AGENTS_EXCHANGE: Final = "roster.agents"
"""Where engines and workers announce themselves (a fanout: every subscriber gets every message)."""
_OPS_PREFIX: Final = "roster.ops."
_DEAD_PREFIX: Final = "roster.dead."


def ops_queue(target: str) -> str:
    """The queue of operations for one target."""
    return _OPS_PREFIX + target


def dead_letter_queue(queue: str) -> str:
    """Where a queue's dead letters go: `roster.ops.T` -> `roster.dead.T`, `roster.results` ->
    `roster.dead.results`."""
    if queue.startswith(_OPS_PREFIX):
        return _DEAD_PREFIX + queue[len(_OPS_PREFIX) :]
    return _DEAD_PREFIX + queue.removeprefix("roster.")
