"""Wire contracts: operations flow from the engine to the workers, results flow back.

A message on the wire is an *envelope* holding a batch, never a single operation: the broker's cost
per message is then paid once per batch (see DESIGN.md, "Batches on the wire"). Envelopes are orjson
documents with a version. The items are rows, one array per operation or result, whose columns the
envelope names in `fields`: a row decodes straight into its dataclass by position, where an object per
item cost a keyword match per field (orjson's keys are not the interned names a call matches on first)
and was the largest single cost of the pipeline. A body of an unknown version or shape raises
`DecodeError`, which the consumer turns into a dead letter with that reason rather than a guess.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final, Literal

import orjson

from common.errors import DecodeError

VERSION: Final = 2
"""2: items are rows under `fields` (1 sent an object per item)."""

Action = Literal["create", "update", "disable", "delete"]
ACTIONS: Final = frozenset({"create", "update", "disable", "delete"})

Status = Literal["succeeded", "failed", "skipped", "retrying"]
"""`retrying` is an interim report (the operation went to a retry tier); the others are final."""
STATUSES: Final = frozenset({"succeeded", "failed", "skipped", "retrying"})
FINAL_STATUSES: Final = frozenset({"succeeded", "failed", "skipped"})


# Operation and Result are not frozen, though value objects are: a frozen dataclass sets each field
# through `object.__setattr__`, and decoding a batch of 500 (tests/bench/contracts.py) took 1.25 ms
# instead of 0.54 ms for operations (+130 %), 1.08 ms instead of 0.33 ms for results (+230 %).
# Nothing assigns to their fields once built: `next_attempt` makes a new one.
@dataclass(slots=True)
class Operation:
    """One change to apply to one object in one target, idempotently. Built by keyword; only the
    decoder builds one by position, from a row whose columns it checked.

    `desired_hash` is the hash of `attributes` as the engine planned them; the worker returns it in the
    result as the applied hash, so the state records exactly what the target now holds. `matching` holds
    the job's matching attributes that have a value, as [name, value] pairs in precedence order: a
    connector searches the target on each in turn before it creates.
    """

    op_id: str
    job: str
    target: str
    cycle_id: str
    action: Action
    object_type: str
    source_id: str
    attributes: dict[str, Any]
    desired_hash: str
    target_id: str | None = None
    matching: list[list[Any]] = field(default_factory=list)
    members_add: list[str] = field(default_factory=list)
    members_remove: list[str] = field(default_factory=list)
    members: dict[str, str] | None = None
    """For a group: every member it holds once this operation is applied (source id -> target id),
    echoed in the result so the state records the membership only when it is in the target."""
    attempt: int = 1
    emitted_at: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise DecodeError(f"operation {self.op_id}: unknown action {self.action!r}")
        if self.attempt < 1:
            raise DecodeError(f"operation {self.op_id}: attempt must be >= 1, got {self.attempt}")

    @property
    def match_value(self) -> Any:
        """The value of the matching attribute of highest precedence that has one."""
        return self.matching[0][1] if self.matching else None

    def next_attempt(self) -> Operation:
        """The same operation, counted as one more attempt (for a retry tier)."""
        return dataclasses.replace(self, attempt=self.attempt + 1)


@dataclass(slots=True)
class Result:
    """What happened to one operation. Timestamps are epoch seconds, `connector_ms` wall time."""

    op_id: str
    job: str
    target: str
    cycle_id: str
    source_id: str
    action: Action
    status: Status
    attempts: int
    emitted_at: float
    completed_at: float
    target_id: str | None = None
    applied_hash: str | None = None
    error_class: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    connector_ms: float = 0.0
    members: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise DecodeError(f"result {self.op_id}: unknown status {self.status!r}")

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def latency_s(self) -> float:
        """Emitted by the engine to completed by the worker."""
        return self.completed_at - self.emitted_at


OPERATION_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Operation))
RESULT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Result))
_operation_row = attrgetter(*OPERATION_FIELDS)
_result_row = attrgetter(*RESULT_FIELDS)


def encode_operations(target: str, ops: Sequence[Operation]) -> bytes:
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


def decode_operations(body: bytes) -> list[Operation]:
    return _build(Operation, OPERATION_FIELDS, _rows(body, "ops", OPERATION_FIELDS))


def decode_results(body: bytes) -> list[Result]:
    return _build(Result, RESULT_FIELDS, _rows(body, "results", RESULT_FIELDS))


def _wire(value: Any) -> Any:
    """A value with a wire form of its own (e.g. the candidates of SelectUniqueValue, sent as
    `{"$unique": [...]}`); anything else has none, and encoding it is a bug to surface."""
    wire = getattr(value, "wire", None)
    if wire is None:
        raise TypeError(f"{type(value).__name__} has no wire form")
    return wire()


def _rows(body: bytes, kind: str, fields: tuple[str, ...]) -> list[Any]:
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise DecodeError("body is not a JSON object envelope")
    version = envelope.get("v")
    if version != VERSION:
        raise DecodeError(f"unknown envelope version {version!r}, this build speaks {VERSION}")
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
            built.append(cls(*row))
        except TypeError:  # a value of the wrong type met a check
            kinds = ", ".join(
                f"{name}={type(value).__name__}" for name, value in zip(fields, row, strict=True)
            )
            raise DecodeError(f"{cls.__name__} item {number} has a value of a wrong type ({kinds})") from None
    return built
