"""Benchmark of provisioning into a SCIM app: the whole pipeline against a plain client that only POSTs.

    python tests/bench/scim.py --users 10000

Starts scim2-server (its ASGI application under uvicorn, one worker, in a subprocess, as the tests do)
and provisions N users into it through the real pipeline, embedded: CSV source, planner, SQLite state,
in-memory broker, worker, SCIM connector. Two bare aiohttp loops, at the same concurrency, each on a
fresh server, before and after the pipeline (load on a shared machine drifts; the mean of the two
brackets it): a plain client that only POSTs the same users, which is what provisioning costs without
finding each user first; and the connector's own requests (each user's matching GETs, one `eq` filter per
matching attribute, then its POST), the most that this server does on this machine for them, since it is
bound by one core. Prints one JSON object:

* `ratio_vs_plain_post`: the pipeline's wall time over the plain client's (POSTs only, no GET);
  `roster_s`, `plain_post_s` and `plain_post_before_after_s` are those times;
* `users_per_s`: users created by the pipeline per second of its whole cycle (first read to last result);
* `ceiling_per_s`: users per second of the connector's requests sent by a bare loop;
  `fraction_of_ceiling`: the first over the second;
* `p99_latency_ms`: p99 of the pipeline's per-operation latency, from the connector starting an
  operation to its outcome (the GETs and the POST, with any wait for a free request slot), not the time
  it waited in the queue before, which measures the backlog rather than the target;
* `ceiling_p99_latency_ms`: the same for the bare loop; `ceiling_before_after_per_s`: its two runs;
* `roster_cpu_fraction`: CPU time of the Roster process (engine, broker, worker) over the cycle's wall time;
* `requests_per_object`: HTTP requests the connector sent (listing pages, searches, reads, writes) per
  user provisioned. A first cycle lists the target once (engine/pipeline/listing.py) and then POSTs each
  user without searching: about 1.0 on an empty target; each search on the way costs one more.

`--existing-fraction F` puts that share of the users in the server out of band before the pipeline runs
(with another title), so the cycle links and updates them: the first cycle against a target that already
holds accounts. `--listing-min-creates 0` turns the listing off (a search before each create, as before).

The server indexes the values a single `eq` filter asks for, so a lookup stays about as cheap as the
server fills up (an `or` of two `eq`, as the connector sent before, was a scan of every user).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common.peers.scim_schemas import USER_SCHEMA
from common.process.tuning import tune_process
from engine.cli.embedded import embedded
from engine.config import parse_engine_config
from engine.store.state import state_url
from queues.contracts import Operation
from tests.scim_server import ScimServer, start_scim_server
from workers.config import TargetConfig, parse_targets
from workers.connectors.base import Outcome
from workers.connectors.scim.connector import ScimConnector
from workers.connectors.scim.paths import parse_path
from workers.worker import TargetRuntime

COLUMNS = ("employee_id", "user_name", "given_name", "family_name", "email", "title", "department")
MAPPINGS = {  # target attribute <- CSV column
    "userName": "user_name",
    "externalId": "employee_id",
    "name.givenName": "given_name",
    "name.familyName": "family_name",
    'emails[type eq "work"].value': "email",
    "title": "title",
    "enterprise.department": "department",
}
MATCHING = ("userName", "externalId")


def people(count: int) -> list[dict[str, str]]:
    given = ["José", "Zoë", "Siobhán", "Łukasz", "Ana", "Kofi", "Mei", "Olu"]
    family = ["O'Brien", "Müller", "Nuñez", "D'Angelo", "Smith", "Ångström", "Kowalski", "Okafor"]
    return [
        {
            "employee_id": f"E{i:07d}",
            "user_name": f"user{i}@example.org",
            "given_name": given[i % 8],
            "family_name": family[i * 7 % 8],
            "email": f"user{i}@example.org",
            "title": "Engineer, Level 2",
            "department": ["Sales", "R&D", "People", "Finance", "Legal"][i % 5],
        }
        for i in range(count)
    ]


class TimedScim(ScimConnector):
    """The SCIM connector, timing each operation from its start to its outcome."""

    def __init__(self, name: str, settings: Any) -> None:
        super().__init__(name, settings)
        self.latencies_s: list[float] = []

    async def _apply_one(self, op: Operation) -> Outcome:
        started = time.perf_counter()
        outcome = await super()._apply_one(op)
        self.latencies_s.append(time.perf_counter() - started)
        return outcome


class TimedTarget:
    """A target config whose runtime runs `TimedScim`, so the bench can read its latencies."""

    def __init__(self, target: TargetConfig) -> None:
        self.name = target.name
        self.connector = TimedScim(target.name, target.settings)
        self._target = target

    def runtime(self) -> TargetRuntime:
        t = self._target
        return TargetRuntime(
            name=t.name, connector=self.connector, max_inflight=t.max_inflight, retry=t.retry
        )


def scim_config(url: str, concurrency: int, **job: Any) -> dict[str, Any]:
    """Job `bench`, people.csv's users by `MAPPINGS`, into the SCIM app at `url`."""
    return {
        "jobs": [
            {
                "name": "bench",
                "source": {"type": "csv", "path": "people.csv", "id_column": "employee_id"},
                "target": "app",
                "mappings": [
                    {"target": target, "source": column, "match": target == "userName"}
                    for target, column in MAPPINGS.items()
                ],
                **job,
            }
        ],
        "targets": [
            {
                "name": "app",
                "type": "scim",
                "url": url,
                "max_concurrency": concurrency,
                "matching": {"user": list(MATCHING)},
            }
        ],
    }


async def pipeline(
    workdir: Path,
    server: ScimServer,
    users: Sequence[dict[str, str]],
    concurrency: int,
    *,
    existing: int = 0,
    listing_min_creates: int | None = None,
) -> Any:
    with (workdir / "people.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(users)
    job = {} if listing_min_creates is None else {"listing_min_creates": listing_min_creates}
    raw = scim_config(server.url, concurrency, **job)
    config = parse_engine_config(raw, base_dir=workdir)
    (target,) = (TimedTarget(t) for t in parse_targets(raw, base_dir=workdir))
    if existing:
        await bare_loop(server, users[:existing], concurrency, lookups=False, title="Set elsewhere")
    cpu_started = time.process_time()
    async with embedded(config, [target], state_url(str(workdir / "state.db"))) as p:  # type: ignore[list-item]
        summary = await p.runner.run_cycle(config.jobs[0], trigger="bench")
    cpu_s = time.process_time() - cpu_started
    assert (summary.created, summary.failed) == (len(users), 0), summary
    requests_per_object = target.connector.requests_sent / len(users)
    return summary, target.connector.latencies_s, cpu_s, requests_per_object


def requests_of(user: dict[str, str], title: str | None = None) -> tuple[list[str], bytes]:
    """The queries of the connector's matching GETs and the body of its POST, for one user."""
    attributes = {target: user[column] for target, column in MAPPINGS.items()}
    if title is not None:
        attributes["title"] = title
    queries = [
        f"filter={quote(parse_path(name).filter(attributes[name]), safe='')}&count=50" for name in MATCHING
    ]
    body: dict[str, Any] = {"schemas": [USER_SCHEMA]}
    for name, value in {**attributes, "active": True}.items():
        parse_path(name).set(body, value)
    return queries, orjson.dumps(body)


async def bare_loop(
    server: ScimServer,
    users: Sequence[dict[str, str]],
    concurrency: int,
    *,
    lookups: bool,
    title: str | None = None,
) -> tuple[float, list[float]]:
    """Wall time, and each user's latency, of a bare loop sending each user's POST, after the connector's
    matching GETs when `lookups`."""
    requests = [requests_of(user, title) for user in users]
    pending = iter(requests)
    latencies: list[float] = []
    headers = {"Accept": "application/scim+json, application/json", "Content-Type": "application/scim+json"}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), headers=headers
    ) as session:

        async def lane() -> None:
            for queries, body in pending:  # the lanes share one iterator, so each user is sent once
                started = time.perf_counter()
                for query in queries if lookups else ():
                    async with session.get(f"{server.url}/Users?{query}") as answer:
                        found = orjson.loads(await answer.read())
                    assert answer.status == 200 and found["totalResults"] == 0, found
                async with session.post(f"{server.url}/Users", data=body) as answer:
                    await answer.read()
                assert answer.status == 201, answer.status
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies


def run_on_fresh_server(workdir: Path, phase: Any, users: Sequence[dict[str, str]], concurrency: int) -> Any:
    """Run one phase against a server of its own, stopped after."""
    server = start_scim_server(workdir)
    try:
        return asyncio.run(phase(server, users, concurrency))
    finally:
        server.stop()


def p99_ms(latencies_s: list[float]) -> float:
    ordered = sorted(latencies_s)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000.0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight to the server")
    parser.add_argument("--existing-fraction", type=float, default=0.0, help="users in the target already")
    parser.add_argument("--listing-min-creates", type=int, default=None, help="0: no listing")
    args = parser.parse_args()
    tune_process()
    users = people(args.users)
    ceiling = functools.partial(bare_loop, lookups=True)
    plain = functools.partial(bare_loop, lookups=False)
    with tempfile.TemporaryDirectory(prefix="roster-bench-scim-") as tmp:
        workdir = Path(tmp)
        before = run_on_fresh_server(workdir, ceiling, users, args.concurrency)
        plain_before = run_on_fresh_server(workdir, plain, users, args.concurrency)
        roster = functools.partial(
            pipeline,
            workdir,
            existing=int(args.users * args.existing_fraction),
            listing_min_creates=args.listing_min_creates,
        )
        summary, latencies, cpu_s, requests_per_object = run_on_fresh_server(
            workdir, roster, users, args.concurrency
        )
        plain_after = run_on_fresh_server(workdir, plain, users, args.concurrency)
        after = run_on_fresh_server(workdir, ceiling, users, args.concurrency)
    ceiling_runs = [args.users / before[0], args.users / after[0]]
    ceiling_per_s = sum(ceiling_runs) / 2
    plain_post_s = (plain_before[0] + plain_after[0]) / 2
    users_per_s = args.users / summary.elapsed_s
    print(
        json.dumps(
            {
                "users": args.users,
                "users_per_s": round(users_per_s, 1),
                "ceiling_per_s": round(ceiling_per_s, 1),
                "fraction_of_ceiling": round(users_per_s / ceiling_per_s, 3),
                "p99_latency_ms": p99_ms(latencies),
                "ceiling_p99_latency_ms": p99_ms(before[1] + after[1]),
                "ceiling_before_after_per_s": [round(rate, 1) for rate in ceiling_runs],
                "concurrency": args.concurrency,
                "roster_cpu_fraction": round(cpu_s / summary.elapsed_s, 2),
                "roster_s": round(summary.elapsed_s, 1),
                "plain_post_s": round(plain_post_s, 1),
                "plain_post_before_after_s": [round(plain_before[0], 1), round(plain_after[0], 1)],
                "ratio_vs_plain_post": round(summary.elapsed_s / plain_post_s, 2),
                "requests_per_object": round(requests_per_object, 3),
                "existing_fraction": args.existing_fraction,
            }
        )
    )


if __name__ == "__main__":
    main()
