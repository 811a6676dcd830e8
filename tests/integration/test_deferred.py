"""An object whose operation is in flight when a cycle reads it (a push planned on demand, the plan of a
group whose members were pending) is skipped by the cycle's planning, and planned again once that
operation ended: the cycle leaves it as the source it read says, not as the older plan in flight left
it, whether or not another cycle ever comes (a job over the inbound service may have no schedule).

The operation in flight is held at the connector (in front of a real SQLite table and a real
scim2-server) until the cycle has read the object, then let go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from engine.cli.embedded import Embedded
from engine.config import JobConfig
from engine.model import SourceObject
from tests.integration import test_scim_groups as scim_groups
from tests.integration.pipeline import (
    Interposer,
    expected_row,
    job_config,
    person,
    pipeline,
    sql_target,
    target_rows,
    write_csv,
)
from tests.scim_server import ScimServer


class Held(Interposer):
    """Holds the calls whose operations `holds` picks, once armed, until `release()`."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.holds: Callable[[Any], bool] = lambda op: False
        self.released = asyncio.Event()
        self.held = asyncio.Event()
        self.applied: list[tuple[str, str]] = []
        """(source id, action) of each operation applied, in order."""

    async def interpose(self, ops: Any) -> Any:
        if any(self.holds(op) for op in ops):
            self.held.set()
            await self.released.wait()
        results = await self.inner.apply(ops)
        self.applied += [(op.source_id, op.action) for op in ops]
        return results


@asynccontextmanager
async def held_pipeline(tmp_path: Path, raw: dict[str, Any]) -> AsyncIterator[tuple[Embedded, Held]]:
    """The embedded pipeline for `raw`, its one target's connector behind a `Held` (holding nothing
    until told what)."""
    held: list[Held] = []

    def wrap(connector: Any) -> Held:
        held.append(Held(connector))
        return held[-1]

    async with pipeline(tmp_path, raw, wrap=wrap) as p:
        (gate,) = held
        yield p, gate


async def read_source(p: Embedded, job: JobConfig) -> dict[str, SourceObject]:
    source = p.runner.source_for(job)
    return {obj.source_id: obj async for batch in source.batches(100) for obj in batch}


async def cycle_past_read(p: Embedded, job: JobConfig, cycle: asyncio.Task[Any], count: int) -> None:
    """Until the cycle of `job` has read `count` objects (and so planned, or skipped, each), or ended."""
    while not cycle.done() and not any(p.read >= count for p in p.runner.tracker.running(job.name)):
        await asyncio.sleep(0.01)


async def test_a_cycle_plans_again_a_person_whose_older_push_was_in_flight(tmp_path: Path) -> None:
    rows = [person(i) for i in range(4)]
    write_csv(tmp_path / "people.csv", rows)
    url = f"sqlite:///{tmp_path / 'target.db'}"
    async with held_pipeline(tmp_path, {**job_config(tmp_path), **sql_target(url)}) as (p, gate):
        (job,) = p.runner.config.jobs
        assert (await p.runner.run_cycle(job)).created == 4
        gate.holds, gate.applied = (lambda op: op.source_id == "E00002"), []

        # an older read of E00002 planned on demand, its update held at the connector...
        older = {**(await read_source(p, job))["E00002"].attributes, "department": "Legal"}
        entry = await p.state.entry(job.name, "E00002")
        on_demand = asyncio.create_task(
            p.runner.run_one(job, "E00002", SourceObject("E00002", older), entry, timeout_s=60)
        )
        await gate.held.wait()
        # ...while the source says Finance: the cycle finds its operation in flight
        rows[2] = person(2, department="Finance")
        write_csv(tmp_path / "people.csv", rows)
        cycle = asyncio.create_task(p.runner.run_cycle(job))
        await cycle_past_read(p, job, cycle, len(rows))
        gate.released.set()
        summary, (_cycle_id, counts) = await cycle, await on_demand

    assert counts == {"updated": 1}, counts  # the older plan was applied first...
    assert (summary.status, summary.updated, summary.failed) == ("succeeded", 1, 0), summary
    target = await target_rows(url)  # ...and the cycle's own after it
    assert {k: {c: r[c] for c in expected_row(rows[0])} for k, r in target.items()} == {
        row["employee_id"]: expected_row(row) for row in rows
    }
    assert target["E00002"]["department"] == "Finance"
    assert gate.applied == [("E00002", "update"), ("E00002", "update")]


async def test_a_group_planned_with_pending_members_gets_them_from_the_cycle_that_found_it_in_flight(
    tmp_path: Path, scim: ScimServer
) -> None:
    """The shape of a restart under pushes: a group is planned on demand while two of its members are
    not provisioned yet (sent with the two that are, marked pending); the members are then created, and
    the group job's cycle reads the group while that plan is still in flight."""
    people = [scim_groups.person(i) for i in range(4)]
    scim_groups.write_sources(
        tmp_path, people[:2], [scim_groups.group(1, [p["employee_id"] for p in people])]
    )
    async with held_pipeline(tmp_path, scim_groups.config(tmp_path, scim.url)) as (p, gate):
        users, teams = p.runner.config.jobs
        assert (await p.runner.run_cycle(users)).created == 2
        gate.holds = lambda op: op.job == "teams"

        group = (await read_source(p, teams))["G001"]
        on_demand = asyncio.create_task(p.runner.run_one(teams, "G001", group, None, timeout_s=60))
        await gate.held.wait()  # planned with E00000 and E00001; E00002 and E00003 pending
        scim_groups.write_sources(
            tmp_path, people, [scim_groups.group(1, [p["employee_id"] for p in people])]
        )
        assert (await p.runner.run_cycle(users)).created == 2
        cycle = asyncio.create_task(p.runner.run_cycle(teams))
        await cycle_past_read(p, teams, cycle, 1)
        gate.released.set()
        summary, (_cycle_id, counts) = await cycle, await on_demand

    assert counts == {"created": 1}, counts
    assert (summary.status, summary.updated, summary.pending_members) == ("succeeded", 1, 0), summary
    (stored,) = await scim_groups.read_all(scim, "Groups")
    users_by_id = {u["id"]: u["externalId"] for u in await scim_groups.read_all(scim, "Users")}
    assert sorted(users_by_id[m["value"]] for m in stored["members"]) == [
        "E00000",
        "E00001",
        "E00002",
        "E00003",
    ]


async def test_a_push_planned_on_demand_waits_for_the_cycles_operation_in_flight_and_goes_after_it(
    tmp_path: Path,
) -> None:
    """The other way round: a cycle's update is in flight when a newer state of the person is planned on
    demand (a push, `roster provision`). It is planned once that ended, from what it left, instead of
    being skipped for it."""
    rows = [person(i) for i in range(4)]
    write_csv(tmp_path / "people.csv", rows)
    url = f"sqlite:///{tmp_path / 'target.db'}"
    async with held_pipeline(tmp_path, {**job_config(tmp_path), **sql_target(url)}) as (p, gate):
        (job,) = p.runner.config.jobs
        assert (await p.runner.run_cycle(job)).created == 4
        gate.holds, gate.applied = (lambda op: op.source_id == "E00002"), []

        rows[2] = person(2, department="Finance")
        write_csv(tmp_path / "people.csv", rows)
        cycle = asyncio.create_task(p.runner.run_cycle(job))
        await gate.held.wait()  # the cycle's update of E00002 is in flight...
        newer = {**(await read_source(p, job))["E00002"].attributes, "department": "Legal"}
        entry = await p.state.entry(job.name, "E00002")
        on_demand = asyncio.create_task(
            p.runner.run_one(job, "E00002", SourceObject("E00002", newer), entry, timeout_s=60)
        )
        await asyncio.sleep(0.3)  # ...and stays so while the push is planned
        assert not on_demand.done()
        gate.released.set()
        summary, (_cycle_id, counts) = await cycle, await on_demand

    assert (summary.updated, counts) == (1, {"updated": 1}), (summary, counts)
    assert gate.applied == [("E00002", "update"), ("E00002", "update")]
    assert (await target_rows(url))["E00002"]["department"] == "Legal"


async def test_a_group_planned_on_demand_waits_for_the_cycle_creating_its_members(
    tmp_path: Path, scim: ScimServer
) -> None:
    """A push after a restart: the group's members were stored before it and the people job's first
    cycle is creating them. Planned then, the group would go out with them pending, and a job without
    a schedule has no cycle after to add them: it is planned once that cycle ended."""
    people = [scim_groups.person(i) for i in range(4)]
    team = scim_groups.group(1, [p["employee_id"] for p in people])
    scim_groups.write_sources(tmp_path, people[:2], [team])
    async with held_pipeline(tmp_path, scim_groups.config(tmp_path, scim.url)) as (p, gate):
        users, teams = p.runner.config.jobs
        assert (await p.runner.run_cycle(users)).created == 2
        gate.holds = lambda op: op.job == "people"

        scim_groups.write_sources(tmp_path, people, [team])
        creating = asyncio.create_task(p.runner.run_cycle(users))
        await gate.held.wait()  # E00002 and E00003 are being created
        group = (await read_source(p, teams))["G001"]
        on_demand = asyncio.create_task(p.runner.run_one(teams, "G001", group, None, timeout_s=60))
        await asyncio.sleep(0.3)
        assert not on_demand.done()  # it waits for the people cycle
        gate.released.set()
        summary, (_cycle_id, counts) = await creating, await on_demand

    assert (summary.created, counts) == (2, {"created": 1}), (summary, counts)
    (stored,) = await scim_groups.read_all(scim, "Groups")
    users_by_id = {u["id"]: u["externalId"] for u in await scim_groups.read_all(scim, "Users")}
    assert sorted(users_by_id[m["value"]] for m in stored["members"]) == [p["employee_id"] for p in people]
