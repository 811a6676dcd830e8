"""Micro-benchmark of decoding envelopes of the wire contracts into plain or frozen dataclasses.

    python tests/bench/contracts.py --batch 500

Encodes a batch of operations and one of results, then times `decode_operations` /
`decode_results` (orjson, the envelope's checks, one dataclass per row) against the same decode into
a frozen twin of `Operation` / `Result` (same fields, defaults and checks, `frozen=True`). Best of
seven runs of timeit each, per batch. Prints one JSON object: per kind, public_us (what a consumer
calls: `queues.wire`'s `decode_work` / `decode_reports`, the version's dispatch included), plain_us,
frozen_us and frozen_extra (the frozen decode's extra time, as a fraction of the plain one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from queues import contracts, wire
from queues.contracts import Operation, Result


def frozen_twin(cls: type[Any]) -> type[Any]:
    """`cls` again, frozen: the same fields, defaults and `__post_init__` checks."""
    specs = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            specs.append((f.name, f.type, dataclasses.field(default=f.default)))
        elif f.default_factory is not dataclasses.MISSING:
            specs.append((f.name, f.type, dataclasses.field(default_factory=f.default_factory)))
        else:
            specs.append((f.name, f.type))
    namespace = {"__post_init__": cls.__post_init__}
    return dataclasses.make_dataclass(cls.__name__, specs, namespace=namespace, frozen=True, slots=True)


def operations(n: int) -> list[Operation]:
    return [
        Operation(
            op_id=f"op-{i}",
            job="staff",
            target="ldap",
            cycle_id="c-1",
            action="update",
            object_type="user",
            source_id=f"e{i}",
            attributes={"mail": f"u{i}@example.org", "givenName": "Ada", "sn": "Lovelace", "title": "Eng"},
            desired_hash="0123456789abcdef",
            matching=[["mail", f"u{i}@example.org"]],
            emitted_at=1_700_000_000.0,
        )
        for i in range(n)
    ]


def results(n: int) -> list[Result]:
    return [
        Result(
            op_id=f"op-{i}",
            job="staff",
            target="ldap",
            cycle_id="c-1",
            source_id=f"e{i}",
            action="update",
            status="succeeded",
            attempts=1,
            emitted_at=1_700_000_000.0,
            completed_at=1_700_000_000.5,
            applied_hash="0123456789abcdef",
        )
        for i in range(n)
    ]


def decode_us(cls: type[Any], kind: str, fields: tuple[str, ...], body: bytes, number: int) -> float:
    """Microseconds to decode `body` into `cls`, the best of seven timeit runs."""

    def decode() -> list[Any]:
        return contracts._build(cls, fields, contracts._rows(contracts._envelope(body), kind, fields))

    return best_us(decode, number)


def best_us(decode: Any, number: int) -> float:
    """Microseconds per call of `decode`, the best of seven timeit runs."""
    assert len(decode()) > 0
    return min(timeit.repeat(decode, number=number, repeat=7)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--number", type=int, default=50, help="decodes per timing")
    args = parser.parse_args()
    ops_body = contracts.encode_operations("ldap", operations(args.batch))
    results_body = contracts.encode_results(results(args.batch))
    cases = (
        ("ops", Operation, contracts.OPERATION_FIELDS, ops_body, wire.decode_work),
        ("results", Result, contracts.RESULT_FIELDS, results_body, wire.decode_reports),
    )
    report: dict[str, Any] = {"batch": args.batch}
    for kind, cls, fields, body, public in cases:
        plain_us = decode_us(cls, kind, fields, body, args.number)
        frozen_us = decode_us(frozen_twin(cls), kind, fields, body, args.number)
        report[kind] = {
            "public_us": round(best_us(lambda public=public, body=body: public(body), args.number)),
            "plain_us": round(plain_us),
            "frozen_us": round(frozen_us),
            "frozen_extra": round(frozen_us / plain_us - 1, 2),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
