"""Benchmark of Active Directory as a target (creating accounts, against a bare ldap3 loop) and as a
source (a full read of a large domain, then an incremental read by USN of 50 changes).

    python tests/bench/ad.py --users 2000 --concurrency 4 --objects 100000

Creating:

Provisions a private Samba AD DC (tests/samba.py) and creates `--users` accounts through the connector
(`flavor: active_directory`, over LDAPS, batches of 200 as a worker gets them, a pool of `--concurrency`
connections): each one added disabled, given its initial password and enabled, its objectGUID read back.
Then, on a fresh copy of the same domain, the same accounts from a bare ldap3 loop on as many threads (one
connection each): the add and the password-and-enable modify, nothing else. With `--rounds 2` (the
default) the two run in the order connector, ldap3, ldap3, connector, each on a fresh DC, and the best
time of each counts: a machine shared with other work then favours neither.

Reading (skipped with `--objects 0`): on another copy of the domain, `--objects` users are added offline
(tests/samba_bulk.py, through Samba's own bindings while the DC is stopped, 1,000 per OU: 100,000 in
about 140 s), the DC is started, every user is read with the LDAP source (`flavor: active_directory`,
over LDAPS), 50 users' departments are changed over LDAP and the source reads again from the first
read's watermark (`uSNChanged` above it, which the DC's LMDB database answers from its ordered index).

Prints one JSON object: users, cpus, concurrency, rounds, entries_per_s, ldap3_entries_per_s, ratio (the
connector's share of the bare loop's rate); then objects, populate_s, full_read_s, read_entries_per_s,
changed, incremental_read_s and incremental_entries (what the server sent for the incremental read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ldap3

from engine.sources.ldap import LdapSource, parse_ldap_source
from queues.contracts import Operation
from tests.ad.directory import connect, source
from tests.samba import SambaDC, bulk_command, bulk_user_dn, copy_of, new_password, provision
from workers.connectors.base import Applied
from workers.connectors.ldap.ad import password_value
from workers.connectors.ldap.ad_connector import ActiveDirectoryConnector
from workers.connectors.ldap.settings import parse_ldap_settings

BATCH = 200
CHANGED = 50


def person(i: int) -> dict[str, Any]:
    return {
        "employeeID": f"E{i:06d}",
        "userName": f"user{i}",
        "upn": f"user{i}@roster.test",
        "givenName": f"Given{i}",
        "familyName": f"Family{i}",
        "displayName": f"Given{i} Family{i}",
        "initialPassword": f"Initial-{i:06d}-Pw!",
    }


def people_ou(dc: SambaDC) -> str:
    return f"OU=People,{dc.base_dn}"


def admin(dc: SambaDC) -> ldap3.Connection:
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file))
    server = ldap3.Server(dc.address, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(
        server, user=dc.admin, password=dc.password, auto_bind=True, check_names=False, raise_exceptions=False
    )


def prepare(dc: SambaDC) -> None:
    conn = admin(dc)
    assert conn.add(people_ou(dc), ["organizationalUnit"]), conn.result
    conn.unbind()


async def through_connector(dc: SambaDC, users: int, concurrency: int) -> float:
    raw = {
        "flavor": "active_directory",
        "url": dc.ldaps_url,
        "ca_file": str(dc.ca_file),
        "bind_dn": f"CN=Administrator,CN=Users,{dc.base_dn}",
        "bind_password": dc.password,
        "base_dn": dc.base_dn,
        "pool_size": concurrency,
        "users": {
            "dn": f"CN={{displayName}},{people_ou(dc)}",
            "attributes": {"userName": "sAMAccountName", "upn": "userPrincipalName", "familyName": "sn"},
            "match": "employeeID",
            "password": {"attribute": "initialPassword"},
        },
    }
    connector = ActiveDirectoryConnector("ad", parse_ldap_settings("targets[0]", raw, base_dir=Path("/")))
    ops = [
        Operation(
            op_id=f"op-{i}",
            job="people",
            target="ad",
            cycle_id="bench",
            action="create",
            object_type="user",
            source_id=f"E{i:06d}",
            attributes=person(i),
            desired_hash="h",
            matching=[["employeeID", f"E{i:06d}"]],
        )
        for i in range(users)
    ]
    async with connector:
        started = time.perf_counter()
        # As the worker runs them: batches of BATCH, `concurrency` batches' worth of connections busy.
        outcomes = []
        for at in range(0, users, BATCH * concurrency):
            parts = [ops[i : i + BATCH] for i in range(at, min(users, at + BATCH * concurrency), BATCH)]
            for done in await asyncio.gather(*(connector.apply(part) for part in parts)):
                outcomes += done
        elapsed = time.perf_counter() - started
    failed = [o for o in outcomes if not isinstance(o, Applied)]
    if failed:
        raise SystemExit(f"{len(failed)} creates failed, e.g. {failed[0]}")
    return elapsed


def through_ldap3(dc: SambaDC, users: int, concurrency: int) -> float:
    def work(indexes: range) -> None:
        conn = admin(dc)
        for i in indexes:
            p = person(i)
            dn = f"CN={p['displayName']},{people_ou(dc)}"
            attributes = {
                "sAMAccountName": p["userName"],
                "userPrincipalName": p["upn"],
                "employeeID": p["employeeID"],
                "givenName": p["givenName"],
                "sn": p["familyName"],
                "displayName": p["displayName"],
                "userAccountControl": "514",
            }
            assert conn.add(dn, ["user", "organizationalPerson", "person", "top"], attributes), conn.result
            changes = {
                "unicodePwd": [(ldap3.MODIFY_REPLACE, [password_value(p["initialPassword"])])],
                "userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])],
            }
            assert conn.modify(dn, changes), conn.result
        conn.unbind()

    share = -(-users // concurrency)
    threads = [
        threading.Thread(target=work, args=(range(k * share, min(users, (k + 1) * share)),))
        for k in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


async def read(settings: dict[str, Any], since: str | None = None) -> tuple[LdapSource, int, float]:
    src = LdapSource(parse_ldap_source("source", settings, base_dir=Path(".")), since=since)
    started = time.perf_counter()
    count = 0
    async for batch in src.batches(1000):
        count += len(batch)
    return src, count, time.perf_counter() - started


async def read_domain(template: Path, password: str, objects: int, workdir: Path) -> dict[str, Any]:
    (workdir / "source").mkdir()
    dc = copy_of(template, workdir / "source", password)
    started = time.perf_counter()
    subprocess.run(
        bulk_command(dc.conf, "people", objects),
        check=True,
        stdout=subprocess.PIPE,
    )
    populate_s = time.perf_counter() - started
    dc.start()
    try:
        base = f"OU=people,{dc.base_dn}"
        settings = source(
            dc, base, attributes=["sAMAccountName", "givenName", "sn", "mail", "department"], incremental=True
        )
        full, count, full_s = await read(settings)
        assert full.full and count == objects and not full.problems, (count, full.problems[:3])
        conn = connect(dc)
        step = max(1, objects // CHANGED)
        for i in range(0, step * CHANGED, step):
            dn = bulk_user_dn(i, "people")
            assert conn.modify(dn, {"department": [(ldap3.MODIFY_REPLACE, ["d1"])]}), conn.result
        conn.unbind()
        incremental, changed, incremental_s = await read(settings, since=full.watermark)
        assert not incremental.full and changed == min(CHANGED, objects), changed
    finally:
        dc.stop()
    return {
        "objects": objects,
        "populate_s": round(populate_s, 1),
        "full_read_s": round(full_s, 2),
        "read_entries_per_s": round(objects / full_s),
        "changed": changed,
        "incremental_read_s": round(incremental_s, 3),
        "incremental_entries": incremental.entries_read,
    }


def main() -> None:
    raw_help = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw_help)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--objects", type=int, default=100_000, help="users in the source domain; 0 skips")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roster-ad-bench-") as folder:
        root, password = Path(folder), new_password()
        (root / "template").mkdir()
        provision(root / "template", password)
        times: dict[str, list[float]] = {"connector": [], "ldap3": []}
        order = [("connector", "ldap3"), ("ldap3", "connector")]
        for run, name in enumerate(n for r in range(args.rounds) for n in order[r % 2]):
            (root / f"{run}").mkdir()
            dc = copy_of(root / "template", root / f"{run}", password).start()
            try:
                prepare(dc)
                if name == "connector":
                    times[name].append(asyncio.run(through_connector(dc, args.users, args.concurrency)))
                else:
                    times[name].append(through_ldap3(dc, args.users, args.concurrency))
            finally:
                dc.stop()
        reading = {}
        if args.objects:
            reading = asyncio.run(read_domain(root / "template", password, args.objects, root))
    ours, bare = args.users / min(times["connector"]), args.users / min(times["ldap3"])
    print(
        json.dumps(
            {
                "users": args.users,
                "cpus": os.cpu_count(),
                "concurrency": args.concurrency,
                "rounds": args.rounds,
                "entries_per_s": round(ours, 1),
                "ldap3_entries_per_s": round(bare, 1),
                "ratio": round(ours / bare, 3),
                **reading,
            }
        )
    )


if __name__ == "__main__":
    main()
