"""Wire contracts: what the engine encodes the workers decode unchanged, and a bad body says what is wrong."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from common.errors import DecodeError
from queues.contracts import (
    OPERATION_FIELDS,
    RESULT_FIELDS,
    VERSION,
    ListPage,
    ListRequest,
    Operation,
    PageError,
    Result,
    decode_operations,
    decode_reports,
    decode_results,
    decode_work,
    encode_list_request,
    encode_operations,
    encode_page,
    encode_results,
)


def operations() -> list[Operation]:
    return [
        Operation(
            op_id="op-1",
            job="hr-to-scim",
            target="scim",
            cycle_id="c-7",
            action="create",
            object_type="user",
            source_id="E100",
            attributes={"userName": "ada@example.org", "emails": [{"value": "ada@example.org"}], "n": 3},
            desired_hash="h1",
            matching=[["userName", "ada@example.org"]],
            disabled=True,
            emitted_at=1_700_000_000.25,
        ),
        Operation(
            op_id="op-2",
            job="hr-to-scim",
            target="scim",
            cycle_id="c-7",
            action="update",
            object_type="group",
            source_id="G1",
            attributes={"displayName": "Sales"},
            desired_hash="h2",
            target_id="t-9",
            members_add=["t-1", "t-2"],
            members_remove=["t-3"],
            attempt=3,
        ),
    ]


def results() -> list[Result]:
    return [
        Result(
            op_id="op-1",
            job="hr-to-scim",
            target="scim",
            cycle_id="c-7",
            source_id="E100",
            action="create",
            status="succeeded",
            attempts=1,
            emitted_at=1_700_000_000.25,
            completed_at=1_700_000_001.5,
            target_id="t-1",
            applied_hash="h1",
            connector_ms=12.5,
        ),
        Result(
            op_id="op-2",
            job="hr-to-scim",
            target="scim",
            cycle_id="c-7",
            source_id="G1",
            action="update",
            status="failed",
            attempts=3,
            emitted_at=1.0,
            completed_at=2.0,
            error_class="PermanentError",
            error_code="400",
            error_message="invalidValue: displayName",
        ),
    ]


def envelope(**changes: object) -> bytes:
    """A valid operations envelope with `changes` applied to it (None removes a key)."""
    doc = orjson.loads(encode_operations("scim", operations()))
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return orjson.dumps(doc)


def item(**changes: object) -> bytes:
    """An operations envelope whose one row has `changes` applied (None removes a field, from the row
    and from the envelope's `fields`; a new name is added to both)."""
    doc = orjson.loads(encode_operations("scim", operations()[:1]))
    fields, row = doc["fields"], doc["items"][0]
    for key, value in changes.items():
        if key not in fields:
            fields.append(key)
            row.append(value)
        elif value is None:
            del row[fields.index(key)]
            fields.remove(key)
        else:
            row[fields.index(key)] = value
    return orjson.dumps(doc)


def row(change: object) -> bytes:
    """An operations envelope whose one row is replaced by `change`."""
    return envelope(items=[change])


def test_operations_survive_encode_and_decode_unchanged():
    assert decode_operations(encode_operations("scim", operations())) == operations()


def test_results_survive_encode_and_decode_unchanged():
    assert decode_results(encode_results(results())) == results()


def test_an_empty_batch_round_trips():
    assert decode_operations(encode_operations("scim", [])) == []
    assert decode_results(encode_results([])) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(envelope(v=VERSION + 1), f"unknown envelope version {VERSION + 1}", id="new-version"),
        pytest.param(envelope(v=None), "unknown envelope version None", id="no-version"),
        pytest.param(b"\x00not json", "not JSON", id="not-json"),
        pytest.param(b"[1, 2]", "not a JSON object", id="not-an-object"),
        pytest.param(envelope(kind="results"), "expected an envelope of ops, got 'results'", id="wrong-kind"),
        pytest.param(envelope(items={"op_id": "x"}), "no list of items", id="items-not-a-list"),
        pytest.param(row("op"), "Operation item 1 is not a row of 19 fields: a str", id="item-not-a-row"),
        pytest.param(
            row(["op-1", "job"]), "Operation item 1 is not a row of 19 fields: it has 2", id="short-row"
        ),
        pytest.param(envelope(fields=None), "no list of fields", id="no-fields"),
        pytest.param(item(op_id=None), "missing ['op_id'], unknown []", id="missing-field"),
        pytest.param(item(colour="red"), "missing [], unknown ['colour']", id="unknown-field"),
        pytest.param(
            envelope(fields=list(reversed(OPERATION_FIELDS))),
            "fields are out of order",
            id="reordered-fields",
        ),
        pytest.param(item(action="explode"), "unknown action 'explode'", id="unknown-action"),
        pytest.param(item(attempt=0), "attempt must be >= 1", id="attempt-zero"),
        pytest.param(
            item(attempt="2"), "Operation item 1 has a value of a wrong type", id="attempt-not-a-number"
        ),
    ],
)
def test_a_bad_operations_body_raises_decode_error_saying_what_is_wrong(body: bytes, says: str):
    with pytest.raises(DecodeError) as caught:
        decode_operations(body)

    assert says in str(caught.value)


def test_a_results_envelope_of_operations_raises_decode_error_naming_the_kind():
    with pytest.raises(DecodeError, match="expected an envelope of results, got 'ops'"):
        decode_results(encode_operations("scim", operations()))


def test_a_result_with_an_unknown_status_raises_decode_error():
    doc = orjson.loads(encode_results(results()[:1]))
    doc["items"][0][RESULT_FIELDS.index("status")] = "exploded"

    with pytest.raises(DecodeError, match="unknown status 'exploded'"):
        decode_results(orjson.dumps(doc))


@pytest.mark.parametrize("change", ["drop-a-field", "wrong-type"])
def test_a_decode_error_never_shows_the_values_of_a_row(change: str):
    doc = orjson.loads(encode_operations("scim", operations()[:1]))
    row = doc["items"][0]
    for name in ("op_id", "job", "target", "cycle_id"):  # short, so a row's excerpt would reach it
        row[OPERATION_FIELDS.index(name)] = "x"
    row[OPERATION_FIELDS.index("attributes")] = {"password": "s3cret-Value"}
    if change == "drop-a-field":
        row.pop()
    else:
        row[OPERATION_FIELDS.index("attempt")] = "two"

    with pytest.raises(DecodeError) as caught:
        decode_operations(orjson.dumps(doc))

    assert "s3cret" not in str(caught.value)


def list_request() -> ListRequest:
    return ListRequest(
        request_id="list-1",
        job="hr-to-scim",
        target="scim",
        object_type="user",
        attributes=["externalId", "userName"],
        emitted_at=1_700_000_000.5,
    )


def page(**overrides: Any) -> ListPage:
    fields: dict[str, Any] = {
        "request_id": "list-1",
        "answer_id": "a1",
        "target": "scim",
        "number": 0,
        "last": False,
        "fields": ["externalId", "userName"],
        "objects": [["t-1", "E1", "ada@example.org"], ["t-2", None, ["b@example.org", "c@example.org"]]],
    }
    fields.update(overrides)
    return ListPage(**fields)


def test_a_list_request_and_its_pages_decode_to_what_was_encoded() -> None:
    assert decode_work(encode_list_request(list_request())) == list_request()
    assert decode_reports(encode_page(page())) == page()
    failed = page(last=True, objects=[], error="GET /Users: HTTP 500")
    assert decode_reports(encode_page(failed)) == failed
    assert decode_work(encode_operations("scim", operations())) == operations()
    assert decode_reports(encode_results(results())) == results()


def _page_doc(**changes: Any) -> bytes:
    doc = orjson.loads(encode_page(page()))
    items = changes.pop("items", None)
    if items is not None:
        doc["items"] = items
    doc["page"].update(changes)
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(_page_doc(items=[["t-1", "E1"]]), "object 1 is not a row of 3 values", id="short-row"),
        pytest.param(_page_doc(items=[["", "E1", "x"]]), "object 1 has no id", id="no-id"),
        pytest.param(
            _page_doc(items=[["t-1", {"secret": "s3cret-Value"}, "x"]]),
            "object 1 has a dict for 'externalId'",
            id="object-value",
        ),
        pytest.param(_page_doc(number=-1), "number must be an integer >= 0", id="negative-number"),
        pytest.param(_page_doc(error="boom"), "error must be text, on the last page", id="error-not-last"),
        pytest.param(_page_doc(colour="red"), "unknown ['colour']", id="unknown-key"),
        pytest.param(_page_doc(items={"a": 1}), "no list of items", id="items-not-a-list"),
    ],
)
def test_a_bad_listing_page_raises_a_page_error_naming_its_request(body: bytes, says: str) -> None:
    with pytest.raises(PageError) as caught:
        decode_reports(body)

    assert says in str(caught.value)
    assert caught.value.request_id == "list-1"
    assert "s3cret" not in str(caught.value)


def test_a_bad_list_request_raises_decode_error() -> None:
    doc = orjson.loads(encode_list_request(list_request()))
    doc["request"]["attributes"] = "userName"
    with pytest.raises(DecodeError, match="attributes must be a list of names"):
        decode_work(orjson.dumps(doc))
    del doc["request"]["attributes"]
    with pytest.raises(DecodeError, match=r"missing \['attributes'\]"):
        decode_work(orjson.dumps(doc))
