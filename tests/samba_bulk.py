"""Adds users to a stopped Samba DC's database in one transaction, through Samba's own Python bindings
(its SamDB, so SIDs, GUIDs and USNs are made as by an LDAP add): ~10x faster than adding over LDAP.

    /usr/bin/python3 tests/samba_bulk.py SMB_CONF BASE_DN OU_NAME COUNT

Run by tests/samba.py's `with_users` (for the tests' large groups and tests/bench/ad.py's large domain)
with the system Python, which has Samba's bindings (the venv has not).
"""

import sys
import time

import samba.param
from samba.auth import system_session
from samba.samdb import SamDB

CHUNK = 2000
PER_OU = 1000
"""Users per OU (tests/samba.py's BULK_PER_OU): Samba's one-level index of an OU is one record rewritten
on each add below it."""


def bucket(number: int, ou: str, base: str) -> str:
    """The OU (under `OU=ou,base`) that user `number` goes to."""
    return f"OU=b{number // PER_OU:03d},OU={ou},{base}"


def main() -> None:
    conf, base, ou, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lp = samba.param.LoadParm()
    lp.load(conf)
    # As `samba-tool domain join` loads a replica: no sub-transaction per add (a failed add fails the
    # whole transaction) and a large index cache, without which each add copies whole index lists.
    options = ["batch_mode:1", "transaction_index_cache_size:202481"]
    db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp, options=options)
    started = time.perf_counter()
    db.add({"dn": f"OU={ou},{base}", "objectClass": "organizationalUnit"})
    for b in range(0, count, PER_OU):
        db.add({"dn": bucket(b, ou, base), "objectClass": "organizationalUnit"})
    for first in range(0, count, CHUNK):  # one transaction of 100,000 adds slows down as it grows
        db.transaction_start()
        try:
            for i in range(first, min(first + CHUNK, count)):
                name = f"user{i:06d}"
                db.add(
                    {
                        "dn": f"CN={name},{bucket(i, ou, base)}",
                        "objectClass": "user",
                        "sAMAccountName": name,
                        "givenName": f"Given{i}",
                        "sn": f"Family{i}",
                        "mail": f"{name}@roster.test",
                        "department": "d0",
                        "userAccountControl": "544",
                    }
                )
        except BaseException:
            db.transaction_cancel()
            raise
        db.transaction_commit()
        print(f"{min(first + CHUNK, count)} {time.perf_counter() - started:.1f}", file=sys.stderr, flush=True)
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
