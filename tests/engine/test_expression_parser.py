"""The expression parser: the product's syntax, errors that say where and what, trees that print back."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from common.errors import ConfigError, RosterError
from engine.mapping.base import Mapper
from engine.mapping.expression import parse_expression
from engine.mapping.expression_mapping import ExpressionMapping, parse_expression_mapping
from engine.mapping.functions.errors import MappingError
from engine.mapping.functions.registry import FUNCTIONS
from engine.mapping.functions.values import OMIT
from engine.mapping.syntax import _NAME_STOP as NAME_STOP
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

# Hypothesis caches into ./.hypothesis by default, which pytest (norecursedirs set in pyproject) would
# then warn about, and warnings are errors: keep its caches out of the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "roster-hypothesis")
PROPERTY = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def syntax_error(text: str) -> ExpressionSyntaxError:
    with pytest.raises(ExpressionSyntaxError) as caught:
        parse_expression(text)
    return caught.value


def test_parses_attributes_strings_numbers_booleans_and_nested_calls() -> None:
    tree = parse_expression('IIF([a b] = "x \\"y\\" \\\\ \\d", Left(&HF7, -2.5), True)').tree
    assert tree == Call(
        "IIF",
        (
            Compare("=", Attribute("a b"), Literal('x "y" \\ \\d')),
            Call("Left", (Literal(247), Literal(-2.5))),
            Literal(True),
        ),
    )


def test_omitted_arguments_vb_constants_and_line_breaks_parse() -> None:
    tree = parse_expression('Replace([mail],\n  , "@.*", , "", , )').tree
    assert isinstance(tree, Call) and len(tree.args) == 7
    assert tree.args[1] == Literal(None) and tree.args[6] == Literal(None)
    assert parse_expression('InStr("a", "A", 1, vbTextCompare)').tree.args[3] == Literal(1)  # type: ignore[union-attr]


def test_an_unknown_function_suggests_the_closest_name() -> None:
    error = syntax_error('Jion(" ", [givenName], [sn])')
    assert str(error) == "unknown function 'Jion' at column 1 (did you mean 'Join'?)"
    assert error.column == 1
    assert "did you mean 'ToLower'" in str(syntax_error("tolower([a])"))  # names are case-sensitive


def test_a_missing_parenthesis_names_its_column() -> None:
    error = syntax_error('Join(" ", [givenName], [sn]')
    assert str(error) == "expected ')' at column 28 (to close Join( at column 1)"
    assert syntax_error('Join(" " [sn])').column == 10


def test_a_wrong_argument_count_gives_the_signature() -> None:
    assert str(syntax_error("Join()")) == (
        "Join takes (separator, source1, source2, ...), got 0 arguments at column 1 (it needs at least 2)"
    )
    assert "Mid takes (source, start, length), got 2 arguments" in str(syntax_error("Mid([a], 1)"))
    assert "Switch takes keys and values in pairs, got 5 arguments" in str(
        syntax_error('Switch([a], "d", "k", "v", "k2")')
    )


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("", 1, "expected an expression"),
        ('"abc', 1, "unterminated string"),
        ("[abc", 5, "expected ']'"),
        ("[]", 1, "empty attribute name"),
        ("Join", 5, "expected '(' after Join"),
        ("Jion", 1, "did you mean 'Join'?"),
        ('Join(" ", [a]) [b]', 16, "expected the end of the expression"),
        ("Mid(%)", 5, "unexpected character '%'"),
        ("IIF([a] = , 1, 2)", 11, "expected a value after '='"),
        ("1e999", 1, "number too large"),
        ("Left(" * 60 + "1" + ", 1)" * 60, 251, "nested too deeply"),
        ('Join(" ", SelectUniqueValue([a], [b]))', 11, "SelectUniqueValue must be the whole expression"),
        ('Replace([a], , "((", , "", , )', 16, "invalid regular expression"),
        ('Replace([a], , "(?<x>a)", "y", "", , )', 27, "no group named 'y'"),
        ('Replace([a], , , , "b", , )', 1, "needs an oldValue"),
        ('DateAdd("fortnight", 1, [d])', 9, "interval must be one of"),
        ("Item([a], 0)", 11, "index starts at 1"),
    ],
)
def test_syntax_errors_say_where_and_what(text: str, column: int, words: str) -> None:
    error = syntax_error(text)
    assert words in str(error)
    assert error.column == column
    assert isinstance(error, RosterError)


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ('Join(" ", [givenName, [sn])', 21, "expected ']' at column 21 (to close the attribute at column 11"),
        ("Coalesce([mail, Guid()], [upn])", 15, "expected ']'"),
        ('Left([name "x"], 1)', 12, "got '\"'"),
        ('Join(" ", [given\nname], [sn])', 17, "an attribute name cannot hold"),
        ("IIF([a] = 1, [b(c)], [d])", 16, "expected ']'"),
        ('Join(" ", [a]], [b])', 14, "unexpected ']'"),
        ('Join(" ", [a], [b]', 19, "expected ')' at column 19 (to close Join( at column 1)"),
        ('Join(" , [a], [b])', 6, "unterminated string"),
        ('Join("-", [a', 13, "to close the attribute at column 11"),
    ],
)
def test_a_missing_or_stray_bracket_quote_or_parenthesis_is_refused_where_it_shows(
    text: str, column: int, words: str
) -> None:
    """A forgotten `]` once made the rest of the expression part of an attribute name, silently."""
    error = syntax_error(text)
    assert words in str(error)
    assert error.column == column


def test_an_expression_knows_its_attributes_volatility_and_uniqueness() -> None:
    expression = parse_expression('Join(" ", [givenName], Coalesce([sn], [surname]))')
    assert expression.references == frozenset({"givenName", "sn", "surname"})
    assert not expression.volatile and not expression.unique
    assert parse_expression('Join("-", [a], Guid())').volatile
    assert parse_expression("Redact(RandomString(8, 1, 1, 1, 1))").volatile
    assert parse_expression("SelectUniqueValue([a], [b])").unique


def test_an_evaluation_error_fails_the_object_with_the_function_and_column() -> None:
    mapping = ExpressionMapping(
        target="alias", expression=parse_expression("ToLower(Mid([name], [start], 2))")
    )
    assert mapping.evaluate({"name": "John", "start": "2"}) == "oh"
    with pytest.raises(MappingError) as caught:
        mapping.evaluate({"name": "John", "start": "0"})
    assert str(caught.value) == "alias: Mid at column 9: start is 1-based and must be 1 or more, got 0"
    assert isinstance(caught.value, RosterError)


def test_an_unexpected_failure_inside_a_function_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match=r"DateAdd at column 1: .*"):
        parse_expression('DateAdd("yyyy", [years], CDate("2020-01-01"))').evaluate({"years": "9000"})


def test_an_expression_mapping_uses_its_default_for_null_and_passes_omit() -> None:
    mapping = parse_expression_mapping("m", target="dept", expression="Coalesce([d], [e])", default="none")
    assert mapping.evaluate({}) == "none"
    assert mapping.evaluate({"e": "Sales"}) == "Sales"
    omitting = parse_expression_mapping("m", target="dept", expression="IgnoreFlowIfNullOrEmpty([d])")
    assert omitting.evaluate({"d": ""}) is OMIT


def test_an_expression_mapping_plugs_into_the_mapper() -> None:
    mapper = Mapper(
        [
            parse_expression_mapping("m[0]", target="displayName", expression='Join(" ", [given], [sn])'),
            parse_expression_mapping("m[1]", target="password", expression="Guid()", apply_on="create"),
        ],
        matching=(),
    )
    first, second = mapper.map({"given": "Ann", "sn": "Lee"}), mapper.map({"given": "Ann", "sn": "Lee"})
    assert first.attributes == {"displayName": "Ann Lee"}
    assert first.hash == second.hash  # the create-only GUID never makes a cycle see a change
    assert first.create_only["password"] != second.create_only["password"]


def test_config_errors_name_the_mapping_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_expression_mapping("jobs[0].mappings[3]", target="x", expression='Jion(" ", [a])')
    assert str(caught.value) == (
        "jobs[0].mappings[3].expression: unknown function 'Jion' at column 1 (did you mean 'Join'?)"
    )
    with pytest.raises(ConfigError, match=r"jobs\[0\]\.mappings\[2\]\.expression: expected a non-empty"):
        parse_expression_mapping("jobs[0].mappings[2]", target="x", expression="")


@pytest.mark.parametrize("text", ["Guid()", 'Join("", [a], Now())', "RandomString(8, 1, 1, 1, 1)"])
def test_a_volatile_expression_is_refused_on_a_mapping_applied_always(text: str) -> None:
    with pytest.raises(
        ConfigError, match=r"mappings\[1\]\.apply: .* every cycle would see a change"
    ) as caught:
        parse_expression_mapping("mappings[1]", target="x", expression=text)
    assert "set `apply: on_create`" in str(caught.value)
    assert parse_expression_mapping("mappings[1]", target="x", expression=text, apply_on="create")


def test_select_unique_value_is_refused_on_a_mapping_applied_always() -> None:
    with pytest.raises(ConfigError, match="SelectUniqueValue checks the target"):
        parse_expression_mapping("mappings[0]", target="upn", expression="SelectUniqueValue([a], [b])")


# --- properties -------------------------------------------------------------------------------------

TOKENS = [
    *FUNCTIONS, "(", ")", ",", " ", "[a]", "[b c]", "[", "]", '"x"', '"', '\\"', "\\", '""', "1", "-2",
    "3.5", "1e3", "&HF", "True", "false", "vbTextCompare", "=", "<>", "<=", ">", "@", "\n", "Jion",
    " and ", " OR ", "and", "(",
]  # fmt: skip
ATTRIBUTES = {"a": "x", "b c": ["1", "", None, "2"], "n": "3", "d": "2021-08-24"}


@PROPERTY
@given(st.text())
def test_no_text_makes_the_parser_raise_anything_but_its_syntax_error(text: str) -> None:
    try:
        parse_expression(text)
    except ExpressionSyntaxError:
        pass


@PROPERTY
@given(st.lists(st.sampled_from(TOKENS), max_size=24).map("".join))
def test_token_soup_parses_or_fails_cleanly_and_prints_back_to_the_same_tree(text: str) -> None:
    try:
        expression = parse_expression(text)
    except ExpressionSyntaxError:
        return
    assert parse_expression(str(expression)).tree == expression.tree
    try:
        expression.evaluate(ATTRIBUTES)
    except MappingError:
        pass  # a failure per object is allowed; anything else is a bug


SAFE = [
    f for f in FUNCTIONS.values() if f.check is None and f.build is None and f.name != "SelectUniqueValue"
]
leaves: st.SearchStrategy[Node] = st.one_of(
    st.builds(Attribute, st.text(min_size=1).filter(lambda s: not NAME_STOP.search(s))),
    st.builds(Literal, st.text()),
    st.builds(Literal, st.integers(min_value=-(10**30), max_value=10**30)),
    st.builds(Literal, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(Literal, st.booleans()),
)


@st.composite
def calls(draw: Any, children: st.SearchStrategy[Node]) -> Node:
    spec = draw(st.sampled_from(SAFE))
    count = draw(
        st.integers(spec.min_args, spec.max_args if spec.max_args is not None else spec.min_args + 3)
    )
    arg = st.one_of(children, st.just(Literal(None))) if count > 1 else children
    args = tuple(draw(arg) for _ in range(count))
    return Call(spec.name, args)


@st.composite
def logicals(draw: Any, children: st.SearchStrategy[Node]) -> Node:
    op = draw(st.sampled_from(["and", "or"]))
    return Logical(op, tuple(draw(st.lists(children, min_size=2, max_size=3))))


trees = st.recursive(leaves, lambda children: st.one_of(calls(children), logicals(children)), max_leaves=12)


@PROPERTY
@given(trees, st.sampled_from(["", "=", "<>", ">="]), trees)
def test_printing_a_tree_and_parsing_it_again_gives_the_same_tree(left: Node, op: str, right: Node) -> None:
    tree = Compare(op, left, right) if op else left
    try:
        expression = parse_expression(str(tree))
    except ExpressionLimitError:
        return  # its constants cross a bound (a 201-character date format, say): refused, as they must be
    assert expression.tree == tree
    try:
        expression.evaluate(ATTRIBUTES)
    except MappingError:
        pass


@pytest.mark.parametrize(
    ("text", "attributes", "value"),
    [
        ('[d] = "Sales" and [c] = "DE"', {"d": "Sales", "c": "DE"}, True),
        ('[d] = "Sales" and [c] = "DE"', {"d": "Sales", "c": "FR"}, False),
        ('[d] = "Sales" AND [c] = "DE" or [vip]', {"vip": "True"}, True),  # and binds closer than or
        ('[d] = "Sales" and ([c] = "DE" or [c] = "AT")', {"d": "Sales", "c": "AT"}, True),
        ('[d] = "Sales" and ([c] = "DE" or [c] = "AT")', {"d": "Ops", "c": "AT"}, False),
        ("[a] or [b]", {"a": None, "b": "1"}, True),  # parts taken as CBool takes them
        ('IIF([a] = "x" and [b] = "y", "both", "not")', {"a": "x", "b": "y"}, "both"),
        ('Not([d] = "Sales") and [c] = "DE"', {"d": "Ops", "c": "DE"}, True),
        ("([n]) = 3", {"n": 3}, True),
    ],
)
def test_and_or_and_parentheses_join_comparisons(text: str, attributes: dict[str, Any], value: Any) -> None:
    expression = parse_expression(text)
    assert expression.evaluate(attributes) == value
    assert parse_expression(str(expression)).tree == expression.tree


def test_and_stops_at_the_first_false_part_and_or_at_the_first_true_one() -> None:
    """The part after is not evaluated, so it cannot fail the object."""
    failing = "CDate([x]) = 1"
    assert parse_expression(f'[a] = "no" and {failing}').evaluate({"a": "yes", "x": "not a date"}) is False
    assert parse_expression(f'[a] = "yes" or {failing}').evaluate({"a": "yes", "x": "not a date"}) is True
    with pytest.raises(MappingError):
        parse_expression(f'[a] = "yes" and {failing}').evaluate({"a": "yes", "x": "not a date"})


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ('[a] = "x" and', 14, "expected a value after 'and'"),
        ('and [a] = "x"', 1, "expected a value before 'and'"),
        ('([a] = "x"', 11, "expected ')' at column 11 (to close '(' at column 1"),
        ('[a] = "x" or or [b]', 14, "expected a value before 'or'"),
    ],
)
def test_a_misplaced_and_or_or_parenthesis_says_where(text: str, column: int, words: str) -> None:
    error = syntax_error(text)
    assert error.column == column and words in str(error), str(error)
