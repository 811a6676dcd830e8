"""SCIM error responses: the shape of RFC 7644 §3.12, status as a string."""

from __future__ import annotations

import pytest

from common.errors import RosterError
from engine.inbound.errors import ERROR_SCHEMA, SCIM_TYPES, ScimProblem


def test_the_body_is_the_rfc_error_shape_with_the_status_as_a_string() -> None:
    problem = ScimProblem(400, "invalidFilter", "filter at column 3: expected an operator, found 'x'")
    assert problem.body() == {
        "schemas": [ERROR_SCHEMA],
        "status": "400",
        "scimType": "invalidFilter",
        "detail": "filter at column 3: expected an operator, found 'x'",
    }


def test_an_error_without_a_scim_type_leaves_it_out() -> None:
    assert ScimProblem(404, None, "no user 7").body() == {
        "schemas": [ERROR_SCHEMA],
        "status": "404",
        "detail": "no user 7",
    }


def test_every_scim_type_of_rfc_7644_is_known() -> None:
    assert SCIM_TYPES == {
        "invalidFilter",
        "tooMany",
        "uniqueness",
        "mutability",
        "invalidSyntax",
        "invalidPath",
        "noTarget",
        "invalidValue",
        "invalidVers",
        "sensitive",
    }


def test_an_unknown_scim_type_or_a_success_status_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="scimType"):
        ScimProblem(400, "notAType", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        ScimProblem(200, None, "x")


def test_a_scim_problem_is_a_roster_error_whose_message_is_the_detail() -> None:
    problem = ScimProblem(409, "uniqueness", "userName bjensen is taken")
    assert isinstance(problem, RosterError)
    assert str(problem) == "userName bjensen is taken"
