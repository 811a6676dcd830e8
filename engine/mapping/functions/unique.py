"""SelectUniqueValue: the function and `UniqueCandidates`, the value it gives, which the worker resolves
against its target."""

from __future__ import annotations

from typing import Any

from common.unique import UNIQUE_KEY
from engine.mapping.functions.errors import MappingError
from engine.mapping.functions.values import text


class UniqueCandidates:
    """What SelectUniqueValue evaluates to: the candidate values, best first.

    Uniqueness can only be checked in the target, so the engine sends the candidates and the worker
    resolves them: it tries each in order (matching on the target attribute, as it matches objects)
    and writes the first one that no other object holds; when every one is taken the operation fails
    permanently ("all unique candidates taken"), as the product escrows the entry. `wire()` is the form
    meant for the operation's attributes.
    """

    # Not a dataclass: orjson encodes a dataclass by its fields ({"values": [...]}) without asking for
    # `wire()`, and the worker would receive the candidates as an unknown attribute value.
    __slots__ = ("values",)

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values

    def wire(self) -> dict[str, list[str]]:
        return {UNIQUE_KEY: list(self.values)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UniqueCandidates) and other.values == self.values

    def __hash__(self) -> int:
        return hash(self.values)

    def __repr__(self) -> str:
        return f"UniqueCandidates({self.values!r})"


def select_unique(*rules: Any) -> UniqueCandidates:
    values = tuple(dict.fromkeys(t for rule in rules if (t := text(rule))))
    if not values:
        raise MappingError("every rule gave an empty value")
    return UniqueCandidates(values)
