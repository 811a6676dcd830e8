"""Benchmark of the provisioning log's search (the console's "Provisioning logs" page) at scale.

    python tests/bench/logsearch.py --records 1000000
    python tests/bench/logsearch.py --records 1000000 --store postgresql://postgres@127.0.0.1:5432/roster_bench

Fills an empty state store (a SQLite file in a temporary directory by default) with `--records` log
records of four jobs over 30 days: hourly cycles, many people, every action and status, attributes
with names and mails, failures with their messages. They are built and written by the engine's own
code (`StateStore.write_log`: the stored rows, the compressed attributes and the people's search
keys), `--chunk` records a transaction, with the times they hold (on PostgreSQL then VACUUM ANALYZE,
as autovacuum does after a bulk load). Then runs the searches the console
makes, newest first, a page of `--page` records, each `--repeat` times over other people, jobs,
cycles and times: by person (source id, target id, a name's first letters, a mail), by job and
status, by a day, by cycle, combined, and a later page through the cursor. Prints one JSON object:
records, fill_s, store_mb, log_search_p50_ms and log_search_p99_ms over every search, slowest_search
(the name of the search with the largest p99), p99_ms by search and the records each found on
average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.store import history
from engine.store.history import LogFilter
from engine.store.state import StateStore, state_url

JOBS = ("hr-to-ad", "hr-to-scim", "hr-to-ldap", "hr-to-db")
DAYS = 30
START = 1_796_000_000.0  # 2026-11-29
GIVEN = (
    "Ada Alan Alice Amir Ana Anders Anna Arjun Astrid Ben Bianca Carla Chen Chloe Dan Daria David Elena "
    "Emil Emma Erik Eva Farah Felix Fatima Finn Grace Hana Hugo Ines Ivan Jack Jana Jin Jonas Jose Julia "
    "Kai Karin Kenji Lara Lea Leon Lin Lucas Luis Maja Marco Maria Marta Max Mei Mia Nadia Nils Noah "
    "Olga Omar Oscar Paula Pedro Priya Rafael Rosa Sami Sara Sofia Sven Tara Theo Tom Una Vera Wei Yara Zoe"
).split()
FAMILY = (
    "Abbott Adler Alvarez Andersen Bauer Becker Berg Bianchi Brown Castro Chen Costa Cruz Dahl Diaz "
    "Dubois Eriksen Evans Fischer Fontaine Garcia Gomez Gruber Hansen Hoffmann Huang Ito Jensen Johansson "
    "Kaur Keller Kim Klein Kowalski Kumar Larsen Laurent Lee Lopez Lovelace Martin Meyer Moreau Moreno "
    "Muller Murphy Nakamura Nguyen Novak Olsen Park Patel Pereira Petrov Popescu Quinn Ricci Rossi Ruiz "
    "Sato Schmidt Schneider Silva Singh Smith Sousa Suzuki Tanaka Taylor Thomas Torres Wagner Walker "
    "Wang Weber Wilson Wolf Wong Yamamoto Young Zhang Ziegler"
).split()
ACTIONS = (
    ("update", 70),
    ("create", 10),
    ("disable", 6),
    ("delete", 3),
    ("staged_delete", 1),
    ("reconcile", 2),
)
STATUSES = (("succeeded", 90), ("failed", 5), ("retrying", 3), ("skipped", 1), ("warning", 1))
TITLES = ("Engineer", "Analyst", "Manager", "Designer", "Nurse", "Teacher", "Clerk", "Director")
DEPARTMENTS = ("Sales", "Support", "Finance", "R&D", "Operations", "Legal", "HR")


class People:
    """Who the records are about: a name and mail each, and a target id per job."""

    def __init__(self, count: int, rng: random.Random) -> None:
        self.given = [rng.choice(GIVEN) for _ in range(count)]
        self.family = [rng.choice(FAMILY) for _ in range(count)]

    def source_id(self, n: int) -> str:
        return f"E{n:07d}"

    def mail(self, n: int) -> str:
        return f"{self.given[n]}.{self.family[n]}{n}@example.com".lower()

    def target_id(self, n: int, job: str) -> str:
        if job == "hr-to-ad":
            return f"CN={self.given[n]} {self.family[n]} {n},OU=People,DC=corp,DC=example,DC=com"
        if job == "hr-to-ldap":
            return f"uid={self.given[n].lower()}{n},ou=people,dc=example,dc=com"
        if job == "hr-to-scim":
            return f"{n * 2654435761 % 2**32:08x}-5c1d-4e7a-9b0f-{n:012x}"
        return str(n + 100_000)

    def attributes(self, n: int, job: str, rng: random.Random) -> str:
        given, family, mail = self.given[n], self.family[n], self.mail(n)
        title, department = rng.choice(TITLES), rng.choice(DEPARTMENTS)
        if job == "hr-to-scim":
            body: dict[str, Any] = {
                "userName": mail,
                "name": {"givenName": given, "familyName": family},
                "displayName": f"{given} {family}",
                "emails": [{"value": mail, "type": "work", "primary": True}],
                "title": title,
                "active": True,
            }
        elif job == "hr-to-db":
            body = {"employee_no": n, "first": given, "last": family, "email": mail, "dept": department}
        else:
            body = {
                "cn": f"{given} {family}",
                "givenName": given,
                "sn": family,
                "mail": mail,
                "title": title,
                "department": department,
                "userPassword": "***",
            }
        return orjson.dumps(body).decode()


def _weighted(choices: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    return [c for c, _ in choices], [w for _, w in choices]


def cycle_id(job: str, at: float) -> str:
    hour = int((at - START) // 3600)
    stamp = time.strftime("%Y%m%dT%H0000", time.gmtime(START + hour * 3600))
    return f"{stamp}-{JOBS.index(job):02d}{hour:04x}"


def records(count: int, total: int, people: People, rng: random.Random, start: int) -> list[tuple[Any, ...]]:
    """Records `start` to `start + count` of the log (values of `logrows.FIELDS` but the id), oldest
    first, spread evenly over `DAYS` days."""
    actions, action_weights = _weighted(ACTIONS)
    statuses, status_weights = _weighted(STATUSES)
    out = []
    span = DAYS * 86_400.0
    for i in range(start, start + count):
        at = START + span * i / total
        job = JOBS[i % len(JOBS)] if rng.random() < 0.8 else JOBS[0]
        n = rng.randrange(len(people.given))
        action = rng.choices(actions, action_weights)[0]
        status = rng.choices(statuses, status_weights)[0] if action != "reconcile" else "in_step"
        cycle = cycle_id(job, at)
        failed = status in ("failed", "retrying")
        sends = action in ("create", "update") or (action == "disable" and rng.random() < 0.5)
        out.append(
            (
                at,
                cycle,
                f"{cycle}-{i}",
                job,
                people.source_id(n),
                people.target_id(n, job) if action != "create" or status == "succeeded" else None,
                action,
                status,
                1 + failed * rng.randrange(4),
                "TransientError" if status == "retrying" else ("PermanentError" if failed else None),
                "503" if status == "retrying" else ("400" if failed else None),
                f"the target said: invalid value for {rng.choice(('mail', 'title', 'manager'))}"
                if failed
                else None,
                rng.uniform(5, 400),
                rng.uniform(1, 50),
                people.attributes(n, job, rng) if sends else None,
            )
        )
    return out


async def fill(store: StateStore, people: People, count: int, chunk: int, seed: int) -> float:
    rng = random.Random(seed)
    started = time.perf_counter()
    for start in range(0, count, chunk):
        await store.write_log(records(min(chunk, count - start), count, people, rng, start), keep_times=True)
        if start // chunk % 20 == 0:
            print(f"filled {start + chunk:,} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return time.perf_counter() - started


Search = Callable[[random.Random], LogFilter]


def searches(people: People, page: int) -> dict[str, Search]:
    """The console's searches, each a filter made afresh (another person, job, day) per run."""
    day = 86_400.0

    def someone(rng: random.Random) -> int:
        return rng.randrange(len(people.given))

    def when(rng: random.Random, days: float) -> dict[str, float]:
        since = START + rng.uniform(0, DAYS - days) * day
        return {"since": since, "until": since + days * day}

    def of(**fields: Any) -> LogFilter:
        return LogFilter(newest_first=True, limit=page, **fields)

    return {
        "newest": lambda rng: of(),
        "person_source_id": lambda rng: of(person=people.source_id(someone(rng))),
        "person_target_id": lambda rng: of(person=people.target_id(someone(rng), rng.choice(JOBS))),
        "person_name_prefix": lambda rng: of(person=rng.choice(FAMILY)[:4].lower()),
        "person_full_name": lambda rng: of(person=f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"),
        "person_mail": lambda rng: of(person=people.mail(someone(rng)).upper()),
        "person_and_job_failed": lambda rng: of(person=rng.choice(FAMILY)[:5], job=JOBS[0], status="failed"),
        "job_status": lambda rng: of(
            job=rng.choice(JOBS), status=rng.choice(("failed", "retrying", "skipped"))
        ),
        "status": lambda rng: of(status=rng.choice(("failed", "warning"))),
        "action": lambda rng: of(action=rng.choice(("delete", "staged_delete"))),
        "day": lambda rng: of(**when(rng, 1)),
        "cycle": lambda rng: of(cycle_id=cycle_id(rng.choice(JOBS), START + rng.uniform(0, DAYS * day))),
        "job_action_status_week": lambda rng: of(
            job=rng.choice(JOBS), action="update", status="failed", **when(rng, 7)
        ),
        "job_day": lambda rng: of(job=rng.choice(JOBS), **when(rng, 1)),
    }


async def later_page(store: StateStore, where: LogFilter, pages: int) -> LogFilter:
    """`where` at its page `pages + 1`, reached through the cursor."""
    for _ in range(pages):
        found = await history.query_log(store, where)
        if len(found) < where.limit:
            break
        where = LogFilter(**{**_fields(where), "cursor": (found[-1]["at"], found[-1]["id"])})
    return where


def _fields(where: LogFilter) -> dict[str, Any]:
    return {name: getattr(where, name) for name in LogFilter.__dataclass_fields__}


async def measure(
    store: StateStore, people: People, repeat: int, page: int, seed: int
) -> dict[str, list[float]]:
    rng = random.Random(seed + 1)
    made = searches(people, page)
    timings: dict[str, list[float]] = {name: [] for name in made}
    timings["job_status_page_20"] = []
    timings["newest_page_200"] = []
    for _round in range(repeat):
        for name, search in made.items():
            where = search(rng)
            started = time.perf_counter()
            found = await history.query_log(store, where)
            timings[name].append((time.perf_counter() - started) * 1000)
            FOUND[name] = FOUND.get(name, 0) + len(found)
        for name, base, pages in (
            (
                "job_status_page_20",
                LogFilter(newest_first=True, limit=page, job=rng.choice(JOBS), status="failed"),
                19,
            ),
            (
                "newest_page_200",
                LogFilter(newest_first=True, limit=page, since=START + rng.uniform(0, 20) * 86_400.0),
                199,
            ),
        ):
            where = await later_page(store, base, pages)
            started = time.perf_counter()
            found = await history.query_log(store, where)
            timings[name].append((time.perf_counter() - started) * 1000)
            FOUND[name] = FOUND.get(name, 0) + len(found)
    return timings


FOUND: dict[str, int] = {}
"""Records the searches found, by search (a search that finds nothing is not a measure)."""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    people = People(max(1, args.records // 20), random.Random(args.seed))
    async with StateStore(url) as store:
        fill_s = await fill(store, people, args.records, args.chunk, args.seed)
        if url.startswith("postgresql"):  # what autovacuum does after a bulk load: statistics, visibility
            async with store.engine.connect() as conn:
                done = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for table in ("log", "log_people", "log_names"):
                    await done.execute(sa.text(f"VACUUM ANALYZE {table}"))
        for _warm in range(2):  # the first reads of a table come from the disk, then from the cache
            await measure(store, people, 1, args.page, args.seed + 7)
        FOUND.clear()
        timings = await measure(store, people, args.repeat, args.page, args.seed)
    every = [t for values in timings.values() for t in values]
    p99 = {name: round(percentile(values, 99), 1) for name, values in timings.items()}
    return {
        "records": args.records,
        "store": "postgresql" if url.startswith("postgresql") else "sqlite",
        "fill_s": round(fill_s, 1),
        "searches": len(every),
        "log_search_p50_ms": round(percentile(every, 50), 1),
        "log_search_p99_ms": round(percentile(every, 99), 1),
        "slowest_search": max(p99, key=lambda name: p99[name]),
        "p99_ms_by_search": p99,
        "mean_found_by_search": {name: round(FOUND.get(name, 0) / args.repeat, 1) for name in timings},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--store", help="an empty state store (postgresql://...); default a SQLite file")
    parser.add_argument("--repeat", type=int, default=20, help="runs of each search")
    parser.add_argument("--page", type=int, default=50, help="records a page")
    parser.add_argument("--chunk", type=int, default=20_000, help="records a write transaction")
    parser.add_argument("--seed", type=int, default=23)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roster-bench-") as tmp:
        url = state_url(args.store or str(Path(tmp) / "state.db"))
        figures = asyncio.run(run(args, url))
        if not args.store:
            figures["store_mb"] = round(sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
