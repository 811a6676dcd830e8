"""Every wire version this build speaks (`queues.versions.SPOKEN`): decoding whichever a body is in,
and encoding in the one asked for. The current version is `queues.contracts`; the previous one is
the frozen `queues.wire_v4`. A decode answers the version it read, so that a reply goes back in it.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import DecodeError
from queues import contracts, wire_v4
from queues.contracts import VERSION, ListPage, ListRequest, Operation, Result, VersionError
from queues.versions import SPOKEN

Work = list[Operation] | ListRequest
Reports = list[Result] | ListPage


def decode_work(body: bytes, spoken: Sequence[int] = SPOKEN) -> tuple[int, Work]:
    """What a worker takes from a target's queue, and the version it came in."""
    try:
        work = contracts.decode_work(body)
    except VersionError as exc:
        _check_spoken(exc.version, spoken, exc)
        return wire_v4.VERSION, wire_v4.decode_work(body)
    _check_spoken(VERSION, spoken, None)
    return VERSION, work


def decode_reports(body: bytes, spoken: Sequence[int] = SPOKEN) -> tuple[int, Reports]:
    """What the engine takes from the results queue, and the version it came in."""
    try:
        reports = contracts.decode_reports(body)
    except VersionError as exc:
        _check_spoken(exc.version, spoken, exc)
        return wire_v4.VERSION, wire_v4.decode_reports(body)
    _check_spoken(VERSION, spoken, None)
    return VERSION, reports


def encode_operations(target: str, ops: Sequence[Operation], version: int = VERSION) -> bytes:
    """Raises `wire_v4.Inexpressible` for version 4 and an operation that carries `disabled`."""
    if version == VERSION:
        return contracts.encode_operations(target, ops)
    _check_older(version)
    return wire_v4.encode_operations(target, ops)


def encode_results(results: Sequence[Result], version: int = VERSION) -> bytes:
    if version == VERSION:
        return contracts.encode_results(results)
    _check_older(version)
    return wire_v4.encode_results(results)


def encode_list_request(request: ListRequest, version: int = VERSION) -> bytes:
    if version == VERSION:
        return contracts.encode_list_request(request)
    _check_older(version)
    return wire_v4.encode_list_request(request)


def encode_page(page: ListPage, version: int = VERSION) -> bytes:
    if version == VERSION:
        return contracts.encode_page(page)
    _check_older(version)
    return wire_v4.encode_page(page)


def _check_older(version: int) -> None:
    if version != wire_v4.VERSION:
        raise ValueError(f"this build cannot encode wire version {version}; it speaks {_listed(SPOKEN)}")


def _check_spoken(version: object, spoken: Sequence[int], error: VersionError | None) -> None:
    if type(version) is int and version in spoken and version in SPOKEN:
        return
    if error is not None and version not in SPOKEN:
        raise DecodeError(f"unknown envelope version {version!r}, this build speaks {_listed(spoken)}")
    raise DecodeError(
        f"envelope version {version!r}, which this process does not speak: it speaks {_listed(spoken)}"
    )


def _listed(versions: Sequence[int]) -> str:
    return ", ".join(map(str, versions))
