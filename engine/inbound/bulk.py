"""SCIM bulk requests (RFC 7644 §3.7): a BulkRequest read into operations, `bulkId` references resolved,
and the operations run in an order that creates what a later one names first.

This module holds no HTTP and no store: `parse_bulk` checks a whole request before anything runs (a
request that is not a BulkRequest, an unknown method, a path outside `/Users` and `/Groups`, a POST
without a `bulkId`, a reference to a `bulkId` no POST declares, more operations than advertised), and
`run_bulk` runs the operations through a function the service gives (the same one a single request
goes through), collecting each one's outcome or SCIM error in the BulkResponse's shape.

Order: operations run as listed, except that one naming a `bulkId` whose POST has not run yet waits
until it has (RFC 7644 §3.7.2 lets a client reference a resource created later in the request). What
cannot be ordered (a cycle, such as a POST naming its own `bulkId`) is answered 409, as the RFC allows
(§3.7.1), and so is an operation naming a `bulkId` whose POST failed. `failOnErrors` stops the request
after that many failed operations; those not run are left out of the response (§3.7.3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from engine.inbound.errors import ScimProblem

BULK_REQUEST: Final = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE: Final = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
MAX_OPERATIONS: Final = 1_000
"""The most operations one request may hold (advertised in ServiceProviderConfig's `bulk`)."""

METHODS: Final = ("POST", "PUT", "PATCH", "DELETE")
ENDPOINTS: Final = {"Users": "User", "Groups": "Group"}
_PREFIX: Final = "bulkId:"


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkOperation:
    """One operation of a bulk request, as checked; `resource_id` and `data` may still name bulkIds."""

    index: int
    method: str
    resource_type: str
    endpoint: str
    resource_id: str | None
    bulk_id: str | None
    data: Any
    version: str | None
    references: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Done:
    """What a successful operation answers: its status, and the resource's id and version if any."""

    status: int
    resource_id: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class BulkRequest:
    operations: tuple[BulkOperation, ...]
    fail_on_errors: int | None


Perform = Callable[[BulkOperation], Done]
"""Runs one operation whose references are resolved; raises ScimProblem when it is refused."""


def parse_bulk(body: Any, *, max_operations: int = MAX_OPERATIONS, references: bool = True) -> BulkRequest:
    """A BulkRequest's operations, each checked; any malformed one refuses the whole request.
    `references=False`: the request's text holds no `bulkId:`, so no value is looked through for one."""
    if not isinstance(body, dict):
        raise ScimProblem(400, "invalidSyntax", f"the body is a {type(body).__name__}, not a BulkRequest")
    if BULK_REQUEST not in (body.get("schemas") or []):
        raise ScimProblem(400, "invalidValue", f"a bulk request's schemas must list {BULK_REQUEST}")
    raw = body.get("Operations", body.get("operations"))
    if not isinstance(raw, list):
        raise ScimProblem(400, "invalidSyntax", "Operations must be a list of operations")
    if len(raw) > max_operations:
        raise ScimProblem(
            413,
            None,
            f"the bulk request holds {len(raw):,} operations, more than the {max_operations:,} "
            "this service takes (ServiceProviderConfig bulk.maxOperations)",
        )
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int) or fail_on_errors < 1
    ):
        raise ScimProblem(
            400, "invalidValue", f"failOnErrors must be an integer of 1 or more, not {fail_on_errors!r}"
        )
    operations = tuple(_operation(i, item, references) for i, item in enumerate(raw))
    declared: dict[str, int] = {}
    for op in operations:
        if op.bulk_id is not None:
            if op.bulk_id in declared:
                raise ScimProblem(
                    400,
                    "invalidValue",
                    f"Operations[{op.index}] repeats the bulkId {op.bulk_id!r} of an earlier operation",
                )
            declared[op.bulk_id] = op.index
    posted = {op.bulk_id for op in operations if op.method == "POST" and op.bulk_id is not None}
    for op in operations:
        unknown = sorted(op.references - posted)
        if unknown:
            raise ScimProblem(
                400,
                "invalidValue",
                f"Operations[{op.index}] names bulkId:{unknown[0]}, which no POST of this request declares",
            )
    return BulkRequest(operations, fail_on_errors)


def run_bulk(
    request: BulkRequest, perform: Perform, location: Callable[[str, str], str]
) -> dict[int, dict[str, Any]]:
    """Run the operations and answer each run, by its index in the request, in the request's order
    (the BulkResponse's `Operations`); `location(endpoint, id)` is a resource's URL."""
    created: dict[str, str] = {}  # bulkId -> the id its POST created
    failed: set[str] = set()
    answers: dict[int, dict[str, Any]] = {}
    errors = 0
    pending = list(request.operations)
    while pending:
        waiting: list[BulkOperation] = []
        ran = False
        for op in pending:
            if request.fail_on_errors is not None and errors >= request.fail_on_errors:
                return {i: answers[i] for i in sorted(answers)}
            if op.references & failed:
                names = ", ".join(sorted(op.references & failed))
                answers[op.index] = _refused(
                    op, ScimProblem(409, None, f"the POST of bulkId {names} failed"), location
                )
                errors += 1
                ran = True
                continue
            if not op.references <= created.keys():
                waiting.append(op)  # runs once the POSTs it names have
                continue
            ran = True
            resolved = _resolved(op, created)
            try:
                done = perform(resolved)
            except ScimProblem as problem:
                answers[op.index] = _refused(resolved, problem, location)
                errors += 1
                if op.method == "POST" and op.bulk_id is not None:
                    failed.add(op.bulk_id)
                continue
            if op.method == "POST" and op.bulk_id is not None and done.resource_id is not None:
                created[op.bulk_id] = done.resource_id
            answers[op.index] = _answered(op, done, location)
        if not ran:  # each waits for another: a cycle the order cannot break
            for op in waiting:
                names = ", ".join(f"bulkId:{n}" for n in sorted(op.references - created.keys()))
                detail = f"{names} cannot be resolved: the operations name each other in a cycle"
                answers[op.index] = _refused(op, ScimProblem(409, None, detail), location)
                if op.method == "POST" and op.bulk_id is not None:
                    failed.add(op.bulk_id)
            break
        pending = waiting
    return {i: answers[i] for i in sorted(answers)}


def bulk_response(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [BULK_RESPONSE], "Operations": operations}


def _operation(index: int, item: Any, may_name: bool) -> BulkOperation:
    where = f"Operations[{index}]"
    if not isinstance(item, dict):
        raise ScimProblem(400, "invalidSyntax", f"{where} is a {type(item).__name__}, not an operation")
    method = item.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ScimProblem(
            400, "invalidValue", f"{where}: method {method!r} is not one of {', '.join(METHODS)}"
        )
    method = method.upper()
    path = item.get("path")
    if not isinstance(path, str):
        raise ScimProblem(400, "invalidValue", f"{where} needs a path such as /Users or /Users/{{id}}")
    endpoint, _, resource_id = path.strip("/").partition("/")
    if endpoint not in ENDPOINTS or "/" in resource_id:
        raise ScimProblem(
            400, "invalidPath", f"{where}: path {path!r} is not /Users, /Groups or one of their resources"
        )
    if method == "POST" and resource_id:
        raise ScimProblem(400, "invalidPath", f"{where}: a POST's path is /{endpoint}, without an id")
    if method != "POST" and not resource_id:
        raise ScimProblem(
            400, "invalidPath", f"{where}: a {method}'s path names a resource: /{endpoint}/{{id}}"
        )
    bulk_id = item.get("bulkId")
    if bulk_id is not None and (not isinstance(bulk_id, str) or not bulk_id):
        raise ScimProblem(400, "invalidValue", f"{where}: bulkId must be a string")
    if method == "POST" and bulk_id is None:
        raise ScimProblem(400, "invalidValue", f"{where}: a POST needs a bulkId (RFC 7644 §3.7)")
    data = item.get("data")
    if method != "DELETE" and not isinstance(data, dict):
        raise ScimProblem(400, "invalidSyntax", f"{where}: a {method} needs data, an object")
    version = item.get("version")
    if version is not None and not isinstance(version, str):
        raise ScimProblem(400, "invalidValue", f"{where}: version must be an ETag string")
    references = _named(data) if may_name else set()
    if resource_id.startswith(_PREFIX):
        references.add(resource_id.removeprefix(_PREFIX))
    return BulkOperation(
        index=index,
        method=method,
        resource_type=ENDPOINTS[endpoint],
        endpoint=endpoint,
        resource_id=resource_id or None,
        bulk_id=bulk_id,
        data=data,
        version=version,
        references=frozenset(references),
    )


def _named(value: Any, found: set[str] | None = None) -> set[str]:
    """The bulkIds a value names (`"bulkId:qwerty"` anywhere in it). A plain walk, not generators:
    it looks at every value of every operation of a bulk."""
    found = set() if found is None else found
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else (value,)
    for item in items:
        if isinstance(item, str):
            if item.startswith(_PREFIX):
                found.add(item.removeprefix(_PREFIX))
        elif isinstance(item, dict | list):
            _named(item, found)
    return found


def _resolved(op: BulkOperation, created: Mapping[str, str]) -> BulkOperation:
    if not op.references:
        return op
    resource_id = op.resource_id
    if resource_id is not None and resource_id.startswith(_PREFIX):
        resource_id = created[resource_id.removeprefix(_PREFIX)]
    return replace(op, resource_id=resource_id, data=_substituted(op.data, created))


def _substituted(value: Any, created: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return created[value.removeprefix(_PREFIX)] if value.startswith(_PREFIX) else value
    if isinstance(value, dict):
        return {k: _substituted(v, created) for k, v in value.items()}
    if isinstance(value, list):
        return [_substituted(v, created) for v in value]
    return value


def _answered(op: BulkOperation, done: Done, location: Callable[[str, str], str]) -> dict[str, Any]:
    answer: dict[str, Any] = {"method": op.method}
    if op.bulk_id is not None:
        answer["bulkId"] = op.bulk_id
    if done.version is not None:
        answer["version"] = done.version
    if done.resource_id is not None:
        answer["location"] = location(op.endpoint, done.resource_id)
    answer["status"] = str(done.status)
    return answer


def _refused(op: BulkOperation, problem: ScimProblem, location: Callable[[str, str], str]) -> dict[str, Any]:
    answer: dict[str, Any] = {"method": op.method}
    if op.bulk_id is not None:
        answer["bulkId"] = op.bulk_id
    if op.resource_id is not None and not op.resource_id.startswith(_PREFIX):
        answer["location"] = location(op.endpoint, op.resource_id)
    answer["status"] = str(problem.status)
    answer["response"] = problem.body()
    return answer
