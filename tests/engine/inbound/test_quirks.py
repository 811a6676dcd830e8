"""The PATCH requests Microsoft Entra ID and Okta document sending, replayed as their pages print them
(each test names the page and its section), and what each makes of the resource."""

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


# Microsoft Entra ID. The pages, cited by the tests below:
#
# KNOWN ISSUES: "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft Entra
#   user provisioning service", https://learn.microsoft.com/entra/identity/app-provisioning/
#   application-provisioning-config-problem-scim-compatibility, section "Flags to alter the SCIM
#   behavior" (requests "without feature flag" and "with feature flag", the flag being aadOptscim062020).
# TUTORIAL: "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra ID",
#   https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups,
#   section "SCIM protocol requests and responses" unless said otherwise.
# MAPPINGS: "Tutorial - Customize user provisioning attribute-mappings for SaaS applications in Microsoft
#   Entra ID", https://learn.microsoft.com/entra/identity/app-provisioning/customize-application-attributes,
#   section "Provisioning a role to a SCIM app".


def test_entra_disables_a_user_with_a_capital_replace_and_the_string_false() -> None:
    # KNOWN ISSUES, "Requests made to disable users"
    without_flag = send(user(), {"op": "Replace", "path": "active", "value": "False"})
    with_flag = send(user(), {"op": "replace", "path": "active", "value": False})
    assert without_flag["active"] is False
    assert without_flag == with_flag
    # the same string form restores the user (TUTORIAL, "Understand the Microsoft Entra SCIM
    # implementation": soft-deleting with active=false and restoring with active=true)
    assert send(without_flag, {"op": "Replace", "path": "active", "value": "True"})["active"] is True


def test_entra_adds_a_single_valued_string_as_a_plain_string_with_and_without_the_flag() -> None:
    # KNOWN ISSUES, "Requests made to add a single-value string attribute": only the op's case differs
    without_flag = send(user(), {"op": "Add", "path": "nickName", "value": "Babs"})
    with_flag = send(user(), {"op": "add", "path": "nickName", "value": "Babs"})
    assert without_flag["nickName"] == "Babs"
    assert without_flag == with_flag


def test_entra_replaces_several_attributes_as_one_operation_each_without_the_flag() -> None:
    # KNOWN ISSUES, "Requests to replace multiple attributes", without feature flag
    after = send(
        user(),
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "TestBcwqnm@test.microsoft.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": "Eqpj"},
        {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
    )
    assert after == {
        **user(),
        "schemas": [USER, ENTERPRISE],
        "displayName": "Pvlo",
        "emails": [{"primary": True, "type": "work", "value": "TestBcwqnm@test.microsoft.com"}],
        "name": {"givenName": "Gtfd", "familyName": "Pkqf"},
        "externalId": "Eqpj",
        ENTERPRISE: {"employeeNumber": "Eqpj"},
    }


def test_entra_replaces_several_attributes_with_a_value_object_keyed_by_paths_with_the_flag() -> None:
    # KNOWN ISSUES, "Requests to replace multiple attributes", with feature flag: the email by its path,
    # the others in one value object whose keys are paths
    after = send(
        user(),
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "TestMhvaes@test.microsoft.com"},
        {
            "op": "replace",
            "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                f"{ENTERPRISE}:employeeNumber": "Aklq",
            },
        },
    )
    assert after == {
        **user(),
        "schemas": [USER, ENTERPRISE],
        "displayName": "Bjfe",
        "emails": [{"primary": True, "type": "work", "value": "TestMhvaes@test.microsoft.com"}],
        "name": {"givenName": "Kkom", "familyName": "Unua"},
        ENTERPRISE: {"employeeNumber": "Aklq"},
    }


def test_entra_removes_a_member_by_a_value_list_without_the_flag_and_by_a_filter_path_with_it() -> None:
    # KNOWN ISSUES, "Requests made to remove a group member"
    kept = "16b083c0-f1e8-4544-b6ee-27a28dc98761"
    without_flag = send(
        group(kept, "u1091"), {"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}
    )
    assert without_flag["members"] == [{"value": kept}]
    gone = "7f4bc1a3-285e-48ae-8202-5accb43efb0e"
    with_flag = send(group(kept, gone), {"op": "remove", "path": f'members[value eq "{gone}"]'})
    assert with_flag["members"] == [{"value": kept}]


def test_entra_tutorial_updates_a_user_s_work_email_and_family_name() -> None:
    # TUTORIAL, "Update User [Multi-valued properties]"
    updated = send(
        user(),
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
    )
    assert updated["emails"] == [{"primary": True, "type": "work", "value": "updatedEmail@microsoft.com"}]
    assert updated["name"] == {"givenName": "Given", "familyName": "updatedFamilyName"}


def test_entra_tutorial_changes_a_user_s_user_name() -> None:
    # TUTORIAL, "Update User [Single-valued properties]"
    updated = send(
        user(),
        {"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"},
    )
    assert updated == {**user(), "userName": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}


def test_entra_tutorial_disables_a_user_with_a_capital_replace_and_a_boolean() -> None:
    # TUTORIAL, "Disable User": the capital op of the flagless requests with the flag's boolean
    disabled = send(user(), {"op": "Replace", "path": "active", "value": False})
    assert disabled == {**user(), "active": False}


def test_entra_tutorial_renames_a_group() -> None:
    # TUTORIAL, "Update Group [Non-member attributes]"
    name = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    renamed = send(group(), {"op": "Replace", "path": "displayName", "value": name})
    assert renamed == {**group(), "displayName": name}


def test_entra_tutorial_adds_and_removes_members_with_a_null_ref() -> None:
    # TUTORIAL, "Update Group [Add Members]" and "Update Group [Remove Members]"
    added = send(
        group(), {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}
    )
    assert [m["value"] for m in added["members"]] == ["f648f8d5ea4e4cd38e9c"]
    removed = send(
        added, {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}
    )
    assert "members" not in removed


def test_entra_tutorial_adds_an_unqualified_manager_as_a_list_of_one_reference() -> None:
    # TUTORIAL, section "Handling provisioning and deprovisioning of users", example 5: `manager`
    # without the enterprise URN, its value a list of one complex value with a $ref
    manager = "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
    ref = f"http://.../scim/Users/{manager}"
    after = send(user(), {"op": "Add", "path": "manager", "value": [{"$ref": ref, "value": manager}]})
    assert after == {
        **user(),
        "schemas": [USER, ENTERPRISE],
        ENTERPRISE: {"manager": {"$ref": ref, "value": manager}},
    }
    assert "manager" not in after  # not a core attribute of its own
    assert ENTERPRISE not in send(after, {"op": "Remove", "path": "manager"})


@pytest.mark.parametrize(
    "operation",
    [
        # TUTORIAL, section "Design your user and group schema": the example user's enterprise manager
        # is the id as a string ("manager": "123456"); MAPPINGS, "Provisioning a custom extension
        # attribute": a complex value. Neither page shows the PATCH that sets it; these are the paths
        # and value objects the other Entra requests use, with either value.
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


def test_entra_adds_app_roles_as_json_strings_in_value() -> None:
    # MAPPINGS, "SingleAppRoleAssignment" and "AppRoleAssignmentsComplex", "Example output (PATCH)":
    # each role's value is a JSON document in a string, stored as sent
    single = '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"25","displayName":"Role1234"}'
    after = send(user(), {"op": "Add", "path": "roles", "value": [{"value": single}]})
    assert after["roles"] == [{"value": single}]
    admin = '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"Admin","displayName":"Admin"}'
    member = '{"id":"06b07648-ecfe-599f-9d2f-6325724a46ee","value":"User","displayName":"User"}'
    both = send(user(), {"op": "Add", "path": "roles", "value": [{"value": admin}, {"value": member}]})
    assert both["roles"] == [{"value": admin}, {"value": member}]


def test_entra_replaces_all_app_roles_at_once() -> None:
    # MAPPINGS, "AssertiveAppRoleAssignmentsComplex", "Example output (PATCH)": the roles Entra no
    # longer assigns go
    roles = [
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "User", "value": "User"},
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "Test", "value": "Test"},
    ]
    held = user(roles=[{"primary": False, "type": "WindowsAzureActiveDirectoryRole", "value": "Old"}])
    after = send(held, {"op": "replace", "path": "roles", "value": roles})
    assert after["roles"] == roles


def test_entra_s_boolean_strings_also_select_values_in_a_filter_path() -> None:
    # MAPPINGS, "SingleAppRoleAssignment": the role's target attributes are named
    # roles[primary eq "True"].display, .type and .value, with the boolean as a string
    resource = user(roles=[{"primary": True, "value": "Reader"}, {"primary": False, "value": "Writer"}])
    after = send(resource, {"op": "Replace", "path": 'roles[primary eq "True"].value', "value": "Admin"})
    assert after["roles"] == [{"primary": True, "value": "Admin"}, {"primary": False, "value": "Writer"}]


# Okta: "Okta and SCIM Version 2.0", https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20
# (source: github.com/okta/okta-developer-docs, packages/@okta/vuepress-site/docs/reference/scim/scim-20/).


def test_okta_deactivates_a_user_with_a_replace_of_active_without_a_path() -> None:
    # OKTA, "Update a specific User (PATCH)"; reactivating is the same request with true
    after = send(user(), {"op": "replace", "value": {"active": False}})
    assert after == {**user(), "active": False}
    assert send(after, {"op": "replace", "value": {"active": True}})["active"] is True


def test_okta_renames_a_group_repeating_its_unchanged_id() -> None:
    # OKTA, "Update a specific Group name"
    resource = group("23a35c27-23d3-4c03-b4c5-6443c09e7173")
    after = send(
        resource,
        {
            "op": "replace",
            "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"},
        },
    )
    assert after == {**resource, "displayName": "Test SCIMv2"}


def test_okta_removes_and_adds_group_members_in_one_request() -> None:
    # OKTA, "Update specific Group membership": the removal by filter path and the addition, together
    leaving, joining = "89bb1940-b905-4575-9e7f-6f887cfb368e", "23a35c27-23d3-4c03-b4c5-6443c09e7173"
    after = send(
        group(leaving),
        {"op": "remove", "path": f'members[value eq "{leaving}"]'},
        {"op": "add", "path": "members", "value": [{"value": joining, "display": "test.user@okta.local"}]},
    )
    assert after["members"] == [{"value": joining, "display": "test.user@okta.local"}]


def test_okta_replaces_all_group_members_at_once() -> None:
    # OKTA, "Update specific Group membership": "a full push of the membership ... using the replace
    # operation"
    members = [
        {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"},
        {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user@okta.local"},
    ]
    after = send(group("7f4bc1a3"), {"op": "replace", "path": "members", "value": members})
    assert after["members"] == members


# Shapes no vendor page shows, taken because they are unambiguous.


def test_a_single_valued_string_added_as_a_list_of_one_value_is_the_string() -> None:
    listed = send(user(), {"op": "Add", "path": "nickName", "value": [{"value": "Babs"}]})
    assert listed == send(user(), {"op": "add", "path": "nickName", "value": "Babs"})


def test_a_value_object_mixing_attribute_names_and_paths_disables_renames_and_sets_the_manager() -> None:
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


# The rewriting itself.


def test_an_rfc_operation_is_left_as_it_is() -> None:
    operation = {"op": "remove", "path": 'members[value eq "x"]'}
    assert operations(copy.deepcopy(operation)) == [operation]


def test_an_unqualified_manager_path_names_the_enterprise_manager() -> None:
    assert operations({"op": "Remove", "path": "manager.value"}) == [
        {"op": "remove", "path": f"{ENTERPRISE}:manager.value"}
    ]


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
        (f"{ENTERPRISE.lower()}:manager", [{"value": "m1", "$ref": "r"}], {"value": "m1", "$ref": "r"}),
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
