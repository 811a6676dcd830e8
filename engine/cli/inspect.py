"""`roster preview` and `roster plan`: how one source object, or the next cycle of each job, would be
scoped, mapped and provisioned, read from a file and the state; they write nothing."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console

from engine.cli.planview import JsonLines, PlanTable, print_totals, totals_line
from engine.cli.report import print_preview
from engine.cli.settings import state_exists, state_location
from engine.config import in_dependency_order, load_engine_config
from engine.pipeline.dryrun import JobPlan, plan_job
from engine.pipeline.ondemand import Preview, preview_from_state
from engine.store.state import StateStore


def preview_command(args: argparse.Namespace, console: Console) -> int:
    """How one source object would be scoped, mapped and provisioned; writes nothing."""
    config = load_engine_config(args.file)
    job = config.job(args.job)
    location = state_location(args, config)

    async def run() -> Preview:
        if not state_exists(location):
            return await preview_from_state(job, args.source_id, None)
        async with StateStore(location) as state:
            return await preview_from_state(job, args.source_id, state)

    print_preview(console, asyncio.run(run()))
    return 0


def plan_command(args: argparse.Namespace, console: Console) -> int:
    """The next cycle of each job (or of those `--job` names) as a dry run: every operation, attribute
    by attribute, and the totals; writes nothing. A table shows the first `--limit` objects of each
    job; `--output json` writes JSON Lines: one line per object with an operation as it is planned,
    then a line of the job's totals."""
    if args.reconcile:  # the target is read through its connector: the workers' side, embedded
        from engine.cli.embedded import reconcile_plan_command

        return reconcile_plan_command(args, console)
    config = load_engine_config(args.file)
    jobs = in_dependency_order([config.job(name) for name in args.job] if args.job else config.jobs)
    location = state_location(args, config)
    if not state_exists(location):
        location = "sqlite+aiosqlite:///:memory:"  # nothing applied yet: every object is new
    as_json = args.output == "json"
    out = sys.stdout.buffer

    async def run() -> list[JobPlan]:
        plans = []
        async with StateStore(location) as state:
            for job in jobs:
                if as_json:
                    plan = await plan_job(job, state, JsonLines(out, job.name))
                    out.write(totals_line(plan))
                    out.flush()
                else:
                    table = PlanTable(args.limit)
                    plan = await plan_job(job, state, table)
                    table.print(console, plan)
                plans.append(plan)
        return plans

    plans = asyncio.run(run())
    if not as_json:
        print_totals(console, plans)
    return 1 if any(plan.error for plan in plans) else 0
