"""SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2) parsed into a small tree.

The grammar is Figure 1 of the RFC, with its errata 4690/7322 for value filters::

    FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
    valuePath = attrPath "[" valFilter "]"         ; no valuePath inside a valFilter
    attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
    logExp    = FILTER SP ("and" / "or") SP FILTER  ; not binds tighter than and, and than or
    compValue = false / null / true / number / string
    attrPath  = [URI ":"] ATTRNAME *1subAttr
    PATH      = attrPath / valuePath [subAttr]      ; a PATCH path

and one form outside it, which Microsoft Entra ID's SCIM tutorial requires of a filter on the
attributes that identify a user: `valuePath subAttr SP compareOp SP compValue` (and `... SP "pr"`),
`emails[type eq "work"].value eq "a@b.c"`, read as `emails[type eq "work" and value eq "a@b.c"]`.

Operators and keywords are case-insensitive; any run of whitespace stands for SP. Errors are
`ScimProblem`s (invalidFilter, or invalidPath for a PATCH path) that name the column and what was
expected there. Filters are limited in length and nesting, so a request cannot make the parser work
without bound.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Final, Literal

from engine.inbound.attributes import AttrPath, split_path
from engine.inbound.errors import ScimProblem

MAX_FILTER_CHARS: Final = 10_000
MAX_DEPTH: Final = 50

CompareOp = Literal["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
COMPARE_OPS: Final = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
ORDERING_OPS: Final = frozenset({"gt", "ge", "lt", "le"})
Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Present:
    path: AttrPath


@dataclass(frozen=True, slots=True)
class Compare:
    path: AttrPath
    op: CompareOp
    value: Scalar


@dataclass(frozen=True, slots=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True, slots=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True, slots=True)
class Not:
    operand: Filter


@dataclass(frozen=True, slots=True)
class ValuePath:
    """`attr[filter]`: some value of the multi-valued `attr` matches `filter`, whose attribute paths
    name sub-attributes of that value."""

    path: AttrPath
    filter: Filter


Filter = Present | Compare | And | Or | Not | ValuePath


@dataclass(frozen=True, slots=True)
class PatchPath:
    """A PATCH target: an attribute, or the values of one that `filter` selects, and optionally one
    sub-attribute of those values (`emails[type eq "work"].value`)."""

    path: AttrPath
    filter: Filter | None = None
    sub: str | None = None


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<punct>[()\[\]])
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_$:.-]))
  | (?P<word>[A-Za-z$][A-Za-z0-9_$:.-]*)
  | (?P<sub>\.[A-Za-z$][A-Za-z0-9_$-]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["punct", "string", "number", "word", "sub", "end"]
    text: str
    column: int  # 1-based

    def shown(self) -> str:
        return "the end" if self.kind == "end" else repr(self.text)


def _tokens(text: str, problem: type[_Problem]) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            if text[at] == '"':
                raise problem(at + 1, "a string closed by '\"' with valid escapes", "an unfinished string")
            raise problem(at + 1, "an attribute, a value, an operator or a parenthesis", repr(text[at]))
        kind = match.lastgroup
        if kind != "space":
            found.append(_Token(kind, match.group(), at + 1))  # type: ignore[arg-type]
        at = match.end()
    found.append(_Token("end", "", len(text) + 1))
    return found


class _Problem(ScimProblem):
    scim: Literal["invalidFilter", "invalidPath"] = "invalidFilter"
    what: str = "filter"

    def __init__(self, column: int, expected: str, found: str) -> None:
        detail = f"{self.what} at column {column}: expected {expected}, found {found}"
        super().__init__(400, self.scim, detail)
        self.column = column


class _PathProblem(_Problem):
    scim = "invalidPath"
    what = "path"


class _Parser:
    def __init__(self, text: str, problem: type[_Problem]) -> None:
        if len(text) > MAX_FILTER_CHARS:
            raise ScimProblem(
                400, problem.scim, f"{problem.what} of {len(text)} characters; at most {MAX_FILTER_CHARS}"
            )
        self.problem = problem
        self.tokens = _tokens(text, problem)
        self.at = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def fail(self, expected: str) -> _Problem:
        return self.problem(self.token.column, expected, self.token.shown())

    def keyword(self, *names: str) -> str | None:
        token = self.token
        if token.kind == "word" and token.text.lower() in names:
            self.at += 1
            return token.text.lower()
        return None

    def punct(self, char: str) -> bool:
        if self.token.kind == "punct" and self.token.text == char:
            self.at += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.punct(char):
            raise self.fail(repr(char))

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ScimProblem(
                400,
                self.problem.scim,
                f"{self.problem.what} at column {self.token.column}: nested deeper than {MAX_DEPTH} levels",
            )

    def end(self) -> None:
        if self.token.kind != "end":
            raise self.fail("'and', 'or' or the end" if self.problem is _Problem else "the end")

    def filter(self, inside: bool = False) -> Filter:
        """or-expression: and-expressions joined by `or`."""
        node = self.conjunction(inside)
        while self.keyword("or"):
            node = Or(node, self.conjunction(inside))
        return node

    def conjunction(self, inside: bool) -> Filter:
        node = self.unary(inside)
        while self.keyword("and"):
            node = And(node, self.unary(inside))
        return node

    def unary(self, inside: bool) -> Filter:
        if self.keyword("not"):
            if not (self.token.kind == "punct" and self.token.text == "("):
                raise self.fail("'(' after 'not'")
            return Not(self.group(inside))
        if self.token.kind == "punct" and self.token.text == "(":
            return self.group(inside)
        path = self.attr_path()
        if self.token.kind == "punct" and self.token.text == "[":
            if inside:
                raise self.fail("an operator (a value filter holds no other value filter)")
            self.at += 1
            self.nest()
            node = self.filter(inside=True)
            self.expect("]")
            self.depth -= 1
            after: _Token = self.token
            if after.kind == "sub":  # Entra's `emails[type eq "work"].value eq "..."`
                sub = AttrPath(None, after.text[1:])
                self.at += 1
                node = And(node, self.attr_expression(sub))
            return ValuePath(path, node)
        return self.attr_expression(path)

    def group(self, inside: bool) -> Filter:
        self.expect("(")
        self.nest()
        node = self.filter(inside)
        self.expect(")")
        self.depth -= 1
        return node

    def attr_path(self) -> AttrPath:
        token = self.token
        path = split_path(token.text) if token.kind == "word" else None
        if path is None or token.text.lower() in {"not", "and", "or"}:
            raise self.fail("an attribute path")
        self.at += 1
        return path

    def attr_expression(self, path: AttrPath) -> Filter:
        operator = self.keyword("pr", *COMPARE_OPS)
        if operator is None:
            raise self.fail("an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)")
        if operator == "pr":
            return Present(path)
        column = self.token.column
        value = self.comp_value()
        if operator in ORDERING_OPS and (value is None or isinstance(value, bool)):
            raise self.problem(column, f"a string or a number after {operator!r}", json.dumps(value))
        return Compare(path, operator, value)  # type: ignore[arg-type]

    def comp_value(self) -> Scalar:
        token = self.token
        value: Scalar
        if token.kind == "string":
            value = json.loads(token.text)
        elif token.kind == "number":
            value = json.loads(token.text)
            if value in (math.inf, -math.inf):
                raise self.fail("a number of a double's range")
        elif token.kind == "word" and token.text.lower() in {"true", "false", "null"}:
            value = {"true": True, "false": False, "null": None}[token.text.lower()]
        else:
            raise self.fail('a value: a "string", a number, true, false or null')
        self.at += 1
        return value

    def patch_path(self) -> PatchPath:
        path = self.attr_path()
        if not self.punct("["):
            self.end()
            return PatchPath(path)
        self.nest()
        node = self.filter(inside=True)
        self.expect("]")
        sub: str | None = None
        if self.token.kind == "sub":
            sub = self.token.text[1:]
            self.at += 1
        self.end()
        return PatchPath(path, node, sub)


def parse_filter(text: str) -> Filter:
    """The tree of a filter; `ScimProblem(400, "invalidFilter")` says where it goes wrong."""
    parser = _Parser(text, _Problem)
    if parser.token.kind == "end":
        raise parser.fail("a filter")
    node = parser.filter()
    parser.end()
    return node


def parse_path(text: str) -> PatchPath:
    """The target of a PATCH operation; `ScimProblem(400, "invalidPath")` says where it goes wrong."""
    parser = _Parser(text, _PathProblem)
    if parser.token.kind == "end":
        raise parser.fail("an attribute path")
    return parser.patch_path()


INDEXED: Final = {
    "username": "userName",
    "externalid": "externalId",
    "id": "id",
    "displayname": "displayName",
}


def indexed_equality(node: Filter) -> tuple[str, str] | None:
    """`(attribute, value)` when the filter is `userName|externalId|id|displayName eq "value"`, the
    forms the mirror answers from an index (Okta's and Entra's lookups before a create); else None."""
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and node.path.urn is None
        and node.path.sub is None
        and isinstance(node.value, str)
        and node.path.name.lower() in INDEXED
    ):
        return INDEXED[node.path.name.lower()], node.value
    return None


def unparse(node: Filter) -> str:
    """The filter as text that parses back to the same tree (for logs and tests)."""
    if isinstance(node, Present):
        return f"{node.path} pr"
    if isinstance(node, Compare):
        return f"{node.path} {node.op} {json.dumps(node.value)}"
    if isinstance(node, And):
        return f"({unparse(node.left)} and {unparse(node.right)})"
    if isinstance(node, Or):
        return f"({unparse(node.left)} or {unparse(node.right)})"
    if isinstance(node, Not):
        return f"not ({unparse(node.operand)})"
    return f"{node.path}[{unparse(node.filter)}]"
