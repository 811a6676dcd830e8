"""Wire version 4, frozen: the previous version's envelopes, read into and written from today's values.

Recovered from `queues/contracts.py` as it stood at version 4 (before 260ceb2, `Operation.disabled`)
and changed only to build the current dataclasses: its columns and keys are spelled out here rather
than taken from the dataclasses, so the version stays what it was whatever they gain, and rows are built
by keyword so a field added since (with its default) is filled. FROZEN: never edit this module; delete
it when the build that speaks it no longer has to (see README, "Rolling upgrades").

Version 4 lacks `Operation.disabled`: encoding an operation that leaves its account disabled raises
`Inexpressible` rather than send it as one that enables it (the engine keeps such operations back
first: `engine.pipeline.wire`).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Final, TypeVar

import orjson

from common.errors import DecodeError
from queues.contracts import ListPage, ListRequest, Operation, PageError, Result

VERSION: Final = 4

_T = TypeVar("_T")

OPERATION_FIELDS: Final = (
    "op_id",
    "job",
    "target",
    "cycle_id",
    "action",
    "object_type",
    "source_id",
    "attributes",
    "desired_hash",
    "target_id",
    "matching",
    "members_add",
    "members_remove",
    "members",
    "members_groups",
    "listed",
    "attempt",
    "emitted_at",
)
RESULT_FIELDS: Final = (
    "op_id",
    "job",
    "target",
    "cycle_id",
    "source_id",
    "action",
    "status",
    "attempts",
    "emitted_at",
    "completed_at",
    "target_id",
    "applied_hash",
    "error_class",
    "error_code",
    "error_message",
    "connector_ms",
    "members",
)
_LIST_REQUEST_FIELDS: Final = (
    "request_id",
    "job",
    "target",
    "object_type",
    "attributes",
    "emitted_at",
    "answer_by",
)
_PAGE_FIELDS: Final = ("request_id", "answer_id", "target", "number", "last", "fields", "error")
_LIST_REQUEST_KEYS: Final = frozenset(_LIST_REQUEST_FIELDS)
_PAGE_KEYS: Final = frozenset(_PAGE_FIELDS)
_operation_row = attrgetter(*OPERATION_FIELDS)
_result_row = attrgetter(*RESULT_FIELDS)


class Inexpressible(ValueError):
    """A value that version 4 cannot carry: encoding it would lose part of it."""


def encode_operations(target: str, ops: Sequence[Operation]) -> bytes:
    for op in ops:
        if op.disabled:
            raise Inexpressible(
                f"operation {op.op_id} leaves its account disabled (disabled), which version 4 cannot carry"
            )
    envelope = {
        "v": VERSION,
        "kind": "ops",
        "target": target,
        "fields": OPERATION_FIELDS,
        "items": list(map(_operation_row, ops)),
    }
    return orjson.dumps(envelope, default=_wire)


def encode_results(results: Sequence[Result]) -> bytes:
    envelope = {
        "v": VERSION,
        "kind": "results",
        "fields": RESULT_FIELDS,
        "items": list(map(_result_row, results)),
    }
    return orjson.dumps(envelope)


def encode_list_request(request: ListRequest) -> bytes:
    """A list request travels on the target's queue of operations, in an envelope of its own kind."""
    fields = {name: getattr(request, name) for name in _LIST_REQUEST_FIELDS}
    envelope = {"v": VERSION, "kind": "list", "target": request.target, "request": fields}
    return orjson.dumps(envelope)


def encode_page(page: ListPage) -> bytes:
    """A listing page travels on the results queue; its objects are the envelope's items."""
    head = {name: getattr(page, name) for name in _PAGE_FIELDS}
    return orjson.dumps({"v": VERSION, "kind": "listing", "page": head, "items": page.objects})


def decode_operations(body: bytes) -> list[Operation]:
    return _build(Operation, OPERATION_FIELDS, _rows(_envelope(body), "ops", OPERATION_FIELDS))


def decode_results(body: bytes) -> list[Result]:
    return _build(Result, RESULT_FIELDS, _rows(_envelope(body), "results", RESULT_FIELDS))


def decode_work(body: bytes) -> list[Operation] | ListRequest:
    """What a worker takes from a target's queue: a batch of operations, or a list request."""
    envelope = _envelope(body)
    if envelope.get("kind") == "list":
        return _build_one(ListRequest, envelope.get("request"), _LIST_REQUEST_KEYS, "list request")
    return _build(Operation, OPERATION_FIELDS, _rows(envelope, "ops", OPERATION_FIELDS))


def decode_reports(body: bytes) -> list[Result] | ListPage:
    """What the engine takes from the results queue: a batch of results, or a page of a listing."""
    envelope = _envelope(body)
    if envelope.get("kind") == "listing":
        head = envelope.get("page")
        request_id = head.get("request_id") if isinstance(head, dict) else None
        try:
            items = envelope.get("items")
            if not isinstance(items, list):
                raise DecodeError("listing page has no list of items")
            page = {**head, "objects": items} if isinstance(head, dict) else head
            return _build_one(ListPage, page, _PAGE_KEYS | {"objects"}, "listing page")
        except DecodeError as exc:
            raise PageError(str(exc), request_id if isinstance(request_id, str) else None) from None
    return _build(Result, RESULT_FIELDS, _rows(envelope, "results", RESULT_FIELDS))


def _build_one(cls: type[_T], raw: Any, keys: frozenset[str], what: str) -> _T:
    """One value object from an object with exactly its keys, its checks naming what is wrong."""
    if not isinstance(raw, dict):
        raise DecodeError(f"{what} is not an object")
    if set(raw) != keys:
        missing = sorted(keys - set(raw))
        unknown = sorted(set(raw) - keys)
        raise DecodeError(
            f"{what} keys differ from version {VERSION}'s: missing {missing}, unknown {unknown}"
        )
    return cls(**raw)


def _wire(value: Any) -> Any:
    """A value with a wire form of its own (e.g. the candidates of SelectUniqueValue, sent as
    `{"$unique": [...]}`); anything else has none, and encoding it is a bug to surface."""
    wire = getattr(value, "wire", None)
    if wire is None:
        raise TypeError(f"{type(value).__name__} has no wire form")
    return wire()


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise DecodeError("body is not a JSON object envelope")
    version = envelope.get("v")
    if version != VERSION:
        raise DecodeError(f"unknown envelope version {version!r}, this build speaks {VERSION}")
    return envelope


def _rows(envelope: dict[str, Any], kind: str, fields: tuple[str, ...]) -> list[Any]:
    if envelope.get("kind") != kind:
        raise DecodeError(f"expected an envelope of {kind}, got {envelope.get('kind')!r}")
    sent = envelope.get("fields")
    if not isinstance(sent, list) or tuple(sent) != fields:
        raise DecodeError(_fields_differ(sent, fields))
    items = envelope.get("items")
    if not isinstance(items, list):
        raise DecodeError("envelope has no list of items")
    return items


def _fields_differ(sent: Any, fields: tuple[str, ...]) -> str:
    if not isinstance(sent, list):
        return "envelope has no list of fields"
    missing = [f for f in fields if f not in sent]
    unknown = [f for f in sent if f not in fields]
    if missing or unknown:
        return f"envelope fields differ from version {VERSION}'s: missing {missing}, unknown {unknown}"
    return f"envelope fields are out of order: {sent}, version {VERSION} has {list(fields)}"


def _build(cls: type[Any], fields: tuple[str, ...], rows: list[Any]) -> list[Any]:
    width = len(fields)
    built = []
    for number, row in enumerate(rows, 1):
        # The reasons name positions and types, never values: a row may hold attributes that are secret.
        if not isinstance(row, list):
            raise DecodeError(
                f"{cls.__name__} item {number} is not a row of {width} fields: a {type(row).__name__}"
            )
        if len(row) != width:
            raise DecodeError(
                f"{cls.__name__} item {number} is not a row of {width} fields: it has {len(row)}"
            )
        try:
            built.append(cls(**dict(zip(fields, row, strict=True))))
        except TypeError:  # a value of the wrong type met a check
            kinds = ", ".join(
                f"{name}={type(value).__name__}" for name, value in zip(fields, row, strict=True)
            )
            raise DecodeError(f"{cls.__name__} item {number} has a value of a wrong type ({kinds})") from None
    return built
