"""`on_collision`: what a mapping's value becomes when another object of the target holds it already.

`fail` (the default) sends the value as it is: an object whose matching value another object of the job
holds is not sent (`engine.core.collisions`), and the target refuses a value another entry holds.
`{next: [expressions]}` sends the value and the further candidates as SelectUniqueValue's
(`{"$unique": [value, next...]}`): the worker writes the first one that no other entry holds, and an
entry that holds one of them already keeps it, so a later cycle never renames it, and the object with
the value keeps it when the other one is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any

from common.config.validation import as_list, as_mapping, check_keys, join, string
from common.errors import ConfigError
from common.unique import UNIQUE_KEY
from engine.mapping.base import ApplyOn, Mapping
from engine.mapping.expression_mapping import ExpressionMapping, parse_expression_mapping
from engine.mapping.functions.values import OMIT, text


@dataclass(frozen=True, slots=True, kw_only=True)
class NextOnCollision:
    """`mapping`'s value, then the values of `next`, as SelectUniqueValue's candidates (the empty and
    repeated ones left out); no value when `mapping` gives none."""

    mapping: Mapping
    next: tuple[ExpressionMapping, ...]
    target: str = field(init=False)
    apply_on: ApplyOn = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", self.mapping.target)
        object.__setattr__(self, "apply_on", self.mapping.apply_on)

    def evaluate(self, source: MappingABC[str, Any]) -> Any:
        first = self.mapping.evaluate(source)
        if first is None or first is OMIT or isinstance(first, list | dict):
            return first  # no name to try others for (a list is refused by the target as it is)
        values = [first, *(m.evaluate(source) for m in self.next)]
        candidates = [t for v in values if v is not OMIT and (t := text(v))]
        return {UNIQUE_KEY: list(dict.fromkeys(candidates))} if candidates else None


def parse_on_collision(path: str, raw: Any, mapping: Mapping) -> Mapping:
    """`mapping` as `on_collision` at `path` says: itself for `fail`, else a `NextOnCollision`."""
    if raw == "fail":
        return mapping
    if not isinstance(raw, MappingABC):
        raise ConfigError(
            path,
            f"{raw!r} is neither `fail` nor `{{next: [...]}}`",
            'say `fail`, or give further candidates: `{next: [\'Join("", [name], " (", [id], ")")\']}`',
        )
    raw = as_mapping(path, raw)
    check_keys(path, raw, ("next",), required=("next",))
    where = join(path, "next")
    items = as_list(where, raw["next"])
    if not items:
        raise ConfigError(where, "is empty", "give at least one expression for the next candidate")
    if isinstance(mapping, ExpressionMapping) and mapping.expression.unique:
        raise ConfigError(
            path,
            "the mapping is a SelectUniqueValue already",
            "add the further candidates to its SelectUniqueValue, or map the value alone",
        )
    candidates = tuple(_candidate(join(where, i), item, mapping) for i, item in enumerate(items))
    return NextOnCollision(mapping=mapping, next=candidates)


def _candidate(path: str, raw: Any, mapping: Mapping) -> ExpressionMapping:
    """One further candidate: an expression of the source object, evaluated as the mapping's value is."""
    expression = string(path, raw)
    try:
        # Refuses Guid(), Now() and SelectUniqueValue on a mapping applied always (a name that changes
        # at every cycle), as the mapping itself would.
        return parse_expression_mapping(
            path, target=mapping.target, expression=expression, apply_on=mapping.apply_on
        )
    except ConfigError as exc:
        raise ConfigError(path, exc.problem, exc.fix) from None
