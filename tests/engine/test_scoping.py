"""Scoping filters: the product's operators, clauses ANDed in a group, groups ORed, errors with paths."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import ConfigError
from engine.core.scoping import OPERATORS, ScopingClause, ScopingFilter, canonical_operator, parse_scoping


def holds(operator: str, value: Any, attribute: Any) -> bool:
    return ScopingClause("a", operator, value).holds({"a": attribute})


@pytest.mark.parametrize(
    ("operator", "value", "true_for", "false_for"),
    [
        ("EQUALS", "Sales", ["Sales", ["Legal", "Sales"]], ["sales", "Sales ", None, "", []]),
        ("EQUALS", 42, ["42", 42], ["042"]),
        ("NOT EQUALS", "Sales", ["Legal", ["Legal", "People"]], ["Sales", ["Legal", "Sales"], None, ""]),
        ("IS TRUE", None, [True, "true", "True"], [False, "false", "yes", None]),
        ("IS FALSE", None, [False, "FALSE"], [True, "no", None]),
        ("IS NULL", None, [None, "", []], ["x", " "]),
        ("IS NOT NULL", None, ["x", ["x"]], [None, "", []]),
        ("REGEX MATCH", r".*\@domain.com", ["ann@domain.com"], ["ann@other.com", None]),
        ("REGEX MATCH", "(1[0-9][0-9][0-9][0-9][0-9][0-9])", ["1000000", "1999999"], ["999999", "2000000"]),
        ("REGEX MATCH", "^(?<user>[a-z]+)@", ["ann@x"], ["Ann@x"]),  # .NET group syntax, case-sensitive
        ("NOT REGEX MATCH", r".*\@domain.com", ["ann@other.com"], ["ann@domain.com", None, ""]),
        ("GREATER THAN", 10, ["11", 11, " 12 "], ["10", "9", "ten", "10.5", None]),
        ("GREATER THAN OR EQUALS", "10", ["10", "11"], ["9", None]),
        ("INCLUDES", "eng", ["engineer", "Feng"], ["ENG", "Engineer", None]),
        ("ENDS WITH", "@contoso.com", ["a@contoso.com"], ["a@contoso.com.au", None]),
        ("&", 2, ["514", 2, "3"], ["512", "1", "x", None]),  # userAccountControl: disabled
        ("&", 6, ["6", "7"], ["2", "4"]),  # every bit of the value must be set
        ("!&", 2, ["512"], ["514", None]),
    ],
)
def test_each_operator_holds_as_documented(
    operator: str, value: Any, true_for: list[Any], false_for: list[Any]
) -> None:
    assert [holds(operator, value, v) for v in true_for] == [True] * len(true_for)
    assert [holds(operator, value, v) for v in false_for] == [False] * len(false_for)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("equals", "EQUALS"),
        ("Not_Equals", "NOT EQUALS"),
        ("is  not null", "IS NOT NULL"),
        ("GREATER_THAN_OR_EQUALS", "GREATER THAN OR EQUALS"),
        ("ends_with", "ENDS WITH"),
        ("regex_match", "REGEX MATCH"),
        ("bitwise and", "&"),
        ("!&", "!&"),
    ],
)
def test_operators_are_read_case_insensitively_with_spaces_or_underscores(raw: str, name: str) -> None:
    assert canonical_operator(raw) == name
    assert name in OPERATORS


def test_clauses_in_a_group_are_anded_and_groups_are_ored() -> None:
    scoping = parse_scoping(
        "scoping",
        [
            {"clauses": [{"attribute": "state", "operator": "EQUALS", "value": "New York"},
                         {"attribute": "department", "operator": "EQUALS", "value": "Engineering"}]},
            [{"attribute": "title", "operator": "IS NOT NULL"}],
        ],
    )  # fmt: skip
    assert scoping.matches({"state": "New York", "department": "Engineering"})
    assert not scoping.matches({"state": "New York", "department": "Sales"})
    assert scoping.matches({"state": "Ohio", "title": "Engineer"})
    assert not scoping.matches({})
    assert scoping.references == frozenset({"state", "department", "title"})


def test_an_empty_filter_lets_everything_through() -> None:
    assert ScopingFilter().matches({})
    assert parse_scoping("jobs[0].scoping", None).matches({"anything": 1})
    assert parse_scoping("jobs[0].scoping", []).matches({})


def test_explain_shows_every_clause_and_whether_it_holds() -> None:
    scoping = parse_scoping(
        "scoping",
        [[{"attribute": "dept", "operator": "EQUALS", "value": "Sales"},
          {"attribute": "id", "operator": "GREATER_THAN", "value": 100}],
         [{"attribute": "vip", "operator": "is true"}]],
    )  # fmt: skip
    explained = scoping.explain({"dept": "Sales", "id": "7"})
    assert [[(str(c), ok) for c, ok in group] for group in explained] == [
        [("dept EQUALS 'Sales'", True), ("id GREATER THAN 100", False)],
        [("vip IS TRUE", False)],
    ]


def test_the_documented_common_filters_work() -> None:
    scoping = parse_scoping(
        "scoping",
        [
            [{"attribute": "userPrincipalName", "operator": "REGEX MATCH", "value": r".*\@domain.com"}],
            [{"attribute": "department", "operator": "EQUALS", "value": "sales"}],
        ],
    )
    assert scoping.matches({"userPrincipalName": "ann@domain.com"})
    assert scoping.matches({"department": "sales"})
    assert not scoping.matches({"department": "Sales", "userPrincipalName": "ann@other.com"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            [{"clauses": []}, {"clauses": [{"attribute": "d", "operator": "EQUAL", "value": "x"}]}],
            "jobs[0].scoping[0].clauses: has no clauses (add a clause, or remove the group)",
        ),
        (
            [{"clauses": [{"attribute": "d", "operator": "IS NULL"}]},
             {"clauses": [{"attribute": "d", "operator": "EQUAL", "value": "x"}]}],
            "jobs[0].scoping[1].clauses[0].operator: unknown operator 'EQUAL' (did you mean 'EQUALS'?)",
        ),
        (
            [[{"attribute": "d", "operator": "REGEX MATCH", "value": "(("}]],
            "jobs[0].scoping[0][0].value: invalid regular expression: missing ), unterminated subpattern "
            "at position 1",
        ),
        (
            [[{"attribute": "d", "operator": "EQUALS"}]],
            "jobs[0].scoping[0][0].value: is required for EQUALS (add `value:`)",
        ),
        (
            [[{"attribute": "d", "operator": "IS NULL", "value": "x"}]],
            "jobs[0].scoping[0][0].value: IS NULL takes no value (remove `value:`)",
        ),
        (
            [[{"attribute": "n", "operator": "GREATER THAN", "value": "ten"}]],
            "jobs[0].scoping[0][0].value: GREATER THAN needs a whole number, got 'ten'",
        ),
        (
            [[{"attribute": "b", "operator": "EQUALS", "value": True}]],
            "jobs[0].scoping[0][0].value: EQUALS needs a text value, got bool (quote it)",
        ),
        (
            [[{"attribute": "d", "operator": "EQUALS", "valeu": "x"}]],
            "jobs[0].scoping[0][0].valeu: unknown key (did you mean 'value'?)",
        ),
        ({"clauses": []}, "jobs[0].scoping: expected a list, got dict"),
    ],
)  # fmt: skip
def test_config_errors_name_the_path_the_problem_and_the_fix(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_scoping("jobs[0].scoping", raw)
    assert str(caught.value) == message


def test_a_clause_built_in_code_is_validated_too() -> None:
    with pytest.raises(ValueError, match="unknown operator 'CONTAINS'"):
        ScopingClause("a", "CONTAINS", "x")
    assert ScopingClause("a", "ends_with", "x") == ScopingClause("a", "ENDS WITH", "x")
