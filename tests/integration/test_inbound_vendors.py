"""The inbound SCIM service answering Microsoft Entra ID's and Okta's requests as their pages print them,
with the statuses and bodies those pages say the provider expects back. Each test names the page and
its section; the PATCH bodies themselves are replayed in tests/engine/inbound/test_quirks.py.

Microsoft, "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra ID",
https://learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
(TUTORIAL below). Okta, "Okta and SCIM Version 2.0",
https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20 (OKTA below).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from common.peers.scim_schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA
from engine.inbound.quirks import ENTRA_GROUP_SCHEMA
from engine.store.mirror import Mirror
from tests.integration.pipeline import target_rows
from tests.integration.test_inbound import Client, config, served

LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def scoped(tmp_path: Path) -> dict[str, Any]:
    """The people job in scope on `active`, as docs/inbound.md has it, so a deactivated user is
    deprovisioned (disabled) in the target and a reactivated one enabled again."""
    raw = config(tmp_path)
    raw["jobs"][0]["scoping"] = [{"clauses": [{"attribute": "active", "operator": "IS TRUE"}]}]
    return raw


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def entra_user() -> dict[str, Any]:
    """TUTORIAL, "Create User", the request."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
        "active": True,
        "emails": [
            {
                "primary": True,
                "type": "work",
                "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com",
            }
        ],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
    }


def okta_user() -> dict[str, Any]:
    """OKTA, "Create the User", the request."""
    return {
        "schemas": [USER_SCHEMA],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }


async def query(client: Client, path: str) -> dict[str, Any]:
    status, body = await client.call("GET", path)
    assert status == 200, body
    assert body["schemas"] == [LIST]
    return dict(body)


# Microsoft Entra ID


async def test_entra_test_connection_for_a_user_that_is_not_there_gets_an_empty_list_response(
    tmp_path: Path,
) -> None:
    # TUTORIAL, "Integrate your SCIM endpoint with the Microsoft Entra provisioning service": Test
    # Connection queries a user that does not exist by a random GUID in the matching property and
    # expects "HTTP 200 OK with an empty SCIM ListResponse message"; "Get User by query - Zero results"
    async with served(tmp_path, config(tmp_path)) as (_p, client, session):
        await client.call("POST", "/Users", entra_user())
        for attribute in ("userName", "externalId"):
            found = await query(client, f'/Users?filter={attribute} eq "{uuid.uuid4()}"')
            assert (found["totalResults"], found["Resources"], found["startIndex"]) == (0, [], 1)
        async with session.get(
            f"{client.url}/Users?filter=userName%20eq%20%22non-existent%20user%22",
            headers={"Authorization": f"Bearer {client.token}"},
        ) as answer:
            # "General": the header for all the responses is application/scim+json
            assert answer.status == 200 and answer.content_type == "application/scim+json"


async def test_entra_creates_finds_changes_disables_and_deletes_a_user_as_the_tutorial_shows(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    async with served(tmp_path, scoped(tmp_path)) as (p, client, _session):
        # "Create User": 201 with the user and its id (the request's meta is the service's to set)
        status, created = await client.call("POST", "/Users", entra_user())
        assert status == 201 and created["id"] and created["meta"]["resourceType"] == "User"
        user_id = created["id"]
        assert (await target_rows(url))["0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"]["last_name"] == "familyName"

        # "Get User": 200 with the user; an unknown id is 404 in the error shape
        status, one = await client.call("GET", f"/Users/{user_id}")
        assert status == 200 and one["userName"] == "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
        status, missing = await client.call("GET", "/Users/5171a35d82074e068ce2")
        assert status == 404 and missing["schemas"] == [ERROR] and missing["status"] == "404"

        # "Get User by query"; "/Users": an attribute used for uniqueness, such as the work email, must
        # work in a filter too
        by_name = await query(
            client, '/Users?filter=userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"'
        )
        email = "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"
        by_email = await query(client, f'/Users?filter=emails[type eq "work"].value eq "{email}"')
        for found in (by_name, by_email):
            assert found["totalResults"] == 1 and [r["id"] for r in found["Resources"]] == [user_id]

        # "Update User [Multi-valued properties]" and "[Single-valued properties]": 200 with the user
        status, updated = await client.call(
            "PATCH",
            f"/Users/{user_id}",
            patch(
                {
                    "op": "Replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "updatedEmail@microsoft.com",
                },
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            ),
        )
        assert status == 200 and updated["emails"][0]["value"] == "updatedEmail@microsoft.com"
        assert updated["name"]["familyName"] == "updatedFamilyName"
        renamed = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
        status, updated = await client.call(
            "PATCH", f"/Users/{user_id}", patch({"op": "Replace", "path": "userName", "value": renamed})
        )
        assert status == 200 and updated["userName"] == renamed

        # "Handling provisioning and deprovisioning of users", example 5: the manager, unqualified
        boss = {**entra_user(), "userName": "boss@testuser.com", "externalId": "boss"}
        manager = (await client.call("POST", "/Users", boss))[1]
        status, updated = await client.call(
            "PATCH",
            f"/Users/{user_id}",
            patch(
                {
                    "op": "Add",
                    "path": "manager",
                    "value": [{"$ref": f"http://.../scim/Users/{manager['id']}", "value": manager["id"]}],
                }
            ),
        )
        assert status == 200 and updated[ENTERPRISE_SCHEMA]["manager"]["value"] == manager["id"]

        # "Disable User": 200 with active false; "Understand the Microsoft Entra SCIM implementation": a
        # user is returned whether or not it is active
        status, disabled = await client.call(
            "PATCH", f"/Users/{user_id}", patch({"op": "Replace", "path": "active", "value": False})
        )
        assert status == 200 and disabled["active"] is False
        assert (await client.call("GET", f"/Users/{user_id}"))[1]["active"] is False
        assert (await query(client, f'/Users?filter=userName eq "{renamed}"'))["totalResults"] == 1
        assert (await target_rows(url))["0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"]["active"] in (0, False)
        # and restored, here in the form without aadOptscim062020 ("Known issues ...", "Requests made
        # to disable users")
        status, enabled = await client.call(
            "PATCH", f"/Users/{user_id}", patch({"op": "Replace", "path": "active", "value": "True"})
        )
        assert status == 200 and enabled["active"] is True
        assert (await target_rows(url))["0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"]["active"] in (1, True)

        # "Delete User": 204, and the user is gone
        status, body = await client.call("DELETE", f"/Users/{user_id}")
        assert (status, body) == (204, None)
        assert (await client.call("GET", f"/Users/{user_id}"))[0] == 404
        assert await Mirror(p.state).count("User") == 1
        assert (await target_rows(url))["0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"]["active"] in (0, False)


async def test_entra_creates_a_group_with_its_second_schema_and_changes_it_with_204_answers(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, config(tmp_path)) as (_p, client, _session):
        member = (await client.call("POST", "/Users", entra_user()))[1]["id"]
        # "Create Group": the request lists a Microsoft schema beside the core one; 201 with the group
        status, created = await client.call(
            "POST",
            "/Groups",
            {
                "schemas": [GROUP_SCHEMA, ENTRA_GROUP_SCHEMA],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": {"resourceType": "Group"},
            },
        )
        assert status == 201 and created["id"] and created["displayName"] == "displayName"
        assert created["schemas"] == [GROUP_SCHEMA, ENTRA_GROUP_SCHEMA]  # stored as sent ("General")
        group = f"/Groups/{created['id']}"

        # "Update Group [Add Members]", "[Non-member attributes]", "[Remove Members]": each 204; "Group
        # Operations": a group PATCH "should yield an HTTP 204 No Content", not the members again
        add = {"op": "Add", "path": "members", "value": [{"$ref": None, "value": member}]}
        assert await client.call("PATCH", group, patch(add)) == (204, None)
        name = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
        rename = {"op": "Replace", "path": "displayName", "value": name}
        assert await client.call("PATCH", group, patch(rename)) == (204, None)

        # "Get Group" and "Get Group by displayName", both with excludedAttributes=members
        status, one = await client.call("GET", f"{group}?excludedAttributes=members")
        assert status == 200 and one["displayName"] == name and "members" not in one
        found = await query(client, f'/Groups?excludedAttributes=members&filter=displayName eq "{name}"')
        assert found["totalResults"] == 1 and "members" not in found["Resources"][0]
        assert [m["value"] for m in (await client.call("GET", group))[1]["members"]] == [member]

        remove = {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": member}]}
        assert await client.call("PATCH", group, patch(remove)) == (204, None)
        assert "members" not in (await client.call("GET", group))[1]
        # RFC 7644 §3.5.2: asked for attributes, a PATCH answers 200 with them
        status, shown = await client.call("PATCH", f"{group}?attributes=displayName", patch(rename))
        assert status == 200 and shown["displayName"] == name

        # "Delete Group": 204
        assert await client.call("DELETE", group) == (204, None)
        assert (await client.call("GET", group))[0] == 404


# Okta


async def test_okta_looks_up_a_user_that_is_not_there_and_gets_the_empty_list_response_it_shows(
    tmp_path: Path,
) -> None:
    # OKTA, "Determine if the User already exists": the request and the empty answer, as printed
    async with served(tmp_path, config(tmp_path)) as (_p, client, _session):
        found = await query(
            client, "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100"
        )
        assert found == {
            "schemas": [LIST],
            "totalResults": 0,
            "startIndex": 1,
            "itemsPerPage": 0,
            "Resources": [],
        }


async def test_okta_creates_a_user_updates_it_with_put_and_deactivates_it_with_patch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    async with served(tmp_path, scoped(tmp_path)) as (_p, client, _session):
        # "Create the User": 201 with the created user (an empty body is an error to Okta)
        status, created = await client.call("POST", "/Users", okta_user())
        assert status == 201 and created["id"] and created["userName"] == "test.user@okta.local"
        assert created["active"] is True and "password" not in created
        user = f"/Users/{created['id']}"
        found = await query(client, '/Users?filter=userName eq "test.user@okta.local"&startIndex=1&count=100')
        assert [r["id"] for r in found["Resources"]] == [created["id"]]

        # "Update a specific User (PUT)": Okta sends back what it read, id and meta included, changed;
        # the answer "needs to be the updated User object"
        status, read = await client.call("GET", user)
        assert status == 200
        replaced = {
            **read,
            "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
            "meta": {"resourceType": "User"},
        }
        status, updated = await client.call("PUT", user, replaced)
        assert status == 200 and updated["name"]["middleName"] == "Excited" and updated["id"] == created["id"]
        assert (await target_rows(url))["00ujl29u0le5T6Aj10h7"]["first_name"] == "Another"

        # "Update a specific User (PATCH)": deactivation, answered with the updated user
        status, deactivated = await client.call(
            "PATCH", user, patch({"op": "replace", "value": {"active": False}})
        )
        assert status == 200 and deactivated["active"] is False and deactivated["id"] == created["id"]
        assert (await target_rows(url))["00ujl29u0le5T6Aj10h7"]["active"] in (0, False)
        # an App Integration Wizard app sends every user update, reactivation too, as a PUT
        status, reactivated = await client.call("PUT", user, {**replaced, "active": True})
        assert status == 200 and reactivated["active"] is True
        assert (await target_rows(url))["00ujl29u0le5T6Aj10h7"]["active"] in (1, True)


async def test_okta_reads_users_page_by_page_in_the_same_order_each_time(tmp_path: Path) -> None:
    # OKTA, "Retrieve Users": startIndex and count, totalResults as integers, the same order whatever
    # the page size
    async with served(tmp_path, config(tmp_path)) as (_p, client, _session):
        for i in range(5):
            user = {**okta_user(), "userName": f"user{i}@okta.local", "externalId": f"00u{i}"}
            assert (await client.call("POST", "/Users", user))[0] == 201
        whole = await query(client, "/Users?startIndex=1&count=100")
        ids = [r["id"] for r in whole["Resources"]]
        assert whole["totalResults"] == 5 and len(ids) == 5
        paged = []
        for start in (1, 3, 5):
            page = await query(client, f"/Users?startIndex={start}&count=2")
            assert (page["totalResults"], page["startIndex"]) == (5, start)
            assert all(isinstance(page[k], int) for k in ("totalResults", "startIndex", "itemsPerPage"))
            paged += [r["id"] for r in page["Resources"]]
        assert paged == ids


async def test_okta_creating_a_user_whose_user_name_is_held_is_a_409_in_scim_s_error_shape(
    tmp_path: Path,
) -> None:
    # OKTA, "Create the User": "If the User object that Okta tries to create already exists ... respond
    # with an error schema", 409 Conflict
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):
        assert (await client.call("POST", "/Users", okta_user()))[0] == 201
        other = {**okta_user(), "userName": "TEST.USER@okta.local", "externalId": "00uother"}
        status, refused = await client.call("POST", "/Users", other)
        assert status == 409 and refused["schemas"] == [ERROR]
        assert (refused["status"], refused["scimType"]) == ("409", "uniqueness")
        assert await Mirror(p.state).count("User") == 1


async def test_okta_recreating_a_user_gets_the_same_user_and_a_different_one_409(tmp_path: Path) -> None:
    # OKTA, "Create the User": Okta asks 409 for a userName that exists. Roster answers a POST of
    # the same content with the user it holds (201, the same id): a client whose first answer was
    # lost and who retries gets its user, as issue 19 asks of a retried request. Okta looks the
    # user up by userName before it creates ("Determine if the User already exists"), so it meets
    # this only in that retry; a POST that differs in anything gets Okta's 409.
    async with served(tmp_path, config(tmp_path)) as (_p, client, _session):
        first = await client.call("POST", "/Users", okta_user())
        again = await client.call("POST", "/Users", okta_user())
        assert first[0] == again[0] == 201 and first[1]["id"] == again[1]["id"]
        status, body = await client.call("POST", "/Users", {**okta_user(), "displayName": "Someone Else"})
        assert status == 409 and body["scimType"] == "uniqueness"


async def test_okta_pushes_a_group_renames_it_changes_its_members_and_unlinks_it(tmp_path: Path) -> None:
    async with served(tmp_path, config(tmp_path)) as (_p, client, _session):
        leaving = (await client.call("POST", "/Users", okta_user()))[1]["id"]
        second = {**okta_user(), "userName": "second@okta.local", "externalId": "00u2"}
        joining = (await client.call("POST", "/Users", second))[1]["id"]
        # "Create Groups": 201 with the group as a GET answers it
        status, created = await client.call(
            "POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []}
        )
        assert status == 201 and created["displayName"] == "Test SCIMv2"
        group = f"/Groups/{created['id']}"
        listed = await query(client, "/Groups?startIndex=1&count=100")
        assert [g["id"] for g in listed["Resources"]] == [created["id"]]
        # "Update a specific Group name": the id repeated; "Update specific Group membership": a
        # removal and an addition in one request, then a full push with replace. Each "can also be a
        # HTTP 204 response, with no body returned"
        rename = {"op": "replace", "value": {"id": created["id"], "displayName": "Test SCIMv20"}}
        assert await client.call("PATCH", group, patch(rename)) == (204, None)
        add = {
            "op": "add",
            "path": "members",
            "value": [{"value": leaving, "display": "test.user@okta.local"}],
        }
        assert (await client.call("PATCH", group, patch(add)))[0] == 204
        change = patch(
            {"op": "remove", "path": f'members[value eq "{leaving}"]'},
            {"op": "add", "path": "members", "value": [{"value": joining, "display": "second@okta.local"}]},
        )
        assert (await client.call("PATCH", group, change))[0] == 204
        status, read = await client.call("GET", group)
        assert status == 200 and read["displayName"] == "Test SCIMv20"
        assert [m["value"] for m in read["members"]] == [joining]
        both = [{"value": joining, "display": "second@okta.local"}, {"value": leaving, "display": "t"}]
        assert (
            await client.call("PATCH", group, patch({"op": "replace", "path": "members", "value": both}))
        )[0] == 204
        assert [m["value"] for m in (await client.call("GET", group))[1]["members"]] == [joining, leaving]
        # an App Integration Wizard app sends group changes as a PUT: 200 with the group
        status, put = await client.call(
            "PUT", group, {"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv20", "members": both[:1]}
        )
        assert status == 200 and [m["value"] for m in put["members"]] == [joining]
        # "Delete a specific Group": 204
        assert await client.call("DELETE", group) == (204, None)
