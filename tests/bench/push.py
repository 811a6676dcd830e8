"""Benchmark of pushes into the inbound SCIM service: how soon a pushed change is in the target.

    python tests/bench/push.py --target sqlite --rate 200 --seconds 30
    python tests/bench/push.py --target scim
    python tests/bench/push.py --target null

Starts the embedded pipeline (SQLite state, in-memory broker, worker) with the inbound service in this
process, as `roster run --serve` does, and one job (`respond: stored`) over its Users into the target:
a SQLite table (`sqlite`), scim2-server in a subprocess (`scim`), or the null target that writes
nothing (`null`, `type: noop`). The client runs in a child process (this script with `--drive`), so
its CPU is not the service's loop; it stamps each request's send time with the wall clock, which is
what the provisioning log's times are on. Two phases:

1. **Bulk**: `--bulk-records` users created by `/Bulk` requests of 100 POSTs each, as fast as they go
   (`--bulk-inflight` requests at a time). `bulk_records_per_s`: users confirmed by the target (each a
   succeeded record in the provisioning log) per second, from the first request's send time to the
   last record's time, so it counts what the target confirmed, not what was stored.
2. **Steady PATCHes**: one PATCH (`name.familyName`) per user, each user once, at `--rate` a second for
   `--seconds`, sent on schedule whatever the answers (an open loop). `push_p50_ms` / `push_p99_ms`:
   from the request's send time to the time of its `update` record in the provisioning log, which the
   engine writes when the worker's result comes back after the target confirmed the write (so it is
   the confirmed write plus the result's way back, a few milliseconds at most; the log's times are
   floats of seconds, precise to microseconds). `stored_p50_ms` / `stored_p99_ms`: the HTTP answer's
   time as the client saw it. `pushes`: PATCHes sent; `answered_2xx`: those answered 200;
   `unconfirmed`: those with no update record within 60 s after the last was sent.

Also printed: `target`, `rate`, `seconds`, `bulk_records`, `load_before` / `load_after` (the 1-minute
load average: the machine is shared), `cpus`, and `cpu_ref_s`: the seconds one core takes for a fixed
piece of pure Python before the run (`sum(i*i for i in range(10**7))`), since this machine's speed
varies by about two between hours and figures of different hours compare only beside it. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common.peers.scim_schemas import PATCH_SCHEMA, USER_SCHEMA
from common.process.tuning import tune_process
from engine.cli.embedded import embedded
from engine.config import parse_engine_config
from engine.inbound.server import InboundServer
from engine.store.state import state_url
from workers.config import parse_targets

TOKEN = "bench-token-for-the-inbound-service-0123456789"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
JOB = "bench"


def user(i: int) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": f"user{i}@example.org",
        "externalId": f"E{i:07d}",
        "name": {"givenName": "Zoë", "familyName": f"Müller {i}"},
        "emails": [{"type": "work", "value": f"user{i}@example.org", "primary": True}],
        "active": True,
    }


def config(workdir: Path, target: str, scim_url: str | None) -> dict[str, Any]:
    if target == "scim":
        assert scim_url is not None
        sink: dict[str, Any] = {
            "name": "t",
            "type": "scim",
            "url": scim_url,
            "matching": {"user": ["userName", "externalId"]},
        }
        mappings = [
            {"target": "userName", "source": "userName", "match": True},
            {"target": "externalId", "source": "externalId"},
            {"target": "name.givenName", "source": "name.givenName"},
            {"target": "name.familyName", "source": "name.familyName"},
        ]
    else:
        columns = ("employee_id", "first_name", "last_name", "email")
        sink = {"name": "t", "type": "noop"}
        if target == "sqlite":
            sink = {
                "name": "t",
                "type": "sql",
                "url": f"sqlite:///{workdir / 'target.db'}",
                "table": "accounts",
                "key_column": "employee_id",
                "create_table": True,
                "on_disable": "delete",
                "columns": {c: c for c in columns},
            }
        mappings = [
            {"target": "employee_id", "source": "externalId", "match": True},
            {"target": "first_name", "source": "name.givenName"},
            {"target": "last_name", "source": "name.familyName"},
            {"target": "email", "source": 'emails[type eq "work"].value'},
        ]
    return {
        "inbound": {
            "listen": "127.0.0.1:0",
            "respond": "stored",
            "max_body_bytes": 5_000_000,
            "tokens": [{"name": "bench", "token": TOKEN, "jobs": [JOB]}],
        },
        "jobs": [
            {
                "name": JOB,
                "source": {"type": "scim_inbound"},
                "target": "t",
                "deletion_guard": False,
                "source_max_drop_percent": 100,
                "mappings": mappings,
            }
        ],
        "targets": [sink],
    }


# -- The client (a child process) ------------------------------------------------------------------


async def drive_bulk(url: str, records: int, inflight: int) -> dict[str, Any]:
    """POST the users in bulks of 100, `inflight` at a time; the ids created and the first send time."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
    chunks = [range(start, min(start + 100, records)) for start in range(0, records, 100)]
    ids: list[str] = []
    failed = 0
    first_sent = time.time()
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(chunk: range) -> None:
            nonlocal failed
            ops = [{"method": "POST", "path": "/Users", "bulkId": f"b{i}", "data": user(i)} for i in chunk]
            body = orjson.dumps({"schemas": [BULK_REQUEST], "Operations": ops})
            async with session.post(f"{url}/Bulk", data=body) as answer:
                answered = orjson.loads(await answer.read())
            for op in answered.get("Operations", []):
                if op["status"] == "201":
                    ids.append(op["location"].rsplit("/", 1)[1])
                else:
                    failed += 1

        queue = list(chunks)

        async def lane() -> None:
            while queue:
                await one(queue.pop(0))

        await asyncio.gather(*(lane() for _ in range(inflight)))
    return {"ids": ids, "first_sent": first_sent, "failed": failed, "answered_s": time.time() - first_sent}


async def drive_patches(url: str, ids: list[str], rate: float) -> dict[str, Any]:
    """One PATCH per id at `rate` a second, on schedule; per id its send time and answer time."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
    sent: dict[str, float] = {}
    answered_ms: list[float] = []
    statuses: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def one(i: int, resource_id: str) -> None:
            body = orjson.dumps(
                {
                    "schemas": [PATCH_SCHEMA],
                    "Operations": [{"op": "replace", "path": "name.familyName", "value": f"Patched {i}"}],
                }
            )
            started = time.perf_counter()
            sent[resource_id] = time.time()
            async with session.patch(f"{url}/Users/{resource_id}", data=body) as answer:
                await answer.read()
                statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
            answered_ms.append((time.perf_counter() - started) * 1000)

        loop = asyncio.get_running_loop()
        start = loop.time() + 0.2
        tasks = []
        for i, resource_id in enumerate(ids):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, resource_id)))
        await asyncio.gather(*tasks)
    return {"sent": sent, "answered_ms": answered_ms, "statuses": statuses}


async def drive(args: argparse.Namespace) -> None:
    if args.drive == "bulk":
        result = await drive_bulk(args.url, args.bulk_records, args.bulk_inflight)
    else:
        ids = json.loads(Path(args.ids).read_text())
        result = await drive_patches(args.url, ids, args.rate)
    sys.stdout.buffer.write(orjson.dumps(result))


# -- The service and the measurements --------------------------------------------------------------


async def child(*arguments: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *arguments, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the client failed ({process.returncode})")
    result: dict[str, Any] = orjson.loads(out)
    return result


async def records(state: Any, action: str) -> dict[str, float]:
    """Per source id, the time of its latest succeeded `action` record in the provisioning log."""
    found: dict[str, float] = {}
    for record in await state.log_records(JOB):
        if record["action"] == action and record["status"] == "succeeded":
            found[record["source_id"]] = record["at"]
    return found


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


async def measure(workdir: Path, args: argparse.Namespace, scim_url: str | None) -> dict[str, Any]:
    raw = config(workdir, args.target, scim_url)
    engine_config = parse_engine_config(raw, base_dir=workdir)
    targets = parse_targets(raw, base_dir=workdir)
    assert engine_config.inbound is not None
    async with embedded(engine_config, targets, state_url(str(workdir / "state.db"))) as pipeline:
        server = InboundServer(engine_config.inbound, pipeline.runner, engine_config.jobs)
        await server.start()
        try:
            state = pipeline.runner.state
            common = ["--url", server.url, "--target", args.target]
            bulk = await child(
                *common,
                "--drive",
                "bulk",
                "--bulk-records",
                str(args.bulk_records),
                "--bulk-inflight",
                str(args.bulk_inflight),
            )
            deadline = time.monotonic() + 300
            while await state.count(JOB) < len(bulk["ids"]) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            created = await records(state, "create")
            bulk_s = max(created.values()) - bulk["first_sent"]

            ids = bulk["ids"][: int(args.rate * args.seconds)]
            (workdir / "ids.json").write_text(json.dumps(ids))
            patches = await child(
                *common, "--drive", "patch", "--ids", str(workdir / "ids.json"), "--rate", str(args.rate)
            )
            sent: dict[str, float] = patches["sent"]
            deadline = time.monotonic() + 60
            while True:
                await asyncio.sleep(1.0)
                updated = await records(state, "update")
                if all(i in updated for i in sent) or time.monotonic() > deadline:
                    break
        finally:
            await server.aclose()
    push_ms = [(updated[i] - at) * 1000 for i, at in sent.items() if i in updated]
    return {
        "bulk_records": len(created),
        "bulk_failed": bulk["failed"],
        "bulk_records_per_s": round(len(created) / bulk_s),
        "bulk_stored_per_s": round(len(bulk["ids"]) / bulk["answered_s"]),
        "pushes": len(sent),
        "answered_2xx": sum(n for status, n in patches["statuses"].items() if status.startswith("2")),
        "unconfirmed": len(sent) - len(push_ms),
        "push_p50_ms": percentile(push_ms, 0.50),
        "push_p99_ms": percentile(push_ms, 0.99),
        "stored_p50_ms": percentile(patches["answered_ms"], 0.50),
        "stored_p99_ms": percentile(patches["answered_ms"], 0.99),
    }


def cpu_reference_seconds() -> float:
    """Seconds for a fixed piece of pure Python: how fast this hour's core is, to set figures beside."""
    started = time.perf_counter()
    sum(i * i for i in range(10**7))
    return round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("sqlite", "scim", "null"), default="sqlite")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--bulk-records", type=int, default=20_000)
    parser.add_argument("--bulk-inflight", type=int, default=4)
    parser.add_argument("--drive", choices=("bulk", "patch"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        asyncio.run(drive(args))
        return
    if args.rate * args.seconds > args.bulk_records:
        parser.error("--bulk-records must be at least --rate times --seconds (a PATCH per user)")
    tune_process()
    cpu_ref_s = cpu_reference_seconds()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="roster-bench-") as tmp:
        workdir = Path(tmp)
        scim = None
        if args.target == "scim":
            from tests.scim_server import start_scim_server

            scim = start_scim_server(workdir)
        try:
            figures = asyncio.run(measure(workdir, args, scim.url if scim else None))
        finally:
            if scim is not None:
                scim.stop()
    result = {
        "target": args.target,
        "rate": args.rate,
        "seconds": args.seconds,
        **figures,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "cpu_ref_s": cpu_ref_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
