"""Benchmark of reconciliation against the target's own listing time.

    python tests/bench/reconcile.py --target sql --objects 100000
    python tests/bench/reconcile.py --target scim --objects 10000

Provisions N people into the target through the embedded pipeline (SQL: a SQLite table; SCIM: a
scim2-server started as the tests start it), changes one in a hundred straight in the target, then
reconciles the job without acting (`act=False`: the corrections are an ordinary cycle, which the
pipeline bench measures), and lists the same objects with a bare client of the target's own (SQL: one
select of the same columns with sqlite3; SCIM: GET /Users pages of 1,000 with the same `attributes=`).
Checks that exactly the objects changed were found drifted. Prints one JSON object:

* `reconcile_objects_per_s`: objects classified per second of the whole reconciliation (list the
  target through the worker, read and map the source, load the state, compare, log the findings);
* `reconcile_s`, `listing_s`: that time, and the bare listing's;
* `ratio_vs_listing`: `listing_s` over `reconcile_s`: 1.0 would be a reconciliation as fast as
  merely reading the target (aim: at least 0.8);
* `listing_in_reconcile_s`: when, within the reconciliation, the listing through the worker was in;
* `drifted`, `objects`, `target`;
* `source_read_s`: reading the source and mapping every object, alone, after the reconciliation:
  what any reconciliation must do besides listing, so a `reconcile_s` below it is out of reach
  (a `ratio_vs_listing` of 0.8 needs `source_read_s` below 1.25 times `listing_s`).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common.process.tuning import tune_process
from engine.cli.embedded import embedded
from engine.config import JobConfig, parse_engine_config
from engine.pipeline.cycles import SOURCE_BATCH
from engine.pipeline.reconciling import reconcile
from engine.store.state import state_url
from tests.bench.pipeline import COLUMNS as SQL_COLUMNS
from tests.bench.pipeline import config as sql_config
from tests.bench.pipeline import write_people
from tests.bench.scim import COLUMNS as SCIM_COLUMNS
from tests.bench.scim import MAPPINGS, people, scim_config
from tests.scim_server import start_scim_server
from workers.config import parse_targets
from workers.connectors.scim.paths import attr_path

DRIFT_EVERY = 100


async def measured(workdir: Path, raw: dict[str, Any]) -> tuple[float, float, int, float]:
    """Provision, let `change` edit the target (set by the caller in `raw['_change']`), reconcile:
    the reconciliation's seconds, when its listing was in, how many drifted objects it found, and
    the seconds of reading and mapping the source alone."""
    change = raw.pop("_change")
    config = parse_engine_config(raw, base_dir=workdir)
    targets = parse_targets(raw, base_dir=workdir)
    async with embedded(config, targets, state_url(str(workdir / "state.db"))) as p:
        job = config.jobs[0]
        summary = await p.runner.run_cycle(job, trigger="bench")
        assert summary.failed == 0, summary
        await change()
        started = time.perf_counter()
        found = await reconcile(p.runner, job, trigger="bench", act=False)
        elapsed = time.perf_counter() - started
        source_s = await read_and_map(job)
    assert found.status == "succeeded", found
    return elapsed, found.listing_s, found.situations.get("drifted", 0), source_s


async def read_and_map(job: JobConfig) -> float:
    """Seconds to read the job's source and map every object, and nothing else: what any
    reconciliation does besides listing the target, so no reconciliation takes less."""
    mapper = job.mapper()
    started = time.perf_counter()
    async for batch in job.source.open(None).batches(SOURCE_BATCH):
        for obj in batch:
            mapper.map(obj.attributes)
    return time.perf_counter() - started


async def sql(objects: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        write_people(workdir / "people.csv", objects)
        database = workdir / "target.db"
        target = {
            "name": "db",
            "type": "sql",
            "url": f"sqlite:///{database}",
            "table": "accounts",
            "key_column": "employee_id",
            "active_column": "active",
            "create_table": True,
            "columns": {c: c for c in (*SQL_COLUMNS, "company")},
        }
        raw = sql_config(workdir, target)

        async def change() -> None:
            with sqlite3.connect(database) as conn:
                conn.execute(f"UPDATE accounts SET title = 'HACKED' WHERE rowid % {DRIFT_EVERY} = 0")

        raw["_change"] = change
        reconcile_s, listing_in, drifted, source_s = await measured(workdir, raw)
        started = time.perf_counter()
        with sqlite3.connect(database) as conn:
            rows = conn.execute(f"SELECT {', '.join((*SQL_COLUMNS, 'company'))} FROM accounts").fetchall()
        listing_s = time.perf_counter() - started
        assert len(rows) == objects
    assert drifted == objects // DRIFT_EVERY, drifted
    return figures("sql", objects, reconcile_s, listing_s, listing_in, drifted, source_s)


async def scim(objects: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        users = people(objects)
        with (workdir / "people.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=SCIM_COLUMNS)
            writer.writeheader()
            writer.writerows(users)
        server = start_scim_server(workdir)
        try:
            raw = scim_config(server.url, 8)
            changed = 0

            async def change() -> None:
                nonlocal changed
                async with aiohttp.ClientSession() as session:
                    listed = await list_users(session, server.url, ["userName"])
                    for user in listed[::DRIFT_EVERY]:
                        body = {
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "title", "value": "HACKED"}],
                        }
                        async with session.patch(f"{server.url}/Users/{user['id']}", json=body) as answer:
                            assert answer.status < 300, await answer.text()
                        changed += 1

            raw["_change"] = change
            reconcile_s, listing_in, drifted, source_s = await measured(workdir, raw)
            started = time.perf_counter()
            async with aiohttp.ClientSession() as session:
                listed = await list_users(session, server.url, list(MAPPINGS))
            listing_s = time.perf_counter() - started
            assert len(listed) == objects
        finally:
            server.stop()
    assert drifted == changed, (drifted, changed)
    return figures("scim", objects, reconcile_s, listing_s, listing_in, drifted, source_s)


async def list_users(session: aiohttp.ClientSession, url: str, attributes: list[str]) -> list[dict[str, Any]]:
    """Every user, paged as the connector pages, asking for the attributes the job maps."""
    wanted = quote(
        ",".join(dict.fromkeys(f"{p.prefix}{p.name}" for p in map(attr_path, attributes))), safe=",:."
    )
    users: list[dict[str, Any]] = []
    while True:
        query = f"startIndex={len(users) + 1}&count=1000&attributes={wanted}"
        async with session.get(f"{url}/Users?{query}") as answer:
            page = await answer.json(content_type=None)
        users += page.get("Resources") or []
        if not page.get("Resources") or len(users) >= page["totalResults"]:
            return users


def figures(
    target: str,
    objects: int,
    reconcile_s: float,
    listing_s: float,
    listing_in: float,
    drifted: int,
    source_s: float,
) -> dict[str, Any]:
    return {
        "target": target,
        "objects": objects,
        "reconcile_objects_per_s": round(objects / reconcile_s),
        "reconcile_s": round(reconcile_s, 2),
        "listing_s": round(listing_s, 2),
        "ratio_vs_listing": round(listing_s / reconcile_s, 2),
        "listing_in_reconcile_s": round(listing_in, 2),
        "drifted": drifted,
        "source_read_s": round(source_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("sql", "scim"), required=True)
    parser.add_argument("--objects", type=int, default=None, help="default: 100,000 (sql), 10,000 (scim)")
    args = parser.parse_args()
    tune_process()
    objects = args.objects or (100_000 if args.target == "sql" else 10_000)
    result = asyncio.run(sql(objects) if args.target == "sql" else scim(objects))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
