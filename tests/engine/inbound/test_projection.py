"""attributes and excludedAttributes (RFC 7644 §3.4.2.5): what a response returns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.inbound.errors import ScimProblem
from engine.inbound.projection import names, project

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

BJENSEN: dict[str, Any] = {
    "schemas": [USER, ENTERPRISE],
    "id": "2819c223",
    "userName": "bjensen",
    "password": "t1meMa$heen",
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [
        {"value": "bjensen@example.com", "type": "work"},
        {"value": "babs@jensen.org", "type": "home"},
    ],
    "meta": {"resourceType": "User", "lastModified": "2011-05-13T04:42:34Z"},
    ENTERPRISE: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
}


def test_without_parameters_everything_but_the_password_is_returned() -> None:
    before = copy.deepcopy(BJENSEN)
    projected = project(BJENSEN)
    assert projected == {key: value for key, value in BJENSEN.items() if key != "password"}
    projected["name"]["givenName"] = "changed"
    assert before == BJENSEN


def test_attributes_returns_those_and_id_and_schemas() -> None:
    assert project(BJENSEN, ["userName", "name.familyName", "emails.value", "password"]) == {
        "schemas": [USER, ENTERPRISE],
        "id": "2819c223",
        "userName": "bjensen",
        "name": {"familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}],
    }


def test_attributes_reach_the_extension_by_urn_and_whole_attributes_win_over_sub_attributes() -> None:
    projected = project(BJENSEN, [f"{ENTERPRISE}:manager", "EMAILS.TYPE", "emails"])
    assert projected[ENTERPRISE] == {"manager": {"value": "26118915"}}
    assert projected["emails"] == BJENSEN["emails"]
    assert project(BJENSEN, [ENTERPRISE])[ENTERPRISE] == BJENSEN[ENTERPRISE]


def test_excluded_attributes_leaves_those_out_but_never_id_or_schemas() -> None:
    projected = project(
        BJENSEN, excluded=["emails", "name.givenName", "id", "schemas", f"{ENTERPRISE}:employeeNumber"]
    )
    assert "emails" not in projected
    assert projected["name"] == {"familyName": "Jensen"}
    assert projected["id"] == "2819c223"
    assert projected["schemas"] == [USER, ENTERPRISE]
    assert projected[ENTERPRISE] == {"manager": {"value": "26118915"}}
    assert ENTERPRISE not in project(BJENSEN, excluded=[ENTERPRISE])


def test_a_name_that_is_no_attribute_path_is_an_invalid_path() -> None:
    with pytest.raises(ScimProblem) as raised:
        project(BJENSEN, ['emails[type eq "work"]'])
    assert raised.value.scim_type == "invalidPath"


def test_the_query_parameter_is_split_on_commas() -> None:
    assert names(" userName, name.familyName ,,emails ") == ["userName", "name.familyName", "emails"]
    assert names(None) == []
