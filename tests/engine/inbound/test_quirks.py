"""The PATCH requests Microsoft Entra ID and Okta document sending, replayed as they show them, each
giving the resource the RFC's form of the same request gives."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.inbound.patch import apply_patch
from engine.inbound.quirks import coerce, operations

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def send(resource: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    return apply_patch(resource, {"schemas": [PATCH], "Operations": list(operations)})


def user(**extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "id": "6b1d6f4d",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": True,
        "displayName": "Test",
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        **extra,
    }


def group(*members: str) -> dict[str, Any]:
    return {
        "schemas": [GROUP],
        "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
        "displayName": "Group1DisplayName",
        "members": [{"value": member} for member in members],
    }


# Microsoft Entra ID: "Known issues and resolutions with SCIM 2.0 protocol compliance ..." (without and
# with the aadOptscim062020 flag) and the SCIM endpoint tutorial.


def test_entra_disables_a_user_with_a_capital_replace_and_the_string_false() -> None:
    without_flag = send(user(), {"op": "Replace", "path": "active", "value": "False"})
    with_flag = send(user(), {"op": "replace", "path": "active", "value": False})
    assert without_flag["active"] is False
    assert without_flag == with_flag
    assert send(without_flag, {"op": "Replace", "path": "active", "value": "True"})["active"] is True


def test_entra_adds_a_single_valued_string_as_a_list_of_one_value() -> None:
    without_flag = send(user(), {"op": "Add", "path": "nickName", "value": [{"value": "Babs"}]})
    with_flag = send(user(), {"op": "add", "path": "nickName", "value": "Babs"})
    assert without_flag["nickName"] == "Babs"
    assert without_flag == with_flag


def test_entra_replaces_several_attributes_as_operations_or_as_one_object_keyed_by_paths() -> None:
    without_flag = send(
        user(),
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "TestBcwqnm@test.microsoft.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": "Eqpj"},
        {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
    )
    with_flag = send(
        user(),
        {
            "op": "replace",
            "value": {
                "displayName": "Pvlo",
                'emails[type eq "work"].value': "TestBcwqnm@test.microsoft.com",
                "name.givenName": "Gtfd",
                "name.familyName": "Pkqf",
                "externalId": "Eqpj",
                f"{ENTERPRISE}:employeeNumber": "Eqpj",
            },
        },
    )
    assert with_flag == without_flag
    assert with_flag["emails"] == [
        {"primary": True, "type": "work", "value": "TestBcwqnm@test.microsoft.com"}
    ]
    assert with_flag["name"] == {"givenName": "Gtfd", "familyName": "Pkqf"}
    assert with_flag[ENTERPRISE] == {"employeeNumber": "Eqpj"}
    assert with_flag["schemas"] == [USER, ENTERPRISE]


def test_entra_removes_a_member_by_value_or_by_a_filter_path() -> None:
    kept, gone = "7f4bc1a3-285e-48ae-8202-5accb43efb0e", "16b083c0-f1e8-4544-b6ee-27a28dc98761"
    without_flag = send(group(kept, gone), {"op": "Remove", "path": "members", "value": [{"value": gone}]})
    with_flag = send(group(kept, gone), {"op": "remove", "path": f'members[value eq "{gone}"]'})
    assert without_flag["members"] == [{"value": kept}]
    assert without_flag == with_flag


def test_entra_tutorial_adds_and_removes_members_with_a_null_ref() -> None:
    added = send(
        group(), {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}
    )
    assert [m["value"] for m in added["members"]] == ["f648f8d5ea4e4cd38e9c"]
    removed = send(
        added, {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}
    )
    assert "members" not in removed


def test_entra_tutorial_renames_a_group_and_updates_a_user_s_email_and_family_name() -> None:
    renamed = send(group(), {"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"})
    assert renamed["displayName"] == "1879db59updatedDisplayName"
    updated = send(
        user(),
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
    )
    assert updated["emails"][0]["value"] == "updatedEmail@microsoft.com"
    assert updated["name"]["familyName"] == "updatedFamilyName"


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "26118915-6090-4610-87e4-49d8ca9f808d"},
        {
            "op": "Replace",
            "path": f"{ENTERPRISE}:manager",
            "value": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
        },
        {"op": "Replace", "value": {f"{ENTERPRISE}:manager": "26118915-6090-4610-87e4-49d8ca9f808d"}},
        {"op": "add", "value": {ENTERPRISE: {"manager": "26118915-6090-4610-87e4-49d8ca9f808d"}}},
        {
            "op": "replace",
            "path": f"{ENTERPRISE}:manager.value",
            "value": "26118915-6090-4610-87e4-49d8ca9f808d",
        },
    ],
)
def test_entra_sets_the_manager_as_a_plain_id_or_as_a_complex_value(operation: dict[str, Any]) -> None:
    after = send(user(), operation)
    assert after[ENTERPRISE] == {"manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}


def test_entra_removes_the_manager() -> None:
    managed = send(user(), {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "26118915"})
    assert ENTERPRISE not in send(managed, {"op": "Remove", "path": f"{ENTERPRISE}:manager"})


def test_the_brief_s_mixed_entra_object_disables_renames_and_sets_the_manager_at_once() -> None:
    after = send(
        user(),
        {
            "op": "Replace",
            "value": {"active": False, "name.givenName": "x", f"{ENTERPRISE}:manager": "id-of-manager"},
        },
    )
    assert after["active"] is False
    assert after["name"] == {"givenName": "x", "familyName": "Family"}
    assert after[ENTERPRISE] == {"manager": {"value": "id-of-manager"}}


def test_entra_s_boolean_strings_also_select_values_in_a_filter_path() -> None:
    resource = user(roles=[{"primary": True, "value": "Reader"}, {"primary": False, "value": "Writer"}])
    after = send(resource, {"op": "Replace", "path": 'roles[primary eq "True"].value', "value": "Admin"})
    assert after["roles"] == [{"primary": True, "value": "Admin"}, {"primary": False, "value": "Writer"}]


def test_boolean_strings_inside_a_value_object_become_booleans() -> None:
    after = send(
        user(),
        {
            "op": "Add",
            "path": "emails",
            "value": [{"value": "home@example.com", "type": "home", "primary": "False"}],
        },
    )
    assert after["emails"][1]["primary"] is False


# Okta: "Okta and SCIM Version 2.0".


def test_okta_deactivates_a_user_with_a_replace_of_active_without_a_path() -> None:
    after = send(user(), {"op": "replace", "value": {"active": False}})
    assert after["active"] is False
    assert send(after, {"op": "replace", "value": {"active": True}})["active"] is True


def test_okta_renames_a_group_repeating_its_unchanged_id() -> None:
    resource = group("23a35c27-23d3-4c03-b4c5-6443c09e7173")
    after = send(
        resource,
        {
            "op": "replace",
            "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"},
        },
    )
    assert after == {**resource, "displayName": "Test SCIMv2"}


def test_okta_adds_and_removes_group_members() -> None:
    member = "23a35c27-23d3-4c03-b4c5-6443c09e7173"
    other = "89bb1940-b905-4575-9e7f-6f887cfb368e"
    added = send(
        group(other),
        {"op": "add", "path": "members", "value": [{"value": member, "display": "test.user@okta.local"}]},
    )
    assert added["members"] == [{"value": other}, {"value": member, "display": "test.user@okta.local"}]
    removed = send(added, {"op": "remove", "path": f'members[value eq "{other}"]'})
    assert removed["members"] == [{"value": member, "display": "test.user@okta.local"}]


# The rewriting itself.


def test_an_rfc_operation_is_left_as_it_is() -> None:
    operation = {"op": "remove", "path": 'members[value eq "x"]'}
    assert operations(copy.deepcopy(operation)) == [operation]


def test_a_value_object_keeps_its_attribute_names_and_sends_its_paths_as_operations() -> None:
    assert operations({"op": "Replace", "value": {"active": False, "name.givenName": "x"}}) == [
        {"op": "replace", "value": {"active": False}},
        {"op": "replace", "path": "name.givenName", "value": "x"},
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("active", "TRUE", True),
        ("active", "no", "no"),
        ("title", "True", "True"),
        ("nickname", [{"value": "Babs"}], "Babs"),
        ("emails", [{"value": "a@b.c"}], [{"value": "a@b.c"}]),
        (f"{ENTERPRISE.lower()}:manager", "m1", {"value": "m1"}),
        (f"{ENTERPRISE.lower()}:employeenumber", [{"value": "7"}], "7"),
    ],
)
def test_coerce_turns_vendor_spellings_into_the_rfc_s_for_known_attributes_only(
    key: str, value: Any, expected: Any
) -> None:
    assert coerce(key, value) == expected


def test_a_single_valued_attribute_removed_with_its_value_in_entra_s_shape_is_removed() -> None:
    nicknamed = send(user(), {"op": "Add", "path": "nickName", "value": [{"value": "Babs"}]})
    assert "nickName" not in send(
        nicknamed, {"op": "Remove", "path": "nickName", "value": [{"value": "Babs"}]}
    )
