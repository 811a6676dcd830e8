"""The expression mapping: a target attribute computed by an expression, and how a job file declares one.

It plugs into `Mapper` through the `Mapping` protocol like the direct and constant mappings. Its value
may be `OMIT` (IgnoreFlowIfNullOrEmpty: leave the attribute out) or `UniqueCandidates`
(SelectUniqueValue: the worker picks the first value free in the target).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any

from common.config.validation import join, string
from common.errors import ConfigError
from engine.mapping.base import ApplyOn
from engine.mapping.compiler import finish
from engine.mapping.expression import Expression, parse_expression
from engine.mapping.functions.registry import FUNCTIONS
from engine.mapping.syntax import Call, Compare, ExpressionSyntaxError, Logical, Node


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpressionMapping:
    """Evaluates `expression` against the source object; `default` stands in for a null result.

    `evaluate(source)` is one compiled closure (no method call in between, as it runs per object per
    mapping); a `MappingError` it raises names `target`.
    """

    target: str
    expression: Expression
    apply_on: ApplyOn = "always"
    default: Any = None
    evaluate: Callable[[MappingABC[str, Any]], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        run = finish(self.expression.root, default=self.default, target=self.target)
        object.__setattr__(self, "evaluate", run)


def parse_expression_mapping(
    path: str, *, target: str, expression: Any, apply_on: ApplyOn = "always", default: Any = None
) -> ExpressionMapping:
    """Build the mapping at `path` of a job file, with errors that name the path.

    A syntax error reads `jobs[0].mappings[3].expression: unknown function 'Jion' at column 1 (did you
    mean 'Join'?)`. An expression whose value changes at every evaluation (Guid, Now, RandomString), or
    a SelectUniqueValue, is refused on a mapping applied always: every cycle would see a change (or a new
    uniqueness check), so it must apply on create only.
    """
    where = join(path, "expression")
    try:
        parsed = parse_expression(string(where, expression))
    except ExpressionSyntaxError as exc:
        raise ConfigError(where, str(exc)) from None
    if apply_on == "always" and (parsed.volatile or parsed.unique):
        if parsed.unique:
            why = "SelectUniqueValue checks the target for a free value, which only makes sense on create"
        else:
            names = ", ".join(f"{n}()" for n in sorted(_volatile_calls(parsed.tree)))
            why = f"{names} gives a new value at every evaluation, so every cycle would see a change"
        raise ConfigError(join(path, "apply"), why, "set `apply: on_create`")
    return ExpressionMapping(target=target, expression=parsed, apply_on=apply_on, default=default)


def _volatile_calls(node: Node) -> set[str]:
    """The names of the volatile functions in the tree, for the error message."""
    if isinstance(node, Compare):
        return _volatile_calls(node.left) | _volatile_calls(node.right)
    if isinstance(node, Logical):
        return set().union(*(_volatile_calls(p) for p in node.parts))
    if not isinstance(node, Call):
        return set()
    own = {node.name} if FUNCTIONS[node.name].volatile else set()
    return own.union(*(_volatile_calls(a) for a in node.args))
