"""Benchmark of provisioning into OpenLDAP against the server's own ceiling.

    python tests/bench/ldap.py --users 20000 --groups 100

Runs an initial cycle of the embedded pipeline (CSV source, real planner and state store, in-memory broker,
worker, LDAP connector with a pool of `--concurrency` connections) into a private slapd; then adds the same
entries to a fresh slapd from a bare loop of ldap3 on as many threads, one connection each: the ceiling.
Then a group job (JSON Lines, each user in two of `--groups` groups, members as employee ids) runs its
initial cycle through the engine: the members resolve to DNs from the users' state.
Prints one JSON object: users, entries_per_s, ceiling_per_s, fraction_of_ceiling, and for the groups
group_cycle_s and members_per_s (memberships written per second).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ldap3

from common.process.tuning import tune_process
from tests.bench.pipeline import COLUMNS, run_cycles, write_people
from tests.slapd import ROOT_DN, SUFFIX, Slapd, make_slapd

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
# CSV column -> LDAP attribute of an inetOrgPerson.
ATTRIBUTES = {
    "employee_id": "uid",
    "given_name": "givenName",
    "family_name": "sn",
    "email": "mail",
    "department": "departmentNumber",
    "title": "title",
    "phone": "telephoneNumber",
    "location": "l",
}


def write_groups(workdir: Path, users: int, groups: int) -> int:
    """Each user in groups `i % groups` and `(i * 7 + 3) % groups`; returns the count of memberships."""
    members: dict[int, list[str]] = {g: [] for g in range(groups)}
    with (workdir / "people.csv").open(encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            for g in dict.fromkeys((i % groups, (i * 7 + 3) % groups)):
                members[g].append(row["employee_id"])
    with (workdir / "groups.jsonl").open("w", encoding="utf-8") as f:
        for g, ids in members.items():
            f.write(json.dumps({"group_id": f"G{g:04d}", "name": f"Group {g}", "members": ids}) + "\n")
    return sum(len(ids) for ids in members.values())


def job(workdir: Path, server: Slapd, concurrency: int, groups: int) -> dict[str, Any]:
    mappings = [{"target": c, "source": c, "match": c == "employee_id"} for c in COLUMNS]
    mappings.append({"target": "cn", "expression": 'Join(" ", [given_name], [family_name])'})
    mappings.append({"target": "o", "constant": "Example Corp"})
    group_job = {
        "name": "bench-groups",
        "object_type": "group",
        "source": {"type": "jsonl", "path": str(workdir / "groups.jsonl"), "id_column": "group_id"},
        "target": "directory",
        "members": {"source": "members", "job": "bench"},
        "mappings": [{"target": "displayName", "source": "name", "match": True}],
    }
    return {
        "jobs": [
            {
                "name": "bench",
                "source": {"type": "csv", "path": str(workdir / "people.csv"), "id_column": "employee_id"},
                "target": "directory",
                "mappings": mappings,
            },
            *([group_job] if groups else []),
        ],
        "targets": [
            {
                "name": "directory",
                "type": "ldap",
                "url": server.url,
                "bind_dn": ROOT_DN,
                "bind_password": server.password,
                "base_dn": SUFFIX,
                "pool_size": concurrency,
                "max_inflight": concurrency,
                "users": {"dn": f"uid={{employee_id}},{PEOPLE}", "attributes": ATTRIBUTES},
                "groups": {"dn": f"cn={{displayName}},{GROUPS}", "attributes": {"displayName": "cn"}},
            }
        ],
    }


def entries(workdir: Path) -> list[tuple[str, dict[str, list[str]]]]:
    """The entries the pipeline makes, built here the way its mappings do."""
    import csv

    out = []
    with (workdir / "people.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            attributes = {ATTRIBUTES[k]: [v] for k, v in row.items() if v}
            attributes["cn"] = [f"{row['given_name']} {row['family_name']}"]
            attributes["o"] = ["Example Corp"]
            attributes["objectClass"] = ["inetOrgPerson"]
            out.append((f"uid={row['employee_id']},{PEOPLE}", attributes))
    return out


def ceiling(server: Slapd, items: list[tuple[str, dict[str, list[str]]]], concurrency: int) -> float:
    """Adds per second from `concurrency` threads, one ldap3 connection each, with nothing else around."""
    lanes = [items[i::concurrency] for i in range(concurrency)]
    failures: list[Any] = []

    def lane(work: list[tuple[str, dict[str, list[str]]]]) -> None:
        conn = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), ROOT_DN, server.password)
        conn.bind()
        for dn, attributes in work:
            if not conn.add(dn, attributes=attributes):
                failures.append(conn.result)
        conn.unbind()

    threads = [threading.Thread(target=lane, args=(work,)) for work in lanes]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:3]
    return len(items) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    tune_process()
    with tempfile.TemporaryDirectory(prefix="roster-bench-ldap-") as tmp:
        workdir = Path(tmp)
        write_people(workdir / "people.csv", args.users)
        memberships = write_groups(workdir, args.users, args.groups) if args.groups else 0
        first = make_slapd(workdir / "slapd-a")
        try:
            raw = job(workdir, first, args.concurrency, args.groups)
            summary, *grouped = asyncio.run(run_cycles(workdir, raw, str(workdir / "state.db"), 1))
            assert summary.created == args.users and summary.failed == 0, summary
            held = len(first.entries(PEOPLE, "(objectClass=inetOrgPerson)", ["uid"]))
            assert held == args.users, held
            for groups in grouped:
                assert (groups.created, groups.failed, groups.pending_members) == (args.groups, 0, 0), groups
            written = first.entries(GROUPS, "(objectClass=groupOfNames)", ["member"]).values()
            assert sum(len(e["member"]) for e in written) == memberships
        finally:
            first.stop()
        second = make_slapd(workdir / "slapd-b")
        try:
            top = ceiling(second, entries(workdir), args.concurrency)
        finally:
            second.stop()
    print(
        json.dumps(
            {
                "users": args.users,
                "concurrency": args.concurrency,
                "entries_per_s": round(summary.ops_per_s),
                "ceiling_per_s": round(top),
                "fraction_of_ceiling": round(summary.ops_per_s / top, 3),
                "p50_latency_ms": round(summary.p50_latency_ms or 0, 1),
                "p99_latency_ms": round(summary.p99_latency_ms or 0, 1),
                "groups": args.groups,
                "memberships": memberships,
                "group_cycle_s": round(grouped[0].elapsed_s, 2) if grouped else None,
                "members_per_s": round(memberships / grouped[0].elapsed_s) if grouped else None,
            }
        )
    )


if __name__ == "__main__":
    main()
