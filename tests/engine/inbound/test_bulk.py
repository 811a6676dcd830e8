"""Bulk requests without a server: what `parse_bulk` refuses, the order `run_bulk` runs operations in,
bulkId references resolved in paths and data, failOnErrors."""

from __future__ import annotations

from typing import Any

import pytest

from engine.inbound.bulk import BULK_REQUEST, BulkOperation, Done, parse_bulk, run_bulk
from engine.inbound.errors import ScimProblem


def request(*operations: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST], "Operations": list(operations), **extra}


def post(bulk_id: str, endpoint: str = "Users", **data: Any) -> dict[str, Any]:
    return {"method": "POST", "path": f"/{endpoint}", "bulkId": bulk_id, "data": data}


class Recorder:
    """Runs operations by giving each POST the id `id-<bulkId>`; refuses the bulkIds in `refuse`."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.ran: list[BulkOperation] = []
        self.refuse = refuse

    def __call__(self, op: BulkOperation) -> Done:
        self.ran.append(op)
        if op.bulk_id in self.refuse:
            raise ScimProblem(409, "uniqueness", f"{op.bulk_id} taken")
        if op.method == "POST":
            return Done(status=201, resource_id=f"id-{op.bulk_id}", version='W/"1"')
        return Done(status=204 if op.method == "DELETE" else 200, resource_id=op.resource_id)


def location(endpoint: str, resource_id: str) -> str:
    return f"https://x/{endpoint}/{resource_id}"


def test_an_operation_naming_a_later_post_runs_after_it_with_the_id_put_in() -> None:
    parsed = parse_bulk(
        request(
            post("g", "Groups", displayName="G", members=[{"value": "bulkId:a"}, {"value": "bulkId:b"}]),
            {"method": "DELETE", "path": "/Users/bulkId:b"},
            post("a", userName="a"),
            post("b", userName="b"),
        )
    )
    perform = Recorder()
    answers = run_bulk(parsed, perform, location)
    assert [op.index for op in perform.ran] == [2, 3, 0, 1]
    assert perform.ran[2].data["members"] == [{"value": "id-a"}, {"value": "id-b"}]
    assert perform.ran[3].resource_id == "id-b"
    assert list(answers) == [0, 1, 2, 3]  # answered in the request's order
    assert answers[0] == {
        "method": "POST",
        "bulkId": "g",
        "version": 'W/"1"',
        "location": "https://x/Groups/id-g",
        "status": "201",
    }
    assert answers[1] == {"method": "DELETE", "location": "https://x/Users/id-b", "status": "204"}


def test_a_cycle_and_a_reference_to_a_failed_post_are_409() -> None:
    parsed = parse_bulk(
        request(
            post("x", "Groups", displayName="X", members=[{"value": "bulkId:y"}]),
            post("y", "Groups", displayName="Y", members=[{"value": "bulkId:x"}]),
            post("taken", userName="t"),
            {"method": "PUT", "path": "/Users/bulkId:taken", "data": {"userName": "t"}},
        )
    )
    perform = Recorder(refuse=("taken",))
    answers = run_bulk(parsed, perform, location)
    assert {i: a["status"] for i, a in answers.items()} == {0: "409", 1: "409", 2: "409", 3: "409"}
    assert "cycle" in answers[0]["response"]["detail"] and "taken" in answers[3]["response"]["detail"]
    assert [op.index for op in perform.ran] == [2]


def test_fail_on_errors_stops_and_leaves_the_rest_out() -> None:
    parsed = parse_bulk(request(post("a"), post("b"), post("c"), post("d"), failOnErrors=2))
    perform = Recorder(refuse=("a", "c"))
    answers = run_bulk(parsed, perform, location)
    assert [a["status"] for a in answers.values()] == ["409", "201", "409"]
    assert answers[0]["response"]["scimType"] == "uniqueness"


@pytest.mark.parametrize(
    ("body", "status", "scim_type", "words"),
    [
        ("[]", 400, "invalidSyntax", "not a BulkRequest"),
        (request(post("a"), {"method": "GET", "path": "/Users/1"}), 400, "invalidValue", "Operations[1]"),
        (request({"method": "PATCH", "path": "/Users/1/x", "data": {}}), 400, "invalidPath", "/Users/1/x"),
        (request({"method": "PUT", "path": "/Users/1"}), 400, "invalidSyntax", "needs data"),
        (request(post("a"), {"method": "DELETE", "path": "/Users/bulkId:zz"}), 400, "invalidValue", "zz"),
        (request(post("a"), version=1, failOnErrors=True), 400, "invalidValue", "failOnErrors"),
        (request(*[post(str(i)) for i in range(11)]), 413, None, "10"),
    ],
)
def test_a_malformed_request_is_refused_whole(
    body: Any, status: int, scim_type: str | None, words: str
) -> None:
    with pytest.raises(ScimProblem) as refused:
        parse_bulk([] if body == "[]" else body, max_operations=10)
    assert (refused.value.status, refused.value.scim_type) == (status, scim_type)
    assert words in refused.value.detail
