"""Compiles the expression tree into nested closures, folding calls whose arguments are all known at
parse time, and guards each call so that a failure names its function and column."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from operator import methodcaller
from typing import Any, Final, NoReturn

from engine.mapping.dotnet import format_utc
from engine.mapping.functions.errors import ArgumentError, LimitExceeded, MappingError, OmitFlow
from engine.mapping.functions.registry import FUNCTIONS
from engine.mapping.functions.values import DYNAMIC, OMIT, Evaluator, compare, truth
from engine.mapping.limits import MAX_CHARS, LimitError, check_size, shorten
from engine.mapping.syntax import (
    Attribute,
    Call,
    Compare,
    ExpressionLimitError,
    ExpressionSyntaxError,
    Literal,
    Logical,
    Node,
)

_NO_KINDS: Final[frozenset[str]] = frozenset()


class Compiler:
    """Turns the tree into closures, folding calls whose arguments are all known at parse time."""

    def __init__(self) -> None:
        self.references: set[str] = set()
        self.redacted = False

    def compile(self, node: Node, top: bool = False) -> tuple[Evaluator, Any, frozenset[str]]:
        """The node's evaluator, its value if known at parse time (else DYNAMIC), and its volatility."""
        if isinstance(node, Literal):
            value = node.value
            return (lambda source: value), value, _NO_KINDS
        if isinstance(node, Attribute):
            self.references.add(node.name)
            return methodcaller("get", node.name), DYNAMIC, _NO_KINDS
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, Logical):
            return self._logical(node)
        return self._call(node, top)

    def _logical(self, node: Logical) -> tuple[Evaluator, Any, frozenset[str]]:
        parts = [self.compile(part) for part in node.parts]
        runs = tuple(p[0] for p in parts)
        kinds = frozenset().union(*(p[2] for p in parts))
        if node.op == "and":

            def run(source: Mapping[str, Any]) -> Any:
                return all(truth(part(source)) for part in runs)

        else:

            def run(source: Mapping[str, Any]) -> Any:
                return any(truth(part(source)) for part in runs)

        return self._fold(run, tuple(p[1] for p in parts), kinds)

    def _compare(self, node: Compare) -> tuple[Evaluator, Any, frozenset[str]]:
        left, left_const, left_kinds = self.compile(node.left)
        right, right_const, right_kinds = self.compile(node.right)
        op, column, where = node.op, node.column, f"{node.op!r}"

        def run(source: Mapping[str, Any]) -> Any:
            try:
                return compare(op, left(source), right(source))
            except Exception as exc:
                _fail(exc, where, column)

        return self._fold(run, (left_const, right_const), left_kinds | right_kinds)

    def _call(self, node: Call, top: bool) -> tuple[Evaluator, Any, frozenset[str]]:
        spec = FUNCTIONS[node.name]
        if node.name == "SelectUniqueValue" and not top:
            raise ExpressionSyntaxError(
                "SelectUniqueValue must be the whole expression", node.column, "it cannot be an argument"
            )
        self.redacted |= node.name == "Redact"
        parts = [self.compile(arg) for arg in node.args]
        args = tuple(p[0] for p in parts)
        consts = tuple(p[1] for p in parts)
        kinds = frozenset().union(*(p[2] for p in parts))
        if spec.absorbs_clock is not None and spec.absorbs_clock(consts):
            kinds -= {"clock"}
        if spec.volatile:
            kinds |= {spec.volatile}
        try:
            if spec.check is not None:
                spec.check(consts)
            if spec.build is not None:
                run = _guard(spec.build(args, consts), node.name, node.column, spec.grows)
            else:
                assert spec.impl is not None
                run = _eager(spec.impl, args, consts, node.name, node.column, spec.grows)
        except ArgumentError as exc:
            column = node.column if exc.index is None else node.args[exc.index].column
            separator = " " if exc.index is None else ": "
            raise ExpressionSyntaxError(f"{node.name}{separator}{exc.problem}", column) from None
        if node.name == "SelectUniqueValue":
            return run, DYNAMIC, kinds
        return self._fold(run, consts, kinds)

    @staticmethod
    def _fold(
        run: Evaluator, consts: tuple[Any, ...], kinds: frozenset[str]
    ) -> tuple[Evaluator, Any, frozenset[str]]:
        if kinds or any(c is DYNAMIC for c in consts):
            return run, DYNAMIC, kinds
        try:
            value = run({})
        except LimitExceeded as exc:  # it would cross a bound on every object: refuse the expression
            where = f"{exc.function}: " if exc.function else ""
            raise ExpressionLimitError(f"{where}{exc.problem}", exc.column or 1) from None
        except (MappingError, OmitFlow):
            return run, DYNAMIC, kinds  # it fails (or omits) per object, where it can be reported
        if isinstance(value, list):
            return run, DYNAMIC, kinds  # a shared list could be changed by whoever receives it
        return (lambda source: value), value, kinds


def _fail(exc: Exception, function: str, column: int) -> NoReturn:
    """Re-raise as a `MappingError` located at the innermost call that failed."""
    if isinstance(exc, OmitFlow):
        raise exc
    if isinstance(exc, MappingError):
        if exc.function is None:
            exc.function, exc.column = function, column
        raise exc
    if isinstance(exc, LimitError):
        raise LimitExceeded(str(exc), function=function, column=column) from None
    if isinstance(exc, OverflowError | MemoryError | RecursionError):
        problem = f"the value is too large to compute ({type(exc).__name__}: {shorten(str(exc))})"
        raise LimitExceeded(problem, function=function, column=column) from None
    problem = shorten(str(exc)) or type(exc).__name__
    raise MappingError(problem, function=function, column=column) from exc


def _oversize(value: Any, name: str, column: int) -> bool:
    """Raise `LimitExceeded` when a list crosses the bounds (a text is measured inline by the caller)."""
    try:
        check_size(value)
    except LimitError as exc:
        raise LimitExceeded(str(exc), function=name, column=column) from None
    return False


def _guard(run: Evaluator, name: str, column: int, grows: bool) -> Evaluator:
    limit = MAX_CHARS  # a closure variable: faster than the module's name, per call

    def guarded(source: Mapping[str, Any]) -> Any:
        try:
            v = run(source)
        except Exception as exc:
            _fail(exc, name, column)
        if grows and (v.__class__ is list or (v.__class__ is str and len(v) > limit)):
            _oversize(v, name, column)
        return v

    return guarded


def _eager(
    impl: Callable[..., Any],
    args: tuple[Evaluator, ...],
    consts: tuple[Any, ...],
    name: str,
    column: int,
    grows: bool,
) -> Evaluator:
    """A closure per arity, so the common calls build no argument tuple; known arguments are bound.

    A function that `grows` has its result measured inline (no extra call): a text longer than
    `MAX_CHARS`, or a list beyond the bounds, raises `LimitExceeded`.
    """
    limit = MAX_CHARS  # a closure variable: faster than the module's name, per call
    if len(args) > 1 and all(c is not DYNAMIC for c in consts[1:]):
        first, rest = args[0], consts[1:]  # Left([name], 1), Word([city], 1, ","): one value per object
        if len(rest) == 1:
            (second,) = rest

            def run_first_of_two(source: Mapping[str, Any]) -> Any:
                try:
                    v = impl(first(source), second)
                except Exception as exc:
                    _fail(exc, name, column)
                if grows and (v.__class__ is list or (v.__class__ is str and len(v) > limit)):
                    _oversize(v, name, column)
                return v

            return run_first_of_two

        def run_first(source: Mapping[str, Any]) -> Any:
            try:
                v = impl(first(source), *rest)
            except Exception as exc:
                _fail(exc, name, column)
            if grows and (v.__class__ is list or (v.__class__ is str and len(v) > limit)):
                _oversize(v, name, column)
            return v

        return run_first
    if len(args) == 1:
        (a,) = args

        def run1(source: Mapping[str, Any]) -> Any:
            try:
                v = impl(a(source))
            except Exception as exc:
                _fail(exc, name, column)
            if grows and (v.__class__ is list or (v.__class__ is str and len(v) > limit)):
                _oversize(v, name, column)
            return v

        return run1
    if len(args) == 2:
        a, b = args

        def run2(source: Mapping[str, Any]) -> Any:
            try:
                v = impl(a(source), b(source))
            except Exception as exc:
                _fail(exc, name, column)
            if grows and (v.__class__ is list or (v.__class__ is str and len(v) > limit)):
                _oversize(v, name, column)
            return v

        return run2
    if len(args) == 3:
        a, b, c = args

        def run3(source: Mapping[str, Any]) -> Any:
            try:
                v = impl(a(source), b(source), c(source))
            except Exception as exc:
                _fail(exc, name, column)
            if grows and (v.__class__ is list or (v.__class__ is str and len(v) > limit)):
                _oversize(v, name, column)
            return v

        return run3

    def run(source: Mapping[str, Any]) -> Any:
        try:
            v = impl(*[arg(source) for arg in args])
        except Exception as exc:
            _fail(exc, name, column)
        if grows and (v.__class__ is list or (v.__class__ is str and len(v) > limit)):
            _oversize(v, name, column)
        return v

    return run


def finish(run: Evaluator, *, default: Any = None, target: str | None = None) -> Evaluator:
    """The top of an expression: IgnoreFlowIfNullOrEmpty becomes OMIT, a date its text, null `default`;
    a `MappingError` names `target`, the mapping that failed."""

    def evaluate(source: Mapping[str, Any]) -> Any:
        try:
            value = run(source)
        except OmitFlow:
            return OMIT
        except MappingError as exc:
            exc.target = target
            raise
        if value is None:
            return default
        return format_utc(value) if value.__class__ is datetime else value

    return evaluate
