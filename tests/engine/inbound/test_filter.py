"""SCIM filters: every example of RFC 7644 §3.4.2.2 parses and selects what it says, errors say where
and what, and no text makes the parser raise anything but a SCIM error."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from engine.inbound.attributes import AttrPath
from engine.inbound.errors import ScimProblem
from engine.inbound.filter import (
    MAX_DEPTH,
    MAX_FILTER_CHARS,
    And,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    ValuePath,
    indexed_equality,
    parse_filter,
    parse_path,
    unparse,
)
from engine.inbound.match import matches

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "roster-hypothesis")
PROPERTY = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

BJENSEN: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "bjensen",
    "userName": "Jensen.Babs",
    "name": {"familyName": "O'Malley", "givenName": "Barbara"},
    "title": "Tour Guide",
    "userType": "Employee",
    "active": True,
    "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ],
    "ims": [{"value": "babs@foo.com", "type": "xmpp"}],
    "meta": {"lastModified": "2011-05-13T04:42:34Z", "resourceType": "User"},
    ENTERPRISE: {"employeeNumber": "701984", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}},
}
INTERN: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "c3a26dd3",
    "userName": "zoe",
    "userType": "Intern",
    "emails": [{"value": "zoe@example.org", "type": "home"}],
    "meta": {"lastModified": "2011-05-13T04:42:33Z", "resourceType": "User"},
}

# RFC 7644 §3.4.2.2's examples, each with whether it selects BJENSEN and INTERN.
RFC_EXAMPLES = [
    ('userName eq "bjensen"', False, False),
    ('name.familyName co "O\'Malley"', True, False),
    ('userName sw "J"', True, False),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"', True, False),
    ("title pr", True, False),
    ('meta.lastModified gt "2011-05-13T04:42:34Z"', False, False),
    ('meta.lastModified ge "2011-05-13T04:42:34Z"', True, False),
    ('meta.lastModified lt "2011-05-13T04:42:34Z"', False, True),
    ('meta.lastModified le "2011-05-13T04:42:34Z"', True, True),
    ('title pr and userType eq "Employee"', True, False),
    ('title pr or userType eq "Intern"', True, True),
    ('schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"', True, False),
    ('userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")', True, False),
    (
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
        False,
        False,
    ),
    ('userType eq "Employee" and (emails.type eq "work")', True, False),
    ('userType eq "Employee" and emails[type eq "work" and value co "@example.com"]', True, False),
    (
        'emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]',
        True,
        False,
    ),
]


@pytest.mark.parametrize(("text", "selects_bjensen", "selects_intern"), RFC_EXAMPLES)
def test_every_example_filter_of_the_rfc_parses_and_selects_what_it_says(
    text: str, selects_bjensen: bool, selects_intern: bool
) -> None:
    node = parse_filter(text)
    assert parse_filter(unparse(node)) == node
    assert matches(BJENSEN, node) is selects_bjensen
    assert matches(INTERN, node) is selects_intern


def test_the_rfc_value_filter_example_builds_a_value_path_over_an_and() -> None:
    assert parse_filter('emails[type eq "work" and value co "@example.com"]') == ValuePath(
        AttrPath(None, "emails"),
        And(
            Compare(AttrPath(None, "type"), "eq", "work"),
            Compare(AttrPath(None, "value"), "co", "@example.com"),
        ),
    )


def test_not_binds_tighter_than_and_and_and_tighter_than_or() -> None:
    a, b, c = (Present(AttrPath(None, name)) for name in "abc")
    assert parse_filter("a pr or b pr and c pr") == Or(a, And(b, c))
    assert parse_filter("a pr and b pr or c pr") == Or(And(a, b), c)
    assert parse_filter("not (a pr) and b pr") == And(Not(a), b)
    assert parse_filter("(a pr or b pr) and c pr") == And(Or(a, b), c)


def test_operators_keywords_and_attribute_names_ignore_case() -> None:
    assert parse_filter('USERNAME EQ "Jensen.Babs" AND Title PR') == And(
        Compare(AttrPath(None, "USERNAME"), "eq", "Jensen.Babs"), Present(AttrPath(None, "Title"))
    )
    assert matches(BJENSEN, 'USERNAME EQ "jensen.babs" AND Title PR')
    assert matches(BJENSEN, 'NAME.FAMILYNAME eq "o\'malley"')


def test_urn_prefixed_paths_reach_the_enterprise_extension() -> None:
    assert matches(BJENSEN, f'{ENTERPRISE}:employeeNumber eq "701984"')
    assert matches(BJENSEN, f'{ENTERPRISE}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"')
    assert matches(BJENSEN, f"{ENTERPRISE.upper()}:EMPLOYEENUMBER pr")
    assert not matches(INTERN, f"{ENTERPRISE}:employeeNumber pr")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('id eq "2819c223-7f76-453a-919d-413861904646"', True),
        ('id eq "2819C223-7F76-453A-919D-413861904646"', False),  # id is caseExact
        ('externalId eq "BJENSEN"', False),  # so is externalId
        ('userName eq "JENSEN.BABS"', True),  # userName is not
        ('emails[type eq "WORK"]', True),
        ('meta.resourceType eq "user"', False),
    ],
)
def test_strings_compare_case_insensitively_unless_the_attribute_is_case_exact(
    text: str, expected: bool
) -> None:
    assert matches(BJENSEN, text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('meta.lastModified gt "2011-05-13T06:42:33+02:00"', True),  # 04:42:33Z: compared as instants
        ('meta.lastModified lt "2011-05-13T06:42:35+02:00"', True),
        ('meta.lastModified ge "2011-05-13T04:42:34.000Z"', True),
        ('title gt "Tour"', True),  # not dates: lexical
        ("active eq true", True),
        ("active ne false", True),
        ('active eq "True"', True),  # Entra's boolean as a string
        ("nickName eq null", True),
        ("title eq null", False),
        ("title ne null", True),
        ('nickName ne "Babs"', True),  # ne matches an absent attribute
        ('emails.value ew ".org"', True),  # any value of a multi-valued sub-attribute
        ('emails.value sw "zz"', False),
        ('emails[primary eq true and type eq "work"]', True),
        ('emails[primary eq true and type eq "home"]', False),
        ('name eq "x"', False),
    ],
)
def test_comparisons_follow_the_attribute_types(text: str, expected: bool) -> None:
    assert matches(BJENSEN, text) is expected


def test_numbers_compare_as_numbers() -> None:
    resource = {"loginCount": 9, "score": 2.5}
    assert matches(resource, "loginCount gt 10") is False
    assert matches(resource, "loginCount lt 10")
    assert matches(resource, "score ge 2.5e0 and score le 25E-1")
    assert matches(resource, "loginCount eq 9.0")
    assert not matches(resource, 'loginCount eq "9"')


def test_string_values_decode_json_escapes() -> None:
    node = parse_filter(r'displayName eq "a \"quoted\" \\ name \u00e9\n"')
    assert node == Compare(AttrPath(None, "displayName"), "eq", 'a "quoted" \\ name é\n')


def test_a_sub_attribute_compared_after_a_value_filter_is_compared_inside_it() -> None:
    # Microsoft, "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra ID"
    # (learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups),
    # section "/Users": a GET to /Users must allow `emails[type eq "work"].value eq "user@contoso.com"`
    node = parse_filter('emails[type eq "work"].value eq "user@contoso.com"')
    assert node == parse_filter('emails[type eq "work" and value eq "user@contoso.com"]')
    work = {"emails": [{"type": "home", "value": "x@y.z"}, {"type": "work", "value": "USER@contoso.com"}]}
    home = {"emails": [{"type": "home", "value": "user@contoso.com"}, {"type": "work", "value": "x@y.z"}]}
    assert matches(work, node) and not matches(home, node)
    assert matches(work, 'emails[type eq "work"].value pr')
    with pytest.raises(ScimProblem, match="column 29: expected an operator"):
        parse_filter('emails[type eq "work"].value')


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("userName eq", 12, 'expected a value: a "string", a number, true, false or null, found the end'),
        ('userName xx "a"', 10, "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr), found"),
        ("(title pr", 10, "expected ')', found the end"),
        ("title pr)", 9, "expected 'and', 'or' or the end, found ')'"),
        ("not title pr", 5, "expected '(' after 'not', found 'title'"),
        ('userName eq "abc', 13, "expected a string closed by '\"' with valid escapes, found an unfinished"),
        ('userName eq "a\\qb"', 13, "found an unfinished string"),
        ("userName eq bjensen", 13, "expected a value"),
        ("meta.lastModified gt true", 22, "expected a string or a number after 'gt', found true"),
        ("title pr and", 13, "expected an attribute path, found the end"),
        ("a.b.c pr", 1, "expected an attribute path, found 'a.b.c'"),
        ('emails[type eq "work" and ims[type pr]]', 30, "a value filter holds no other value filter"),
        ("title pr # x", 10, "found '#'"),
        ("loginCount gt 1e999", 15, "expected a number of a double's range, found '1e999'"),
        ("", 1, "expected a filter, found the end"),
        ("   ", 4, "expected a filter, found the end"),
    ],
)
def test_a_filter_that_does_not_parse_says_the_column_and_what_was_expected(
    text: str, column: int, expected: str
) -> None:
    with pytest.raises(ScimProblem) as raised:
        parse_filter(text)
    assert raised.value.status == 400
    assert raised.value.scim_type == "invalidFilter"
    assert f"filter at column {column}: " in raised.value.detail
    assert expected in raised.value.detail


def test_a_filter_too_long_or_too_deep_is_refused_with_the_limit() -> None:
    with pytest.raises(ScimProblem, match=f"at most {MAX_FILTER_CHARS}") as raised:
        parse_filter('userName eq "' + "x" * MAX_FILTER_CHARS + '"')
    assert raised.value.scim_type == "invalidFilter"
    deep = "(" * (MAX_DEPTH + 1) + "title pr" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ScimProblem, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_filter(deep)
    at_limit = "(" * MAX_DEPTH + "title pr" + ")" * MAX_DEPTH
    assert parse_filter(at_limit) == Present(AttrPath(None, "title"))
    nots = "not (" * (MAX_DEPTH + 1) + "title pr" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ScimProblem, match="nested deeper"):
        parse_filter(nots)


def test_a_long_chain_of_ands_is_not_nesting() -> None:
    text = " and ".join(f"a{i} pr" for i in range(500))
    assert isinstance(parse_filter(text), And)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "bjensen"', ("userName", "bjensen")),
        ('USERNAME Eq "bjensen"', ("userName", "bjensen")),
        ('externalId eq "00u1"', ("externalId", "00u1")),
        ('id eq "2819c223"', ("id", "2819c223")),
        ('displayName eq "Sales"', ("displayName", "Sales")),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen"', ("userName", "bjensen")),
        ('userName ne "bjensen"', None),
        ('userName eq "a" and id eq "b"', None),
        ('title eq "x"', None),
        ("userName eq 5", None),
        ('name.familyName eq "x"', None),
    ],
)
def test_the_simple_equalities_a_mirror_answers_by_index_are_recognised(
    text: str, expected: tuple[str, str] | None
) -> None:
    assert indexed_equality(parse_filter(text)) == expected


FILTER_CHARS = 'abeqnotrpd "()[].:\\-_$0123456789uU'


@PROPERTY
@given(st.text(alphabet=st.sampled_from(list(FILTER_CHARS)), max_size=60) | st.text())
def test_no_text_makes_the_parser_raise_anything_but_a_scim_error(text: str) -> None:
    try:
        node = parse_filter(text)
    except ScimProblem as problem:
        assert problem.scim_type == "invalidFilter"
        assert problem.status == 400
    else:
        assert parse_filter(unparse(node)) == node


NAMES = st.sampled_from(["userName", "title", "emails", "name", "$ref", "x-y_z1"])
PATHS = st.builds(
    AttrPath,
    st.none() | st.just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
    NAMES,
    st.none() | NAMES,
)
VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)


def _trees(inside: bool) -> st.SearchStrategy[Filter]:
    leaf = st.builds(Present, PATHS) | st.builds(
        Compare, PATHS, st.sampled_from(["eq", "ne", "co", "sw", "ew"]), VALUES
    )
    return st.recursive(
        leaf,
        lambda inner: st.builds(And, inner, inner) | st.builds(Or, inner, inner) | st.builds(Not, inner),
        max_leaves=8,
    )


TREES = _trees(False) | st.builds(ValuePath, PATHS, _trees(True))


@PROPERTY
@given(TREES)
def test_every_tree_prints_as_a_filter_that_parses_back_to_it(node: Filter) -> None:
    assert parse_filter(unparse(node)) == node


@pytest.mark.parametrize(
    ("text", "column"),
    [("emails[type eq", 15), ('emails[type eq "work"].value.x', 29), ("a b", 3), ("", 1), ("emails]", 7)],
)
def test_a_patch_path_that_does_not_parse_is_an_invalid_path_with_its_column(text: str, column: int) -> None:
    with pytest.raises(ScimProblem) as raised:
        parse_path(text)
    assert raised.value.scim_type == "invalidPath"
    assert f"path at column {column}: " in raised.value.detail
