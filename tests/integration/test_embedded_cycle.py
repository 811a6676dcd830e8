"""Whole cycles through the embedded pipeline into real SQL targets (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.pipeline import (
    FaultInjector,
    expected_row,
    job_config,
    person,
    pipeline,
    sql_target,
    target_rows,
    write_csv,
)

N = 600


@dataclass(frozen=True)
class Target:
    url: str
    table: str

    def settings(self) -> dict:
        return sql_target(self.url, table=self.table)

    async def rows(self) -> dict:
        return await target_rows(self.url, self.table)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    """A real SQL database for the target table: a SQLite file, or a fresh table on PostgreSQL."""
    if request.param == "sqlite":
        yield Target(f"sqlite:///{tmp_path / 'target.db'}", "accounts")
        return
    url = request.getfixturevalue("postgres_url")
    table = f"accounts_{uuid.uuid4().hex[:10]}"
    try:
        yield Target(url, table)
    finally:
        engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        await engine.dispose()


async def test_initial_cycle_creates_exactly_the_source_rows_then_a_second_cycle_publishes_nothing(
    tmp_path: Path, target: Target
) -> None:
    rows = [person(i) for i in range(N)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path), **target.settings()}
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        assert (first.created, first.updated, first.failed, first.status) == (N, 0, 0, "succeeded")
        target = await target.rows()
        assert set(target) == {r["employee_id"] for r in rows}
        for source in rows:
            row = target[source["employee_id"]]
            assert {k: row[k] for k in expected_row(source)} == expected_row(source)
            assert row["active"] in (True, 1)

        published = p.runner.publisher.published_ops
        second = await p.runner.run_cycle(job)
        assert p.runner.publisher.published_ops == published
        assert (second.changed, second.unchanged, second.status) == (0, N, "succeeded")


async def test_edits_and_removals_are_applied_exactly_and_nothing_else_moves(
    tmp_path: Path, target: Target
) -> None:
    rows = [person(i) for i in range(N)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path), **target.settings()}
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        await p.runner.run_cycle(job)
        before = await target.rows()

        edited = {
            5: person(5, department="Legal"),
            77: person(77, family_name="Ångström"),
            300: person(300, email=""),
        }
        removed = {10, 11, 499}
        added = [person(N + 1), person(N + 2)]
        new_rows = [edited.get(i, r) for i, r in enumerate(rows) if i not in removed] + added
        write_csv(tmp_path / "people.csv", new_rows)
        summary = await p.runner.run_cycle(job)

    assert (summary.created, summary.updated, summary.disabled, summary.deleted) == (2, 3, 3, 0)
    assert summary.unchanged == N - len(removed) - len(edited)
    after = await target.rows()
    assert set(after) == set(before) | {r["employee_id"] for r in added}
    for i, source in enumerate(rows):
        key = source["employee_id"]
        if i in removed:
            assert after[key]["active"] in (False, 0), key
            assert {k: after[key][k] for k in expected_row(source)} == expected_row(source)
        elif i in edited:
            assert {k: after[key][k] for k in expected_row(source)} == expected_row(edited[i])
        else:
            assert after[key] == before[key], key
    for source in added:
        assert {k: after[source["employee_id"]][k] for k in expected_row(source)} == expected_row(source)


async def test_a_removed_person_who_returns_is_enabled_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [person(i) for i in range(20)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path), **sql_target(url)}
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        await p.runner.run_cycle(job)
        write_csv(tmp_path / "people.csv", rows[1:])
        assert (await p.runner.run_cycle(job)).disabled == 1
        write_csv(tmp_path / "people.csv", rows)
        back = await p.runner.run_cycle(job)
    assert (back.updated, back.created) == (1, 0)
    assert (await target_rows(url))["E00000"]["active"] == 1


async def test_delete_policy_deletes_the_rows_that_left_the_source(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [person(i) for i in range(30)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path, deprovision="delete"), **sql_target(url)}
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        await p.runner.run_cycle(job)
        write_csv(tmp_path / "people.csv", rows[:25])
        summary = await p.runner.run_cycle(job)
        again = await p.runner.run_cycle(job)
    assert summary.deleted == 5
    assert again.changed == 0
    assert set(await target_rows(url)) == {r["employee_id"] for r in rows[:25]}


async def test_a_cycle_reads_the_full_state_entries_only_of_objects_that_changed_or_left(
    tmp_path: Path, target: Target
) -> None:
    rows = [person(i) for i in range(N)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path), **target.settings()}
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        await p.runner.run_cycle(job)
        state = p.runner.state
        read: list[str] = []
        entries = state.entries

        async def recorded(job_name: str, source_ids):  # type: ignore[no-untyped-def]
            ids = list(source_ids)
            read.extend(ids)
            return await entries(job_name, ids)

        state.entries = recorded  # type: ignore[method-assign]
        unchanged = await p.runner.run_cycle(job)
        assert (unchanged.changed, unchanged.unchanged, read) == (0, N, [])

        write_csv(tmp_path / "people.csv", [person(5, department="Legal"), *rows[6:]])  # 0-4 left
        summary = await p.runner.run_cycle(job)
    assert (summary.updated, summary.disabled, summary.unchanged) == (1, 5, N - 6)
    assert sorted(read) == sorted(rows[i]["employee_id"] for i in range(6))


async def test_a_target_keyed_on_a_name_renames_its_row_once_through_a_lost_answer(
    tmp_path: Path, target: Target
) -> None:
    """The key column holds the email, which changes: the row is renamed, never joined by a second one,
    also when the rename's answer is lost after the commit and the batch comes again."""
    rows = [person(i) for i in range(30)]
    write_csv(tmp_path / "people.csv", rows)
    raw = {**job_config(tmp_path), **sql_target(target.url, table=target.table, key_column="email")}
    for mapping in raw["jobs"][0]["mappings"]:
        mapping.pop("match", None)
        if mapping["target"] == "email":
            mapping["match"] = True
    injectors: list[FaultInjector] = []

    def wrap(connector: Any) -> FaultInjector:
        injectors.append(FaultInjector(connector, after=True))
        return injectors[-1]

    async with pipeline(tmp_path, raw, wrap=wrap) as p:
        job = p.runner.config.jobs[0]
        assert (await p.runner.run_cycle(job)).created == len(rows)
        renamed = {3, 4, 17}
        for i in renamed:
            rows[i] = person(i, email=f"renamed{i}@example.org")
        write_csv(tmp_path / "people.csv", rows)
        (injector,) = injectors
        injector.failures = injector.calls + 1  # the next batch is applied, and its answer lost
        second = await p.runner.run_cycle(job)
        assert (second.updated, second.failed, second.status) == (len(renamed), 0, "succeeded")
        assert second.retries >= 1

        by_id = await target.rows()  # raises on an employee id in the table twice
        assert set(by_id) == {r["employee_id"] for r in rows}
        for source in rows:
            row = by_id[source["employee_id"]]
            assert {k: row[k] for k in expected_row(source)} == expected_row(source)
        third = await p.runner.run_cycle(job)
        assert (third.changed, third.status) == (0, "succeeded")
