"""Benchmark of `roster plan`: the next cycle of a job as a dry run, attribute by attribute.

    python tests/bench/plan.py --objects 100000

Provisions the objects (CSV source, the embedded pipeline, a target that does nothing), then blanks
`title` on every one of them in the source (a mapping typo looks the same) and plans the next cycle as
`roster plan --output json` does, its JSON Lines written to /dev/null. Prints one JSON object:
objects, plan_s (that plan: every object an update, diffed against its last applied attributes read
from the provisioning log, counted by the mass-change guard, which holds them all),
unchanged_plan_s (a plan of the source as it was provisioned: every object unchanged, only counted) and
dated_unchanged_plan_s (the same with `dates:`, every row's start and end read: what dates cost the
planning of every cycle).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common.process.tuning import tune_process
from engine.cli.planview import JsonLines, totals_line
from engine.config import parse_engine_config
from engine.pipeline.dryrun import JobPlan, plan_job
from engine.store.state import StateStore, state_url
from tests.bench.pipeline import config, run_cycles, write_people


async def plan_once(workdir: Path, raw: dict, state: str) -> tuple[float, JobPlan]:
    """One plan of the job, timed from opening the store to its totals line."""
    job = parse_engine_config(raw, base_dir=workdir).jobs[0]
    with open("/dev/null", "wb") as out:
        started = time.perf_counter()
        async with StateStore(state_url(state)) as store:
            plan = await plan_job(job, store, JsonLines(out, job.name))
            out.write(totals_line(plan))
        return time.perf_counter() - started, plan


def add_dates(path: Path) -> None:
    """A start date in the past and an end date to come on every row (every one active)."""
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], "start_date", "end_date"])
        writer.writeheader()
        writer.writerows({**row, "start_date": "2020-01-01", "end_date": "2099-12-31"} for row in rows)


DATES = {"starts_on": "start_date", "ends_on": "end_date", "time_zone": "Europe/Berlin", "prehire_days": 7}


def blank_titles(path: Path) -> None:
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "title": ""} for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    args = parser.parse_args()
    tune_process()
    with tempfile.TemporaryDirectory(prefix="roster-bench-") as tmp:
        workdir = Path(tmp)
        write_people(workdir / "people.csv", args.objects)
        raw = config(workdir, {"name": "noop", "type": "noop"})
        state = str(workdir / "state.db")
        (initial,) = asyncio.run(run_cycles(workdir, raw, state, 1))
        assert initial.created == args.objects, initial
        unchanged_s, unchanged = asyncio.run(plan_once(workdir, raw, state))
        assert unchanged.totals["unchanged"] == args.objects, unchanged.totals
        provisioned = (workdir / "people.csv").read_bytes()
        blank_titles(workdir / "people.csv")
        plan_s, plan = asyncio.run(plan_once(workdir, raw, state))
        assert plan.totals["staged_updates"] == args.objects, plan.totals  # the mass-change guard
        (workdir / "people.csv").write_bytes(provisioned)
        add_dates(workdir / "people.csv")  # last: the other figures read the file as they always did
        dated = {**raw, "jobs": [{**raw["jobs"][0], "dates": DATES}]}
        dated_s, dated_plan = asyncio.run(plan_once(workdir, dated, state))
        assert dated_plan.totals["unchanged"] == args.objects, dated_plan.totals
    print(
        json.dumps(
            {
                "objects": args.objects,
                "plan_s": round(plan_s, 3),
                "unchanged_plan_s": round(unchanged_s, 3),
                "dated_unchanged_plan_s": round(dated_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
