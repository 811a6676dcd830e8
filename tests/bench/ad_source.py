"""Benchmark of reading Active Directory (a private Samba DC) as a source: one full read, then an
incremental read by USN of 50 changed users.

    python tests/bench/ad_source.py --objects 100000

Provisions a domain, adds `--objects` users to it offline (tests/bench/samba_bulk.py, through Samba's
own bindings while the DC is stopped, 1,000 per OU: adding them over LDAP runs at ~150/s; either way
Samba slows down as the domain grows, so 100,000 take long: see docs/benchmarks.md), starts the DC,
reads every user with the LDAP source (`flavor: active_directory`, over LDAPS), changes the
department of 50 users over LDAP and reads again from the first read's watermark. Prints one JSON
object: objects, populate_s, full_read_s, entries_per_s, changed, incremental_read_s,
incremental_entries (what the server sent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ldap3

from engine.sources.ldap import LdapSource, parse_ldap_source
from tests.ad.directory import connect, source
from tests.samba import copy_of, new_password, provision

CHANGED = 50
OU = "people"
BULK = Path(__file__).with_name("samba_bulk.py")


async def read(settings: dict[str, Any], since: str | None = None) -> tuple[LdapSource, int, float]:
    src = LdapSource(parse_ldap_source("source", settings, base_dir=Path(".")), since=since)
    started = time.perf_counter()
    count = 0
    async for batch in src.batches(1000):
        count += len(batch)
    return src, count, time.perf_counter() - started


async def bench(objects: int, workdir: Path) -> dict[str, Any]:
    password = new_password()
    (workdir / "template").mkdir()
    provision(workdir / "template", password)
    (workdir / "dc").mkdir()
    dc = copy_of(workdir / "template", workdir / "dc", password)
    started = time.perf_counter()
    subprocess.run(
        ["/usr/bin/python3", str(BULK), str(dc.conf), dc.base_dn, OU, str(objects)],
        check=True,
        stdout=subprocess.PIPE,
    )
    populate_s = time.perf_counter() - started
    dc.start()
    try:
        base = f"OU={OU},{dc.base_dn}"
        settings = source(
            dc, base, attributes=["sAMAccountName", "givenName", "sn", "mail", "department"], incremental=True
        )
        full, count, full_s = await read(settings)
        assert full.full and count == objects and not full.problems, (count, full.problems[:3])
        conn = connect(dc)
        step = max(1, objects // CHANGED)
        for i in range(0, step * CHANGED, step):
            dn = f"CN=user{i:06d},OU=b{i // 1000:03d},{base}"  # samba_bulk.bucket
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
        "entries_per_s": round(objects / full_s),
        "changed": changed,
        "incremental_read_s": round(incremental_s, 3),
        "incremental_entries": incremental.entries_read,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roster-ad-bench-") as workdir:
        print(json.dumps(asyncio.run(bench(args.objects, Path(workdir)))))


if __name__ == "__main__":
    main()
