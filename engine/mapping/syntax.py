"""The expression language's syntax: the tokenizer, the recursive-descent parser and the node tree.

`parse_tree(text)` turns the text into the tree, or raises `ExpressionSyntaxError` with the column and
what was expected there; `compiler.py` turns the tree into closures.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from common.errors import RosterError
from engine.mapping.functions.registry import FUNCTIONS, Function
from engine.mapping.limits import quote

MAX_DEPTH: Final = 50
"""Calls nest at most this deep, so no text can exhaust the parser's (or the evaluator's) stack."""

_CONSTANTS: Final[dict[str, bool | int]] = {
    "true": True,
    "false": False,
    "vbbinarycompare": 0,
    "vbtextcompare": 1,
}
_EXPECTED_VALUE: Final = 'expected a function call, an [attribute], a "string", a number, True or False'


class ExpressionSyntaxError(RosterError):
    """An expression that cannot be parsed; `column` is 1-based, counted in characters of the text."""

    def __init__(self, problem: str, column: int, hint: str | None = None) -> None:
        self.problem = problem
        self.column = column
        self.hint = hint
        super().__init__(f"{problem} at column {column}" + (f" ({hint})" if hint else ""))


class ExpressionLimitError(ExpressionSyntaxError):
    """An expression whose constant part crosses a bound of evaluation (`engine.mapping.limits`) at
    parse time: it would on every object, so the expression is refused as a syntax error is."""


# --- the tree ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attribute:
    """`[name]`: the source object's attribute, None when it is missing."""

    name: str
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"[{self.name}]"


@dataclass(frozen=True, slots=True, eq=False)
class Literal:
    """A string, number or boolean; None is an omitted argument (`Switch([a], , "k", "v")`)."""

    value: str | int | float | bool | None
    column: int = field(default=0, repr=False)

    def __eq__(self, other: object) -> bool:  # 1 and True, 1 and 1.0 print differently: keep them apart
        return (
            isinstance(other, Literal) and type(other.value) is type(self.value) and other.value == self.value
        )

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))

    def __str__(self) -> str:
        v = self.value
        if v is None:
            return ""
        if isinstance(v, bool):
            return "True" if v else "False"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)


@dataclass(frozen=True, slots=True)
class Call:
    """`Name(arg, ...)`: a function of the table in `functions/registry.py`."""

    name: str
    args: tuple[Node, ...]
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.name}({', '.join(str(a) for a in self.args)})"


@dataclass(frozen=True, slots=True)
class Compare:
    """`left op right`, as in `IIF([country] = "USA", ...)`."""

    op: str
    left: Node
    right: Node
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{_grouped(self.left)} {self.op} {_grouped(self.right)}"


def _grouped(node: Node) -> str:
    """A comparison's operand as text, in parentheses where it is itself a comparison or a logical."""
    return f"({node})" if isinstance(node, Compare | Logical) else str(node)


@dataclass(frozen=True, slots=True)
class Logical:
    """`a and b and ...` or `a or b or ...`, as in a group rule `[department] = "Sales" and [country] =
    "DE"`: each part taken as CBool takes it, evaluated left to right and no further than needed."""

    op: str  # "and" or "or"
    parts: tuple[Node, ...]
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f" {self.op} ".join(f"({p})" if isinstance(p, Logical) else str(p) for p in self.parts)


Node = Attribute | Literal | Call | Compare | Logical

KEYWORDS: Final = ("and", "or")
"""The infix words, matched without regard to case; `and` binds closer than `or`."""


# --- tokens -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, attr, string, number, "(", ")", ",", op, end
    value: Any
    column: int

    def show(self) -> str:
        if self.kind == "end":
            return "the end of the expression"
        if self.kind == "string":
            return "a string"
        return quote(self.value) if self.kind in ("name", "op") else quote(str(self.value))


_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"&[Hh]([0-9A-Fa-f]+)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("<=", ">=", "<>", "=", "<", ">")
_NAME_STOP = re.compile(r'[\]\["(),\x00-\x1f\x7f]')
"""What ends an attribute name: its `]`, or a character no name holds (a `]` forgotten before it)."""
_NAME_RULE = 'an attribute name cannot hold [ ] ( ) , " or a line break'
_MAX_NUMBER_CHARS = 40


def _tokens(text: str) -> Iterator[_Token]:
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c.isspace():
            i += 1
        elif c == "[":
            stop = _NAME_STOP.search(text, i + 1)
            end = stop.start() if stop else n
            if end == n or text[end] != "]":
                hint = f"to close the attribute at column {col}"
                if end < n:
                    hint += f"; got {text[end]!r}: {_NAME_RULE}"
                raise ExpressionSyntaxError("expected ']'", end + 1, hint)
            if end == i + 1:
                raise ExpressionSyntaxError("empty attribute name", col, "write [attributeName]")
            yield _Token("attr", text[i + 1 : end], col)
            i = end + 1
        elif c == '"':
            i, value = _string(text, i)
            yield _Token("string", value, col)
        elif c == "]":
            raise ExpressionSyntaxError("unexpected ']'", col, "no attribute is open: remove it, or add '['")
        elif c in "(),":
            yield _Token(c, c, col)
            i += 1
        elif c in "<>=":
            op = next(op for op in _OPS if text.startswith(op, i))
            yield _Token("op", op, col)
            i += len(op)
        elif m := (_NUMBER.match(text, i) or _HEX.match(text, i)):
            yield _Token("number", _number(m, col), col)
            i = m.end()
        elif m := _NAME.match(text, i):
            yield _Token("name", m[0], col)
            i = m.end()
        else:
            raise ExpressionSyntaxError(f"unexpected character {c!r}", col, _EXPECTED_VALUE)
    yield _Token("end", None, n + 1)


def _string(text: str, start: int) -> tuple[int, str]:
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return i + 1, "".join(out)
        if c == "\\" and i + 1 < n and text[i + 1] in '\\"':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    raise ExpressionSyntaxError(
        "unterminated string", start + 1, "expected a closing '\"'; write \\\" for a quote inside it"
    )


def _number(m: re.Match[str], column: int) -> int | float:
    if len(m[0]) > _MAX_NUMBER_CHARS:
        raise ExpressionSyntaxError("number too long", column, f"at most {_MAX_NUMBER_CHARS} characters")
    if m[0].startswith("&"):
        return int(m[1], 16)
    if any(c in m[0] for c in ".eE"):
        value = float(m[0])
        if value in (float("inf"), float("-inf")):
            raise ExpressionSyntaxError("number too large", column)
        return value
    return int(m[0])


# --- parser -----------------------------------------------------------------------------------------


def _suggest(name: str, known: list[str]) -> str | None:
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


class _Parser:
    """expression := disjunction END;  disjunction := conjunction {"or" conjunction};
    conjunction := comparison {"and" comparison};  comparison := operand [op operand];
    operand := "(" disjunction ")" | call | [attribute] | string | number | constant;
    call := Name "(" [arg {"," arg}] ")" where an arg may be empty (an omitted argument)."""

    def __init__(self, text: str) -> None:
        self.tokens = list(_tokens(text))
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ExpressionSyntaxError("expected an expression", 1, _EXPECTED_VALUE)
        node = self.disjunction(0)
        token = self.peek()
        if token.kind != "end":
            raise ExpressionSyntaxError(
                "expected the end of the expression", token.column, f"got {token.show()}"
            )
        return node

    def disjunction(self, depth: int) -> Node:
        return self._logical("or", self.conjunction, depth)

    def conjunction(self, depth: int) -> Node:
        return self._logical("and", self.comparison, depth)

    def _logical(self, word: str, part: Callable[[int], Node], depth: int) -> Node:
        first = part(depth)
        parts = [first]
        while self.peek().kind == "name" and self.peek().value.lower() == word:
            token = self.take()
            if self.peek().kind in (",", ")", "end"):
                raise ExpressionSyntaxError(
                    f"expected a value after {word!r}", self.peek().column, f"got {self.peek().show()}"
                )
            parts.append(part(depth))
        if len(parts) == 1:
            return first
        return Logical(word, tuple(parts), getattr(first, "column", 0) or token.column)

    def comparison(self, depth: int) -> Node:
        left = self.operand(depth)
        if self.peek().kind != "op":
            return left
        op = self.take()
        if self.peek().kind in (",", ")", "end"):
            raise ExpressionSyntaxError(
                f"expected a value after {op.value!r}", self.peek().column, f"got {self.peek().show()}"
            )
        return Compare(op.value, left, self.operand(depth), op.column)

    def operand(self, depth: int) -> Node:
        token = self.take()
        if token.kind == "(":  # a group, as in `[a] = "x" and ([b] = "y" or [b] = "z")`
            if depth >= MAX_DEPTH:
                raise ExpressionSyntaxError("nested too deeply", token.column, f"at most {MAX_DEPTH} levels")
            node = self.disjunction(depth + 1)
            closing = self.take()
            if closing.kind != ")":
                raise ExpressionSyntaxError(
                    "expected ')'",
                    closing.column,
                    f"to close '(' at column {token.column}; got {closing.show()}",
                )
            return node
        if token.kind == "attr":
            return Attribute(token.value, token.column)
        if token.kind in ("string", "number"):
            return Literal(token.value, token.column)
        if token.kind == "name":
            if self.peek().kind == "(":
                return self.call(token, depth)
            if token.value.lower() in KEYWORDS:
                raise ExpressionSyntaxError(
                    f"expected a value before {token.value!r}", token.column, _EXPECTED_VALUE
                )
            constant = _CONSTANTS.get(token.value.lower())
            if constant is not None:
                return Literal(constant, token.column)
            if token.value in FUNCTIONS:
                raise ExpressionSyntaxError(f"expected '(' after {token.value}", self.peek().column)
            close = _suggest(token.value, [*FUNCTIONS, "True", "False"])
            hint = f"did you mean {close!r}?" if close else _EXPECTED_VALUE
            raise ExpressionSyntaxError(f"unknown name {quote(token.value)}", token.column, hint)
        raise ExpressionSyntaxError(
            "expected a value", token.column, f"{_EXPECTED_VALUE}; got {token.show()}"
        )

    def call(self, name: _Token, depth: int) -> Call:
        spec = FUNCTIONS.get(name.value)
        if spec is None:
            close = _suggest(name.value, list(FUNCTIONS))
            hint = f"did you mean {close!r}?" if close else "see the list of functions in the documentation"
            raise ExpressionSyntaxError(f"unknown function {quote(name.value)}", name.column, hint)
        if depth >= MAX_DEPTH:
            raise ExpressionSyntaxError("calls nested too deeply", name.column, f"at most {MAX_DEPTH} levels")
        self.take()  # "("
        args: list[Node] = []
        if self.peek().kind == ")":
            self.take()
        else:
            while True:
                token = self.peek()
                if token.kind in (",", ")"):
                    args.append(Literal(None, token.column))  # an omitted argument
                else:
                    args.append(self.disjunction(depth + 1))
                token = self.take()
                if token.kind == ",":
                    continue
                if token.kind == ")":
                    break
                if token.kind == "end":
                    raise ExpressionSyntaxError(
                        "expected ')'", token.column, f"to close {name.value}( at column {name.column}"
                    )
                raise ExpressionSyntaxError("expected ',' or ')'", token.column, f"got {token.show()}")
        _check_arity(spec, len(args), name.column)
        return Call(name.value, tuple(args), name.column)


def _check_arity(spec: Function, count: int, column: int) -> None:
    low, high = spec.min_args, spec.max_args
    if low <= count and (high is None or count <= high):
        return
    if high is None:
        need = f"at least {low}"
    elif low == high:
        need = f"exactly {low}"
    else:
        need = f"{low} to {high}"
    plural = "" if count == 1 else "s"
    problem = f"{spec.name} takes {spec.params}, got {count} argument{plural}"
    raise ExpressionSyntaxError(problem, column, f"it needs {need}")


def parse_tree(text: str) -> Node:
    """The tree of `text`; raises `ExpressionSyntaxError` naming the column and what was expected."""
    return _Parser(text).parse()
