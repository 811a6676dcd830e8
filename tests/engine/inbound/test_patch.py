"""PATCH (RFC 7644 §3.5.2): every example of the RFC, the errors it names, and a request that fails
changing nothing."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from engine.inbound.errors import ScimProblem
from engine.inbound.patch import apply_patch

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "roster-hypothesis")

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BABS = "2819c223-7f76-453a-919d-413861904646"
JAMES = "902c246b-6245-4190-8e05-00816be7344a"
MANDY = "c3a26dd3-27a0-4dec-a2ac-ce211e105f97"


def request(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def patched(resource: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    before = copy.deepcopy(resource)
    after = apply_patch(resource, request(*operations))
    assert resource == before, "the input resource is never changed"
    return after


def refused(resource: dict[str, Any], *operations: dict[str, Any]) -> ScimProblem:
    before = copy.deepcopy(resource)
    with pytest.raises(ScimProblem) as raised:
        apply_patch(resource, request(*operations))
    assert resource == before
    assert raised.value.status == 400
    return raised.value


def group(*members: str) -> dict[str, Any]:
    return {
        "schemas": [GROUP],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [{"value": member, "display": member[:4]} for member in members],
        "meta": {"resourceType": "Group", "version": 'W/"3694e05e9dff592"'},
    }


def user() -> dict[str, Any]:
    return {
        "schemas": [USER],
        "id": BABS,
        "userName": "bjensen",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"},
        ],
        "meta": {"resourceType": "User"},
    }


def member_values(resource: dict[str, Any]) -> list[str]:
    return [member["value"] for member in resource.get("members", [])]


# §3.5.2.1 add


def test_rfc_add_a_member_to_a_group() -> None:
    after = patched(
        group(JAMES),
        {
            "op": "add",
            "path": "members",
            "value": [
                {"display": "Babs Jensen", "$ref": f"https://example.com/v2/Users/{BABS}", "value": BABS}
            ],
        },
    )
    assert member_values(after) == [JAMES, BABS]
    assert after["members"][1]["display"] == "Babs Jensen"


def test_rfc_add_without_a_path_adds_each_attribute_of_the_value() -> None:
    after = patched(
        user(),
        {
            "op": "add",
            "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickname": "Babs"},
        },
    )
    assert after["emails"] == [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ]
    assert after["nickname"] == "Babs"


def test_adding_a_member_twice_keeps_one() -> None:
    once = patched(group(), {"op": "add", "path": "members", "value": [{"value": BABS}]})
    twice = patched(once, {"op": "add", "path": "members", "value": [{"value": BABS, "display": "Babs"}]})
    assert member_values(twice) == [BABS]
    assert twice["members"][0]["display"] == "Babs"


def test_an_added_primary_value_takes_the_mark_from_the_others() -> None:
    after = patched(
        user(),
        {
            "op": "add",
            "path": "emails",
            "value": [{"value": "b@jensen.org", "type": "home", "primary": True}],
        },
    )
    assert [email.get("primary") for email in after["emails"]] == [False, True]


def test_add_of_a_singular_attribute_sets_it_and_of_a_complex_one_sets_its_sub_attributes() -> None:
    after = patched(
        user(),
        {"op": "add", "path": "title", "value": "Tour Guide"},
        {"op": "add", "path": "name", "value": {"middleName": "Jane"}},
        {"op": "add", "path": "name.honorificPrefix", "value": "Ms."},
    )
    assert after["title"] == "Tour Guide"
    assert after["name"] == {
        "familyName": "Jensen",
        "givenName": "Barbara",
        "middleName": "Jane",
        "honorificPrefix": "Ms.",
    }


def test_add_to_an_extension_attribute_makes_the_extension_object_and_lists_its_schema() -> None:
    after = patched(user(), {"op": "add", "path": f"{ENTERPRISE}:employeeNumber", "value": "701984"})
    assert after[ENTERPRISE] == {"employeeNumber": "701984"}
    assert after["schemas"] == [USER, ENTERPRISE]


def test_add_without_a_path_takes_an_extension_object_as_a_set_of_its_attributes() -> None:
    after = patched(
        user(),
        {"op": "add", "value": {ENTERPRISE: {"department": "Tours", "manager": {"value": JAMES}}}},
    )
    assert after[ENTERPRISE] == {"department": "Tours", "manager": {"value": JAMES}}


def test_add_with_a_filter_of_equalities_that_selects_nothing_creates_that_value() -> None:
    after = patched(user(), {"op": "add", "path": 'emails[type eq "home"].value', "value": "b@jensen.org"})
    assert after["emails"][1] == {"type": "home", "value": "b@jensen.org"}


# §3.5.2.2 remove


def test_rfc_remove_one_member_of_a_group() -> None:
    after = patched(group(BABS, JAMES), {"op": "remove", "path": f'members[value eq "{BABS}"]'})
    assert member_values(after) == [JAMES]


def test_rfc_remove_all_members_of_a_group() -> None:
    after = patched(group(BABS, JAMES), {"op": "remove", "path": "members"})
    assert "members" not in after


def test_rfc_remove_values_of_a_complex_multi_valued_attribute_selected_by_a_filter() -> None:
    resource = user()
    resource["emails"].append({"value": "babs@jensen.org", "type": "home"})
    after = patched(resource, {"op": "remove", "path": 'emails[type eq "work" and value ew "example.com"]'})
    assert after["emails"] == [{"value": "babs@jensen.org", "type": "home"}]


def test_rfc_remove_all_members_then_add_others_in_one_request() -> None:
    after = patched(
        group(BABS),
        {"op": "remove", "path": "members"},
        {
            "op": "add",
            "path": "members",
            "value": [
                {"display": "James Smith", "value": JAMES},
                {"display": "Mandy Pepperidge", "value": MANDY},
            ],
        },
    )
    assert member_values(after) == [JAMES, MANDY]


def test_remove_of_a_sub_attribute_and_of_an_extension_attribute() -> None:
    resource = patched(user(), {"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": JAMES}})
    after = patched(
        resource,
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": f"{ENTERPRISE}:manager"},
        {"op": "remove", "path": 'addresses[type eq "home"].locality'},
    )
    assert after["name"] == {"familyName": "Jensen"}
    assert ENTERPRISE not in after
    assert after["schemas"] == [USER]
    assert after["addresses"][1] == {"type": "home", "streetAddress": "456 Hollywood Blvd"}


def test_a_remove_of_what_is_not_there_changes_nothing() -> None:
    resource = group(JAMES)
    assert patched(resource, {"op": "remove", "path": f'members[value eq "{BABS}"]'}) == resource
    assert patched(resource, {"op": "remove", "path": "nickName"}) == resource


def test_remove_without_a_path_is_no_target() -> None:
    assert refused(group(BABS), {"op": "remove"}).scim_type == "noTarget"


# §3.5.2.3 replace


def test_rfc_replace_all_members_of_a_group() -> None:
    after = patched(
        group(BABS),
        {
            "op": "replace",
            "path": "members",
            "value": [
                {"display": "James Smith", "value": JAMES},
                {"display": "Mandy Pepperidge", "value": MANDY},
            ],
        },
    )
    assert member_values(after) == [JAMES, MANDY]


def test_rfc_replace_a_work_address_selected_by_a_filter() -> None:
    work = {
        "type": "work",
        "streetAddress": "911 Universal City Plaza",
        "locality": "Hollywood",
        "region": "CA",
        "postalCode": "91608",
        "country": "US",
        "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
        "primary": True,
    }
    after = patched(user(), {"op": "replace", "path": 'addresses[type eq "work"]', "value": work})
    assert after["addresses"] == [work, user()["addresses"][1]]


def test_rfc_replace_a_sub_attribute_of_the_values_a_filter_selects() -> None:
    after = patched(
        user(),
        {"op": "replace", "path": 'addresses[type eq "work"].streetAddress', "value": "1010 Broadway Ave"},
    )
    assert after["addresses"][0]["streetAddress"] == "1010 Broadway Ave"
    assert after["addresses"][1] == user()["addresses"][1]


def test_rfc_replace_several_attributes_without_a_path() -> None:
    emails = [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ]
    after = patched(user(), {"op": "replace", "value": {"emails": emails, "nickname": "Babs"}})
    assert after["emails"] == emails
    assert after["nickname"] == "Babs"


def test_rfc_replace_of_a_member_s_display_selected_by_its_value() -> None:
    after = patched(
        group(BABS, JAMES), {"op": "replace", "path": f'members[value eq "{BABS}"].display', "value": "Babs"}
    )
    assert after["members"][0] == {"value": BABS, "display": "Babs"}


def test_replace_of_a_complex_attribute_leaves_the_sub_attributes_it_does_not_name() -> None:
    after = patched(user(), {"op": "replace", "path": "name", "value": {"givenName": "Babs"}})
    assert after["name"] == {"familyName": "Jensen", "givenName": "Babs"}


def test_replace_of_an_absent_attribute_adds_it() -> None:
    assert patched(user(), {"op": "replace", "path": "title", "value": "Guide"})["title"] == "Guide"


def test_replace_with_a_filter_that_selects_nothing_is_no_target() -> None:
    problem = refused(user(), {"op": "replace", "path": 'emails[type eq "home"].value', "value": "x@y.z"})
    assert problem.scim_type == "noTarget"
    assert "emails" in problem.detail


# Errors


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "id", "value": "other"},
        {"op": "remove", "path": "id"},
        {"op": "add", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"},
        {"op": "remove", "path": "meta"},
        {"op": "replace", "path": "schemas", "value": [GROUP]},
        {"op": "replace", "value": {"id": "other"}},
    ],
)
def test_changing_what_the_service_owns_is_a_mutability_error(operation: dict[str, Any]) -> None:
    problem = refused(user(), operation)
    assert problem.scim_type == "mutability"
    assert problem.detail.startswith("Operations[0]: ")


def test_removing_a_required_attribute_is_an_invalid_value() -> None:
    assert refused(user(), {"op": "remove", "path": "userName"}).scim_type == "invalidValue"
    assert refused(group(), {"op": "remove", "path": "displayName"}).scim_type == "invalidValue"


@pytest.mark.parametrize(
    ("path", "column"),
    [("emails[type eq", 15), ('emails[type eq "work"', 22), ("name..givenName", 1), ("a b", 3), ("", 1)],
)
def test_a_path_that_does_not_parse_is_an_invalid_path_that_says_where(path: str, column: int) -> None:
    problem = refused(user(), {"op": "replace", "path": path, "value": "x"})
    assert problem.scim_type == "invalidPath"
    assert f"Operations[0]: path at column {column}: expected" in problem.detail


def test_a_filter_on_a_single_valued_attribute_is_an_invalid_path() -> None:
    assert refused(user(), {"op": "replace", "path": 'userName[value eq "x"]', "value": "y"}).scim_type == (
        "invalidPath"
    )


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ([], "invalidSyntax"),
        ({"Operations": [{"op": "add", "path": "title", "value": "x"}]}, "invalidSyntax"),
        ({"schemas": [PATCH]}, "invalidSyntax"),
        ({"schemas": [PATCH], "Operations": []}, "invalidSyntax"),
        ({"schemas": [PATCH], "Operations": ["add"]}, "invalidSyntax"),
        ({"schemas": [PATCH], "Operations": [{"op": "move", "path": "title"}]}, "invalidSyntax"),
        ({"schemas": [PATCH], "Operations": [{"op": "add", "path": "title"}]}, "invalidValue"),
        ({"schemas": [PATCH], "Operations": [{"op": "add", "path": 7, "value": "x"}]}, "invalidPath"),
        ({"schemas": [PATCH], "Operations": [{"op": "add", "value": "x"}]}, "invalidValue"),
    ],
)
def test_a_malformed_request_names_what_is_wrong(body: Any, scim_type: str) -> None:
    with pytest.raises(ScimProblem) as raised:
        apply_patch(user(), body)
    assert raised.value.scim_type == scim_type


def test_a_request_that_fails_in_its_last_operation_changes_nothing() -> None:
    resource = group(BABS)
    refused(resource, {"op": "remove", "path": "members"}, {"op": "remove", "path": "id"})
    assert member_values(resource) == [BABS]


def test_a_path_that_is_an_extension_s_urn_works_on_the_whole_extension_object() -> None:
    resource = patched(user(), {"op": "add", "path": ENTERPRISE, "value": {"department": "Tours"}})
    assert resource[ENTERPRISE] == {"department": "Tours"}
    assert resource["schemas"] == [USER, ENTERPRISE]
    resource = patched(resource, {"op": "replace", "path": ENTERPRISE, "value": {"division": "West"}})
    assert resource[ENTERPRISE] == {"department": "Tours", "division": "West"}
    removed = patched(resource, {"op": "remove", "path": ENTERPRISE})
    assert ENTERPRISE not in removed
    assert removed["schemas"] == [USER]


PATHS = st.sampled_from(
    [
        "members",
        "title",
        "name.givenName",
        "emails",
        'emails[type eq "work"].value',
        'emails[type eq "work"]',
        'members[value eq "x"]',
        f"{ENTERPRISE}:manager",
        ENTERPRISE,
        "id",
        "userName",
        "emails[",
        "a b",
        "",
    ]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["value", "type", "x"]), inner)
    ),
    max_leaves=6,
)
OPERATIONS = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "Replace", "remove", "REMOVE", "copy"])},
    optional={"path": PATHS | JSON, "value": JSON | st.dictionaries(PATHS, JSON, max_size=3)},
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATIONS, min_size=1, max_size=4))
def test_any_operations_give_a_new_resource_or_a_scim_error_and_never_touch_the_input(
    operations: list[dict[str, Any]],
) -> None:
    resource = user()
    try:
        after = apply_patch(resource, request(*operations))
    except ScimProblem as problem:
        assert problem.status == 400
    else:
        assert after["id"] == BABS
        assert isinstance(after["schemas"], list)
    assert resource == user()


def test_a_remove_with_values_it_cannot_read_is_refused_rather_than_removing_all_values() -> None:
    problem = refused(group(BABS), {"op": "remove", "path": "members", "value": [{"value": {"id": BABS}}]})
    assert problem.scim_type == "invalidValue"
    assert (
        refused(group(BABS), {"op": "remove", "path": "members", "value": BABS}).scim_type == "invalidValue"
    )


def test_an_extension_object_that_is_not_an_object_is_an_invalid_value() -> None:
    assert refused(user(), {"op": "add", "value": {ENTERPRISE: "x"}}).scim_type == "invalidValue"
    assert refused(user(), {"op": "add", "path": ENTERPRISE, "value": "x"}).scim_type == "invalidValue"
