"""Scoping filters: which source objects a job provisions.

As in the cloud product, a filter is groups of clauses (attribute, operator, value): the clauses of a
group are ANDed, the groups ORed, and a filter without groups lets every object through. Operators
carry the product's names (EQUALS, NOT EQUALS, IS TRUE, IS FALSE, IS NULL, IS NOT NULL, REGEX MATCH,
NOT REGEX MATCH, GREATER THAN, GREATER THAN OR EQUALS, INCLUDES, ENDS WITH, and `&` / `!&` for a bitwise
AND, also spelled BITWISE AND / NOT BITWISE AND), read case-insensitively with spaces or underscores.

Comparisons are case-sensitive, on text. A null or empty attribute fails every clause but IS NULL
(NOT EQUALS and NOT REGEX MATCH included), as the product documents. For a multi-valued attribute a
clause holds when it holds for any of its values, and a negated clause when it holds for none.
GREATER THAN compares whole numbers, and `&` holds when every bit of the value is set in the attribute
(like LDAP's bitwise AND rule: `userAccountControl & 2` finds disabled accounts).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from common.config.validation import as_list, as_mapping, check_keys, join, string
from common.errors import ConfigError
from engine.mapping.dotnet import compile_regex
from engine.mapping.functions.errors import MappingError
from engine.mapping.limits import LimitError, quote

Test = Callable[[Any], bool]

OPERATORS: Final = (
    "EQUALS",
    "NOT EQUALS",
    "IS TRUE",
    "IS FALSE",
    "IS NULL",
    "IS NOT NULL",
    "REGEX MATCH",
    "NOT REGEX MATCH",
    "GREATER THAN",
    "GREATER THAN OR EQUALS",
    "INCLUDES",
    "ENDS WITH",
    "&",
    "!&",
)
_ALIASES: Final = {"BITWISE AND": "&", "NOT BITWISE AND": "!&"}
_NO_VALUE: Final = frozenset({"IS TRUE", "IS FALSE", "IS NULL", "IS NOT NULL"})
_NEGATED: Final = {"NOT EQUALS": "EQUALS", "NOT REGEX MATCH": "REGEX MATCH", "!&": "&"}


class ClauseError(ValueError):
    """A clause that cannot be built; `key` is the clause key at fault (operator or value)."""

    def __init__(self, key: str, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem
        self.fix = fix


def canonical_operator(raw: str) -> str:
    """The product's name for an operator written in any case, with spaces or underscores."""
    name = " ".join(raw.replace("_", " ").split()).upper()
    name = _ALIASES.get(name, name)
    if name in OPERATORS:
        return name
    close = difflib.get_close_matches(name, [*OPERATORS, *_ALIASES], n=1)
    fix = f"did you mean {close[0]!r}?" if close else f"known operators: {', '.join(OPERATORS)}"
    raise ClauseError("operator", f"unknown operator {raw!r}", fix)


@dataclass(frozen=True, slots=True)
class ScopingClause:
    """One condition on one attribute; validated and compiled (regexes included) once, at construction."""

    attribute: str
    operator: str
    value: Any = None
    path: str = field(default="", repr=False, compare=False)
    """Where the clause was read from (`jobs[0].scoping[0].clauses[1]`), to name it in later checks."""
    _test: Test = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        operator = canonical_operator(self.operator)
        object.__setattr__(self, "operator", operator)
        object.__setattr__(self, "_test", _compile(operator, self.value))

    def holds(self, attributes: Mapping[str, Any]) -> bool:
        return self._test(attributes.get(self.attribute))

    def __str__(self) -> str:
        value = "" if self.operator in _NO_VALUE else f" {self.value!r}"
        return f"{self.attribute} {self.operator}{value}"


@dataclass(frozen=True, slots=True)
class ScopingFilter:
    """Groups of clauses: an object is in scope when every clause of at least one group holds."""

    groups: tuple[tuple[ScopingClause, ...], ...] = ()
    _tests: tuple[tuple[tuple[str, Test], ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tests = tuple(tuple((c.attribute, c._test) for c in group) for group in self.groups)
        object.__setattr__(self, "_tests", tests)

    @property
    def references(self) -> frozenset[str]:
        """The attributes the filter reads, to check against the source's columns."""
        return frozenset(c.attribute for group in self.groups for c in group)

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        if not self._tests:
            return True
        get = attributes.get
        for group in self._tests:
            for attribute, test in group:
                if not test(get(attribute)):
                    break
            else:
                return True
        return False

    def explain(self, attributes: Mapping[str, Any]) -> list[list[tuple[ScopingClause, bool]]]:
        """Every clause with whether it holds, group by group: what `roster preview` shows."""
        return [[(c, c.holds(attributes)) for c in group] for group in self.groups]


def parse_scoping(path: str, raw: Any) -> ScopingFilter:
    """Read a job's `scoping:` list; errors name the path, e.g. `jobs[0].scoping[1].clauses[0].operator`.

    Each group is `{clauses: [{attribute, operator, value}, ...]}` or just the list of clauses.
    """
    if raw is None:
        return ScopingFilter()
    groups = []
    for i, item in enumerate(as_list(path, raw)):
        group_path = join(path, i)
        if isinstance(item, list):
            clauses_path, clauses = group_path, item
        else:
            check_keys(group_path, as_mapping(group_path, item), ("clauses",), required=("clauses",))
            clauses_path = join(group_path, "clauses")
            clauses = as_list(clauses_path, item["clauses"])
        if not clauses:
            raise ConfigError(clauses_path, "has no clauses", "add a clause, or remove the group")
        groups.append(tuple(_parse_clause(join(clauses_path, j), c) for j, c in enumerate(clauses)))
    return ScopingFilter(tuple(groups))


def _parse_clause(path: str, raw: Any) -> ScopingClause:
    raw = as_mapping(path, raw)
    check_keys(path, raw, ("attribute", "operator", "value"), required=("attribute", "operator"))
    attribute = string(join(path, "attribute"), raw["attribute"])
    operator = string(join(path, "operator"), raw["operator"])
    try:
        name = canonical_operator(operator)
        if name in _NO_VALUE and "value" in raw:
            raise ClauseError("value", f"{name} takes no value", "remove `value:`")
        if name not in _NO_VALUE and raw.get("value") is None:
            raise ClauseError("value", f"is required for {name}", "add `value:`")
        return ScopingClause(attribute, name, raw.get("value"), path=path)
    except ClauseError as exc:
        raise ConfigError(join(path, exc.key), exc.problem, exc.fix) from None


# --- compiling a clause to a test of the attribute's value ------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return value if isinstance(value, str) else str(value)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != []


def _compile(operator: str, value: Any) -> Test:
    if operator == "IS NULL":
        return _empty
    if operator == "IS NOT NULL":
        return _present
    if operator in ("IS TRUE", "IS FALSE"):
        wanted = operator == "IS TRUE"
        return lambda v: v is wanted or (isinstance(v, str) and v.strip().lower() == str(wanted).lower())
    holds = _text_test(_NEGATED.get(operator, operator), value)
    negated = operator in _NEGATED

    def test(v: Any) -> bool:
        if v.__class__ is str:  # the common case, kept to one call
            return v != "" and holds(v) is not negated
        if _empty(v):
            return False
        if isinstance(v, list):
            return any(holds(_text(x)) for x in v if not _empty(x)) is not negated
        return holds(_text(v)) is not negated

    return test


def _text_test(operator: str, value: Any) -> Callable[[str], bool]:
    """The test of one non-empty value as text, for the operators that take a clause value."""
    if operator in ("GREATER THAN", "GREATER THAN OR EQUALS", "&"):
        bound = _whole(value)
        if bound is None:
            raise ClauseError("value", f"{operator} needs a whole number, got {value!r}")
        if operator == "&":
            return lambda s: (n := _whole(s)) is not None and n & bound == bound
        if operator == "GREATER THAN":
            return lambda s: (n := _whole(s)) is not None and n > bound
        return lambda s: (n := _whole(s)) is not None and n >= bound
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ClauseError("value", f"{operator} needs a text value, got {type(value).__name__}", "quote it")
    expected = _text(value)
    if operator == "EQUALS":
        return expected.__eq__
    if operator == "INCLUDES":
        return lambda s: expected in s
    if operator == "ENDS WITH":
        return lambda s: s.endswith(expected)
    try:
        pattern = compile_regex(expected)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise ClauseError("value", f"invalid regular expression: {exc}") from None
    search = pattern.search

    def regex_match(s: str) -> bool:
        try:
            return search(s) is not None
        except LimitError as exc:  # a regex that ran out of time on this value: this object fails
            raise MappingError(f"scoping REGEX MATCH {quote(expected)}: {exc}") from None

    return regex_match
