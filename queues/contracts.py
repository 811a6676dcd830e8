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
from typing import Any, Final, Literal, TypeVar

import orjson

from common.errors import DecodeError

VERSION: Final = 5
"""5: operations carry `disabled`. 4: operations carry `members_groups` (nested groups). 3: operations
carry `listed`, and list requests and listing pages exist (2 had neither; 1 sent an object per item)."""

_T = TypeVar("_T")

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
    members_groups: list[str] = field(default_factory=list)
    """The target ids in `members_add` that are groups (nested in this one), not users."""
    listed: list[str] = field(default_factory=list)
    """For a create: the matching attributes that a listing of the target covered and found no object
    holding this operation's values for (see `engine.pipeline.listing`). The connector may create without
    searching on those; it still searches on any other, and a uniqueness conflict still matches again."""
    disabled: bool = False
    """For a create or an update of a user: the account is to be disabled once it is applied (a
    prehire before the start date, a person past the end date). A create makes it disabled, never
    enabled first; an update leaves it disabled where an update otherwise enables it again."""
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
    disabled: bool = False
    """Echoes `Operation.disabled`: a create or update that succeeded left the account disabled."""

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


def result_of(
    op: Operation,
    status: Status,
    *,
    completed_at: float,
    attempts: int | None = None,
    connector_ms: float = 0.0,
    target_id: str | None = None,
    error_class: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> Result:
    """The result of `op`: its identity echoed, the applied hash and members only when it succeeded.
    `attempts` defaults to the operation's own (0: it was never tried, as an operation kept back)."""
    succeeded = status == "succeeded"
    return Result(
        op_id=op.op_id,
        job=op.job,
        target=op.target,
        cycle_id=op.cycle_id,
        source_id=op.source_id,
        action=op.action,
        status=status,
        attempts=op.attempt if attempts is None else attempts,
        emitted_at=op.emitted_at,
        completed_at=completed_at,
        target_id=target_id if target_id is not None else op.target_id,
        applied_hash=op.desired_hash if succeeded else None,
        error_class=error_class,
        error_code=error_code,
        error_message=error_message,
        connector_ms=connector_ms,
        members=op.members if succeeded else None,
        disabled=op.disabled,
    )


MEMBERS: Final = "members"
"""The field a listing of groups names for their members: each group's members as target ids (a list),
whatever attribute the target keeps them in (SCIM `members`, LDAP `member` or `uniqueMember`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListRequest:
    """Asks a target's worker to list every object of a kind: its id and the values of `attributes`
    (the job's matching attributes, in precedence order). Sent on the target's queue of operations,
    answered by `ListPage`s on the results queue."""

    request_id: str
    job: str
    target: str
    object_type: str
    attributes: list[str]
    emitted_at: float = 0.0
    answer_by: float = 0.0
    """Epoch seconds after which nobody waits for the answer (the engine went on without it): a worker
    that takes the request later drops it rather than list the target for nothing. 0: no limit."""

    def __post_init__(self) -> None:
        _check_text("list request", "request_id", self.request_id)
        for name in ("job", "target", "object_type"):
            _check_text(f"list request {self.request_id}", name, getattr(self, name))
        if not isinstance(self.attributes, list) or not all(
            isinstance(a, str) and a for a in self.attributes
        ):
            raise DecodeError(f"list request {self.request_id}: attributes must be a list of names")
        for name in ("emitted_at", "answer_by"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise DecodeError(f"list request {self.request_id}: {name} must be a number")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListPage:
    """One page of a worker's answer to a `ListRequest`.

    `objects` are rows: the object's id in the target, then one value per name of `fields` (the
    attributes asked for, and any other the connector matches on), None where the object has none.
    `answer_id` names one attempt at answering: a request handed out again (its worker died) is answered
    again from page 0 under another id, and the engine never mixes the pages of two answers. The page
    with `last` ends an answer; one with `error` (always `last`) says the listing could not be completed.
    """

    request_id: str
    answer_id: str
    target: str
    number: int
    last: bool
    fields: list[str]
    objects: list[list[Any]] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        what = f"listing page {self.number!r} of request {self.request_id!r}"
        for name in ("request_id", "answer_id", "target"):
            _check_text(what, name, getattr(self, name))
        if not isinstance(self.number, int) or isinstance(self.number, bool) or self.number < 0:
            raise DecodeError(f"{what}: number must be an integer >= 0")
        if not isinstance(self.last, bool):
            raise DecodeError(f"{what}: last must be true or false")
        if self.error is not None and (not isinstance(self.error, str) or not self.last):
            raise DecodeError(f"{what}: error must be text, on the last page")
        if not isinstance(self.fields, list) or not all(isinstance(f, str) and f for f in self.fields):
            raise DecodeError(f"{what}: fields must be a list of names")
        if not isinstance(self.objects, list):
            raise DecodeError(f"{what}: objects must be a list of rows")
        width = 1 + len(self.fields)
        for number, row in enumerate(self.objects, 1):
            # Name positions and types, never values (as `_build` does).
            if not isinstance(row, list) or len(row) != width:
                raise DecodeError(
                    f"{what}: object {number} is not a row of {width} values (an id, then fields)"
                )
            if not isinstance(row[0], str) or not row[0]:
                raise DecodeError(f"{what}: object {number} has no id (a non-empty string)")
            values = row[1:]
            if all(map(_listed_value, values)):  # at once for a row, as most are; then which one
                continue
            name, value = next(
                (n, v) for n, v in zip(self.fields, values, strict=True) if not _listed_value(v)
            )
            raise DecodeError(
                f"{what}: object {number} has a {type(value).__name__} for {name!r} "
                "(text, a number, true/false, null, or a list of them)"
            )


def _check_text(what: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise DecodeError(f"{what}: {name} must be a non-empty string")


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _listed_value(value: Any) -> bool:
    """Text, a number, true/false, null, or a list of them. Once per value of a listing of the whole
    target: the exact type is looked up first, `isinstance` only for a subclass or a list."""
    if type(value) in _SCALARS or value is None or isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, list) and all(
        type(v) in _SCALARS or isinstance(v, str | int | float | bool) for v in value
    )


_LIST_REQUEST_KEYS: Final = frozenset(f.name for f in dataclasses.fields(ListRequest))
_PAGE_KEYS: Final = frozenset(f.name for f in dataclasses.fields(ListPage)) - {"objects"}


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


def encode_list_request(request: ListRequest) -> bytes:
    """A list request travels on the target's queue of operations, in an envelope of its own kind."""
    envelope = {"v": VERSION, "kind": "list", "target": request.target, "request": _fields_of(request)}
    return orjson.dumps(envelope)


def encode_page(page: ListPage) -> bytes:
    """A listing page travels on the results queue; its objects are the envelope's items."""
    head = _fields_of(page)
    items = head.pop("objects")
    return orjson.dumps({"v": VERSION, "kind": "listing", "page": head, "items": items})


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


class VersionError(DecodeError):
    """An envelope of another version than this module's: `queues.wire` reads the older one it speaks."""

    def __init__(self, message: str, version: object) -> None:
        super().__init__(message)
        self.version = version


class PageError(DecodeError):
    """A listing page that cannot be decoded; `request_id` names its request when the page said it,
    so that the engine gives that listing up at once rather than at its timeout."""

    def __init__(self, message: str, request_id: str | None) -> None:
        super().__init__(message)
        self.request_id = request_id


def _fields_of(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


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
        raise VersionError(f"unknown envelope version {version!r}, this build speaks {VERSION}", version)
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
            built.append(cls(*row))
        except TypeError:  # a value of the wrong type met a check
            kinds = ", ".join(
                f"{name}={type(value).__name__}" for name, value in zip(fields, row, strict=True)
            )
            raise DecodeError(f"{cls.__name__} item {number} has a value of a wrong type ({kinds})") from None
    return built
