"""Benchmark of the SQL source reading a PostgreSQL table, alone (no planning, no target).

    python tests/bench/sql_source.py --rows 1000000
    python tests/bench/sql_source.py --rows 100000     # peak memory should be the same

Creates a table of `--rows` people (eight columns, an `updated_at` timestamp with an index) in a
private PostgreSQL database with one `generate_series` INSERT, reads it through the source in one full
read (batches of `--batch`, dropped as they come, as a cycle hands them on), then updates 1% of the rows
and reads again from the full read's watermark. `--query` reads through `query:` instead of `table:`,
which keeps the set of ids seen (a table whose id is its primary key needs none).

Prints one JSON object: rows, read_s, rows_per_s, rss_before_mb, peak_rss_mb (of the full read, from a
high-water mark reset just before it), incremental_rows, incremental_s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg

from common.process.tuning import tune_process
from engine.sources.registry import parse_source
from tests.bench.pipeline import peak_rss_mb, reset_peak_rss
from tests.databases import private_database

CREATE = """
CREATE TABLE people (
    employee_id text PRIMARY KEY,
    given_name text NOT NULL,
    family_name text NOT NULL,
    email text,
    department text,
    title text,
    active boolean NOT NULL,
    updated_at timestamptz NOT NULL
)
"""
FILL = """
INSERT INTO people
SELECT 'E' || lpad(i::text, 8, '0'), 'Given' || i, 'Family' || i, 'person' || i || '@example.org',
       'Dept ' || (i % 40), 'Title ' || (i % 25), i % 10 <> 0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
FROM generate_series(1, $1) AS i
"""


async def fill(url: str, rows: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(CREATE)
        await conn.execute(FILL, rows)
        await conn.execute("CREATE INDEX people_updated_at ON people (updated_at)")
        await conn.execute("VACUUM ANALYZE people")
    finally:
        await conn.close()


async def touch(url: str) -> None:
    """Update 1% of the rows: each gets a timestamp past every other."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE people SET title = 'Changed', updated_at = now() WHERE right(employee_id, 2) = '00'"
        )
    finally:
        await conn.close()


async def read(settings: object, since: str | None, batch: int) -> tuple[int, float, str | None]:
    source = settings.open(since)  # type: ignore[attr-defined]
    count = 0
    started = time.perf_counter()
    async for objects in source.batches(batch):
        count += len(objects)
    elapsed = time.perf_counter() - started
    assert source.skipped == 0, source.problems[:3]
    return count, elapsed, source.watermark


async def main(rows: int, batch: int, query: bool) -> dict[str, object]:
    with private_database("roster_sqlbench") as url:
        await fill(url, rows)
        raw: dict[str, object] = {"type": "sql", "url": url, "id_column": "employee_id"}
        raw |= {"query": "SELECT * FROM people"} if query else {"table": "people"}
        raw["watermark_column"] = "updated_at"
        settings = parse_source("source", raw, base_dir=Path.cwd())
        rss_before = peak_rss_mb()
        reset_peak_rss()
        count, read_s, watermark = await read(settings, None, batch)
        peak = peak_rss_mb()
        await touch(url)
        changed, incremental_s, _ = await read(settings, watermark, batch)
    return {
        "rows": count,
        "read_s": round(read_s, 2),
        "rows_per_s": round(count / read_s),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "incremental_rows": changed,
        "incremental_s": round(incremental_s, 2),
        "through": "query" if query else "table",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="objects per batch, as a cycle asks")
    parser.add_argument("--query", action="store_true", help="read through `query:` (keeps the ids seen)")
    args = parser.parse_args()
    tune_process()
    print(json.dumps(asyncio.run(main(args.rows, args.batch, args.query))))
