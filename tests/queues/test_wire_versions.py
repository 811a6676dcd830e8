"""Contract tests of the wire versions: the frozen v4 codec (`queues.wire_v4`) against the previous
build's own contracts module (`previous_contracts`, verbatim) and against the current one, both ways,
for every kind of message; and which version `PeerVersions` has a message written in."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from common.errors import ConfigError, DecodeError
from queues import contracts, wire, wire_v4
from queues.contracts import ListPage, ListRequest, Operation, Result
from queues.versions import SPOKEN, PeerVersions, speaker_headers, speaker_of, spoken_from
from tests.queues import previous_contracts as previous


def _op(**changes: Any) -> dict[str, Any]:
    fields = {
        "op_id": "c1-1",
        "job": "groups",
        "target": "scim",
        "cycle_id": "c1",
        "action": "update",
        "object_type": "group",
        "source_id": "G1",
        "attributes": {"displayName": "Staff", "mail": "staff@example.org"},
        "desired_hash": "0123456789abcdef",
        "target_id": "t-G1",
        "matching": [["displayName", "Staff"]],
        "members_add": ["t-U1", "t-U2"],
        "members_remove": ["t-U9"],
        "members": {"U1": "t-U1", "U2": "t-U2"},
        "members_groups": ["t-U2"],
        "listed": ["displayName"],
        "attempt": 2,
        "emitted_at": 1_700_000_000.25,
    }
    return {**fields, **changes}


def _result() -> dict[str, Any]:
    return {
        "op_id": "c1-1",
        "job": "groups",
        "target": "scim",
        "cycle_id": "c1",
        "source_id": "G1",
        "action": "update",
        "status": "failed",
        "attempts": 2,
        "emitted_at": 1_700_000_000.25,
        "completed_at": 1_700_000_001.5,
        "target_id": "t-G1",
        "applied_hash": None,
        "error_class": "PermanentError",
        "error_code": "400",
        "error_message": "no",
        "connector_ms": 12.5,
        "members": {"U1": "t-U1"},
    }


def _request() -> dict[str, Any]:
    return {
        "request_id": "list-1",
        "job": "people",
        "target": "scim",
        "object_type": "user",
        "attributes": ["userName", "mail"],
        "emitted_at": 1.5,
        "answer_by": 11.5,
    }


def _page(**changes: Any) -> dict[str, Any]:
    return {
        "request_id": "list-1",
        "answer_id": "a1",
        "target": "scim",
        "number": 0,
        "last": True,
        "fields": ["userName", "mail"],
        "objects": [["id-1", "ada", ["a@example.org"]], ["id-2", None, []]],
        "error": None,
        **changes,
    }


def _same(current: Any, old: Any) -> None:
    """A value of this build equals one of the previous build's, field by field (v4's fields)."""
    for f in dataclasses.fields(old):
        assert getattr(current, f.name) == getattr(old, f.name), f.name


def test_operations_in_v4_are_what_the_previous_build_writes_and_reads() -> None:
    mine, theirs = Operation(**_op()), previous.Operation(**_op())
    body = wire.encode_operations("scim", [mine], 4)
    assert body == previous.encode_operations("scim", [theirs])
    _same(mine, previous.decode_operations(body)[0])
    assert wire.decode_work(previous.encode_operations("scim", [theirs])) == (4, [mine])
    assert wire_v4.decode_operations(body) == [mine]


def test_results_in_v4_are_what_the_previous_build_writes_and_reads() -> None:
    mine, theirs = Result(**_result()), previous.Result(**_result())
    body = wire.encode_results([mine], 4)
    assert body == previous.encode_results([theirs])
    _same(mine, previous.decode_results(body)[0])
    assert wire.decode_reports(previous.encode_results([theirs])) == (4, [mine])


def test_list_requests_in_v4_are_what_the_previous_build_writes_and_reads() -> None:
    mine, theirs = ListRequest(**_request()), previous.ListRequest(**_request())
    body = wire.encode_list_request(mine, 4)
    assert body == previous.encode_list_request(theirs)
    _same(mine, previous.decode_work(body))
    assert wire.decode_work(previous.encode_list_request(theirs)) == (4, mine)


def test_listing_pages_in_v4_are_what_the_previous_build_writes_and_reads() -> None:
    mine, theirs = ListPage(**_page()), previous.ListPage(**_page())
    body = wire.encode_page(mine, 4)
    assert body == previous.encode_page(theirs)
    _same(mine, previous.decode_reports(body))
    assert wire.decode_reports(previous.encode_page(theirs)) == (4, mine)


def test_a_v4_page_that_cannot_be_read_names_its_request() -> None:
    body = previous.encode_page(previous.ListPage(**_page(objects=[])))
    broken = body.replace(b'"last":true', b'"last":"yes"')
    with pytest.raises(contracts.PageError) as caught:
        wire.decode_reports(broken)
    assert caught.value.request_id == "list-1"


@pytest.mark.parametrize(
    ("encode", "decode"),
    [
        (
            lambda: contracts.encode_operations("scim", [Operation(**_op(disabled=True))]),
            wire.decode_work,
        ),
        (lambda: contracts.encode_results([Result(**_result())]), wire.decode_reports),
        (lambda: contracts.encode_list_request(ListRequest(**_request())), wire.decode_work),
        (lambda: contracts.encode_page(ListPage(**_page())), wire.decode_reports),
    ],
    ids=["ops", "results", "list", "listing"],
)
def test_every_kind_in_v5_is_read_as_v5_and_dead_lettered_by_a_v4_only_reader(
    encode: Any, decode: Any
) -> None:
    body = encode()
    version, _ = decode(body)
    assert version == 5
    with pytest.raises(DecodeError, match="does not speak"):
        decode(body, (4,))
    with pytest.raises(DecodeError, match="unknown envelope version 5"):
        (previous.decode_work if decode is wire.decode_work else previous.decode_reports)(body)


def test_an_operation_that_leaves_its_account_disabled_is_never_written_in_v4() -> None:
    op = Operation(**_op(action="create", object_type="user", disabled=True))
    with pytest.raises(wire_v4.Inexpressible, match="disabled"):
        wire.encode_operations("scim", [op], 4)
    assert wire.decode_work(wire.encode_operations("scim", [op]))[1] == [op]


def test_a_version_nobody_speaks_is_refused_with_the_versions_spoken() -> None:
    body = contracts.encode_results([Result(**_result())]).replace(b'"v":5', b'"v":6', 1)
    with pytest.raises(DecodeError, match="unknown envelope version 6, this build speaks 4, 5"):
        wire.decode_reports(body)
    with pytest.raises(ValueError, match="cannot encode wire version 3"):
        wire.encode_results([], 3)


def test_wire_versions_from_the_environment() -> None:
    assert spoken_from(None) == spoken_from("") == SPOKEN == (4, 5)
    assert spoken_from("4") == (4,)
    assert spoken_from(" 5,4 ") == (4, 5)
    with pytest.raises(ConfigError, match=r"ROSTER_WIRE_VERSIONS: this build cannot speak \[3\]"):
        spoken_from("3,4")
    with pytest.raises(ConfigError, match="not a list"):
        spoken_from("v4")


def test_the_headers_say_who_speaks_what() -> None:
    assert speaker_of(speaker_headers("w1", (4, 5))) == ("w1", (4, 5))
    assert speaker_of({"x-roster-peer": b"w1", "x-roster-spoken": b"4"}) == ("w1", (4,))
    assert speaker_of({}) is None
    assert speaker_of({"x-roster-peer": "w1", "x-roster-spoken": "x"}) is None


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nothing_known_means_the_previous_version() -> None:
    assert PeerVersions().publish_version("worker", target="t", consumers=1) == 4
    assert PeerVersions().publish_version("worker") == 4


def test_the_new_version_once_every_consumer_is_a_worker_known_to_speak_it() -> None:
    peers = PeerVersions()
    peers.heard("w1", "worker", (4, 5), target="t")
    assert peers.publish_version("worker", target="t", consumers=2) == 4  # the other may be previous
    peers.heard("w2", "worker", (4, 5), target="t")
    assert peers.publish_version("worker", target="t", consumers=2) == 5
    assert peers.publish_version("worker", target="other", consumers=1) == 4  # nobody heard serving it


def test_one_previous_worker_holds_the_previous_version_until_it_is_forgotten_or_gone() -> None:
    clock = Clock()
    peers = PeerVersions(forget_after_s=60, clock=clock)
    peers.heard("old", "worker", (4,), target="t")
    peers.heard("new", "worker", (4, 5), target="t")
    assert peers.publish_version("worker", target="t", consumers=1) == 4
    clock.now = 59
    peers.heard("new", "worker", (4, 5), target="t")
    assert peers.publish_version("worker", target="t", consumers=1) == 4
    clock.now = 61
    assert peers.publish_version("worker", target="t", consumers=1) == 5
    peers.seen("old", "worker", (4,), targets=["t"])  # presence: known until gone, however old
    clock.now = 1000
    peers.heard("new", "worker", (4, 5), target="t")
    assert peers.publish_version("worker", target="t", consumers=1) == 4
    peers.gone("old")
    assert peers.publish_version("worker", target="t", consumers=1) == 5


def test_presence_without_targets_constrains_every_target_but_counts_for_none() -> None:
    peers = PeerVersions()
    peers.seen("p", "worker", (4, 5))
    assert peers.publish_version("worker", target="t", consumers=1) == 4
    peers.heard("p", "worker", (4, 5), target="t")  # presence knows p: its targets stay unknown
    assert peers.publish_version("worker", target="t", consumers=1) == 4
    peers.seen("p", "worker", (4, 5), targets=["t"])
    assert peers.publish_version("worker", target="t", consumers=1) == 5
    assert peers.publish_version("engine") == 4  # no engine known


def test_an_engine_limited_to_the_previous_version_never_writes_the_new_one() -> None:
    peers = PeerVersions(spoken=(4,))
    peers.heard("w", "worker", (4, 5), target="t")
    assert peers.publish_version("worker", target="t", consumers=1) == 4
