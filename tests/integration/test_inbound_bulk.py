"""/Bulk of the inbound SCIM service (RFC 7644 §3.7) end to end: the operations of one request go through
the same writes as single requests, into the mirror and on to the job's SQLite table; `bulkId`
references become the ids created in the request; failOnErrors stops it; a malformed request stores
nothing; a token's rights hold per operation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.peers.scim_schemas import GROUP_SCHEMA, PATCH_SCHEMA
from engine.store.mirror import Mirror
from tests.integration.pipeline import target_rows
from tests.integration.test_inbound import TOKEN, config, served, user

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def bulk(*operations: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK], "Operations": list(operations), **extra}


def post_user(number: int, **extra: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/Users", "bulkId": f"u{number}", "data": user(number, **extra)}


async def test_users_and_a_group_naming_them_by_bulkid_land_with_the_real_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):
        group = {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "team",
            # names a User created later in the request: it waits for that POST
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Team",
                "members": [{"value": "bulkId:u0"}, {"value": "bulkId:u1"}],
            },
        }
        rename = {
            "method": "PATCH",
            "path": "/Users/bulkId:u1",
            "data": {
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "replace", "path": "name.familyName", "value": "Renamed"}],
            },
        }
        status, answer = await client.call("POST", "/Bulk", bulk(group, post_user(0), post_user(1), rename))
        assert status == 200 and answer["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]
        ops = answer["Operations"]
        assert [(o["method"], o.get("bulkId"), o["status"]) for o in ops] == [
            ("POST", "team", "201"),
            ("POST", "u0", "201"),
            ("POST", "u1", "201"),
            ("PATCH", None, "200"),
        ]
        ids = {o["bulkId"]: o["location"].rsplit("/", 1)[1] for o in ops if "bulkId" in o}
        assert ops[1]["location"] == f"{client.url}/Users/{ids['u0']}" and ops[1]["version"] == 'W/"1"'
        assert ops[3]["location"] == f"{client.url}/Users/{ids['u1']}" and ops[3]["version"] == 'W/"2"'

        mirror = Mirror(p.state)
        stored = await mirror.get("Group", ids["team"])
        assert stored is not None
        assert [m["value"] for m in stored.body["members"]] == [ids["u0"], ids["u1"]]
        rows = await target_rows(url)  # respond: applied, so the targets wrote before the answer
        assert sorted(rows) == ["E00000", "E00001"] and rows["E00001"]["last_name"] == "Renamed"

        # then a PUT and a DELETE by id, with the version as If-Match
        put = {
            "method": "PUT",
            "path": f"/Users/{ids['u0']}",
            "version": 'W/"1"',
            "data": user(0, name={"givenName": "Ana", "familyName": "Put"}),
        }
        delete = {"method": "DELETE", "path": f"/Users/{ids['u1']}"}
        stale = {"method": "DELETE", "path": f"/Users/{ids['u0']}", "version": 'W/"1"'}
        status, answer = await client.call("POST", "/Bulk", bulk(put, delete, stale))
        assert [o["status"] for o in answer["Operations"]] == ["200", "204", "412"]
        assert answer["Operations"][2]["response"]["schemas"] == [ERROR]
        rows = await target_rows(url)
        assert rows["E00000"]["last_name"] == "Put" and rows["E00001"]["active"] in (0, False)
        assert await mirror.count("User") == 1


async def test_fail_on_errors_stops_after_that_many_failures(tmp_path: Path) -> None:
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):
        taken = post_user(9, userName="user1@example.org")  # the name of u1, other content: 409
        request = bulk(post_user(1), taken, post_user(3), failOnErrors=1)
        status, answer = await client.call("POST", "/Bulk", request)
        assert status == 200
        ops = answer["Operations"]
        assert [(o["bulkId"], o["status"]) for o in ops] == [("u1", "201"), ("u9", "409")]
        assert ops[1]["response"]["scimType"] == "uniqueness" and "location" not in ops[1]
        assert await Mirror(p.state).count("User") == 1  # u3 never ran

        # without failOnErrors every operation runs; one naming a failed POST is a 409 too
        patch_failed = {
            "method": "PATCH",
            "path": "/Users/bulkId:u9",
            "data": {
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "replace", "value": {"active": False}}],
            },
        }
        status, answer = await client.call("POST", "/Bulk", bulk(taken, post_user(3), patch_failed))
        assert [o["status"] for o in answer["Operations"]] == ["409", "201", "409"]
        assert "u9" in answer["Operations"][2]["response"]["detail"]
        assert await Mirror(p.state).count("User") == 2


async def test_posts_that_name_each_other_in_a_cycle_are_refused_with_409(tmp_path: Path) -> None:
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):

        def group(name: str, other: str) -> dict[str, Any]:
            data = {"schemas": [GROUP_SCHEMA], "displayName": name, "members": [{"value": f"bulkId:{other}"}]}
            return {"method": "POST", "path": "/Groups", "bulkId": name, "data": data}

        status, answer = await client.call(
            "POST", "/Bulk", bulk(group("a", "b"), group("b", "a"), post_user(1))
        )
        assert status == 200
        assert [o["status"] for o in answer["Operations"]] == ["409", "409", "201"]
        assert "cycle" in answer["Operations"][0]["response"]["detail"]
        assert await Mirror(p.state).count("Group") == 0 and await Mirror(p.state).count("User") == 1


@pytest.mark.parametrize(
    ("body", "status", "scim_type"),
    [
        ([post_user(1)], 400, "invalidSyntax"),  # a list, not a BulkRequest
        ({"schemas": [BULK], "Operations": {"method": "POST"}}, 400, "invalidSyntax"),
        ({"Operations": [post_user(1)]}, 400, "invalidValue"),  # no schemas
        (bulk(post_user(1), {"method": "GET", "path": "/Users/x"}), 400, "invalidValue"),
        (
            bulk(post_user(1), {"method": "POST", "path": "/Schemas", "bulkId": "s", "data": {}}),
            400,
            "invalidPath",
        ),
        (bulk(post_user(1), {"method": "DELETE", "path": "/Users"}), 400, "invalidPath"),
        (bulk({"method": "POST", "path": "/Users", "data": user(1)}), 400, "invalidValue"),  # no bulkId
        (bulk(post_user(1), {"method": "DELETE", "path": "/Users/bulkId:nobody"}), 400, "invalidValue"),
        (bulk(post_user(1), post_user(1)), 400, "invalidValue"),  # a bulkId twice
        (bulk(post_user(1), failOnErrors=0), 400, "invalidValue"),
        (bulk(*[post_user(i) for i in range(1_001)]), 413, None),
    ],
)
async def test_a_malformed_bulk_request_is_refused_whole_and_stores_nothing(
    tmp_path: Path, body: Any, status: int, scim_type: str | None
) -> None:
    raw = config(tmp_path)
    raw["inbound"]["max_body_bytes"] = 2_000_000  # room for the 1,001 operations: the count is refused
    async with served(tmp_path, raw) as (p, client, _session):
        answer_status, answer = await client.call("POST", "/Bulk", body)
        assert answer_status == status, answer
        assert answer["schemas"] == [ERROR] and answer["status"] == str(status)
        assert answer.get("scimType") == scim_type
        assert await Mirror(p.state).count("User") == 0


async def test_the_limits_are_advertised_and_a_larger_body_is_413(tmp_path: Path) -> None:
    async with served(tmp_path, config(tmp_path)) as (p, client, _session):
        _, spc = await client.call("GET", "/ServiceProviderConfig")
        assert spc["bulk"] == {"supported": True, "maxOperations": 1_000, "maxPayloadSize": 1_000_000}
        status, answer = await client.call(
            "POST", "/Bulk", bulk(*[post_user(i, title="x" * 2_000) for i in range(600)])
        )
        assert status == 413 and answer["status"] == "413"
        assert await Mirror(p.state).count("User") == 0


async def test_an_operation_on_a_type_the_token_may_not_write_is_403_and_the_others_proceed(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    raw = config(tmp_path)
    raw["targets"].append({"name": "nowhere", "type": "noop"})
    raw["jobs"].append(
        {
            "name": "teams",
            "object_type": "group",
            "source": {"type": "scim_inbound"},
            "target": "nowhere",
            "mappings": [{"target": "displayName", "source": "displayName", "match": True}],
        }
    )
    assert raw["inbound"]["tokens"][0] == {"name": "idp", "token": TOKEN, "jobs": ["people"]}
    async with served(tmp_path, raw) as (p, client, _session):
        group = {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g",
            "data": {"schemas": [GROUP_SCHEMA], "displayName": "Team", "members": [{"value": "bulkId:u1"}]},
        }
        status, answer = await client.call("POST", "/Bulk", bulk(post_user(1), group, post_user(2)))
        assert status == 200
        ops = answer["Operations"]
        assert [o["status"] for o in ops] == ["201", "403", "201"]
        assert "teams" in ops[1]["response"]["detail"]
        assert await Mirror(p.state).count("Group") == 0
        assert sorted(await target_rows(url)) == ["E00001", "E00002"]
