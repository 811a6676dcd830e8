"""A small harness for whole-flow tests: a CSV source, a SQL target, the embedded pipeline."""

from __future__ import annotations

import asyncio
import csv
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from common.errors import TransientError
from engine.cli.embedded import Embedded, embedded
from engine.config import EngineConfig, parse_engine_config
from engine.store.state import state_url
from workers.config import TargetConfig, parse_targets
from workers.connectors.base import Connector

COLUMNS = ("employee_id", "given_name", "family_name", "email", "department")


def person(i: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "employee_id": f"E{i:05d}",
        "given_name": ["José", "Zoë", "Siobhán", "Łukasz"][i % 4],
        "family_name": ["O'Brien", "Müller", "Nuñez, Jr.", "D'Angelo"][i % 4],
        "email": f"user{i}@example.org",
        "department": ["Sales", "", "R&D", "People"][i % 4],
    }
    row.update(overrides)
    return row


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The rows under `COLUMNS`, and any other column the first row has after them."""
    extra = [name for name in rows[0] if name not in COLUMNS] if rows else []
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, *extra])
        writer.writeheader()
        writer.writerows(rows)


def job_config(tmp_path: Path, *, target: str = "db", **job: Any) -> dict[str, Any]:
    """One job of people from `people.csv`. The deletion guard and the source shrink check are off unless
    a test turns them on: these tests deprovision large shares of small sets on purpose
    (test_operations.py and test_incomplete_reads.py cover them)."""
    job.setdefault("deletion_guard", False)
    job.setdefault("source_max_drop_percent", 100)
    return {
        "engine": {"batch_size": job.pop("batch_size", 100), "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "employee_id"},
                "target": target,
                "mappings": [
                    {"target": "employee_id", "source": "employee_id", "match": True},
                    {"target": "first_name", "source": "given_name"},
                    {"target": "last_name", "source": "family_name"},
                    {"target": "email", "source": "email"},
                    {"target": "department", "source": "department", "default": "Unassigned"},
                    {"target": "company", "constant": "Example Corp"},
                ],
                **job,
            }
        ],
    }


def sql_target(url: str, *, table: str = "accounts", name: str = "db", **extra: Any) -> dict[str, Any]:
    return {
        "targets": [
            {
                "name": name,
                "type": "sql",
                "url": url,
                "table": table,
                "key_column": "employee_id",
                "active_column": "active",
                "on_disable": "deactivate",
                "create_table": True,
                "columns": {
                    c: c for c in ("employee_id", "first_name", "last_name", "email", "department", "company")
                },
                "retry": {"first_delay_ms": 20, "multiplier": 2, "tiers": 4},
                **extra,
            }
        ]
    }


def expected_row(source: dict[str, Any]) -> dict[str, Any]:
    """What the target must hold for one source row under `job_config`'s mappings."""
    return {
        "employee_id": source["employee_id"],
        "first_name": source["given_name"] or None,
        "last_name": source["family_name"] or None,
        "email": source["email"] or None,
        "department": source["department"] or "Unassigned",
        "company": "Example Corp",
    }


def configs(tmp_path: Path, raw: dict[str, Any]) -> tuple[EngineConfig, tuple[TargetConfig, ...]]:
    return parse_engine_config(raw, base_dir=tmp_path), parse_targets(raw, base_dir=tmp_path)


@asynccontextmanager
async def pipeline(tmp_path: Path, raw: dict[str, Any], *, wrap: Any = None) -> AsyncIterator[Embedded]:
    """The embedded pipeline for `raw`; `wrap(connector)` may put a fault injector in front of the
    real connector."""
    config, targets = configs(tmp_path, raw)
    if wrap is not None:
        targets = tuple(_Wrapped(t, wrap) for t in targets)  # type: ignore[misc]
    async with embedded(config, targets, state_url(str(tmp_path / "state.db"))) as p:
        yield p


class _Wrapped:
    """A target config whose runtime's connector sits behind a fault injector."""

    def __init__(self, target: TargetConfig, wrap: Any) -> None:
        self._target = target
        self._wrap = wrap
        self.name = target.name

    def runtime(self) -> Any:
        runtime = self._target.runtime()
        runtime.connector = self._wrap(runtime.connector)
        return runtime


async def target_rows(url: str, table: str = "accounts") -> dict[str, dict[str, Any]]:
    """Every row of the target table by key, read back with a connection of our own."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]
    else:
        engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
        try:
            async with engine.connect() as conn:
                rows = [dict(r._mapping) for r in await conn.execute(sa.text(f"SELECT * FROM {table}"))]
        finally:
            await engine.dispose()
    by_key: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert row["employee_id"] not in by_key, f"{row['employee_id']} is in the target twice"
        by_key[row["employee_id"]] = row
    return by_key


class Interposer:
    """In front of a real connector: passes every call on, counting them in `calls`; a subclass's
    `interpose` changes what a call does."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.calls = 0

    async def open(self) -> None:
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def apply(self, ops: Any) -> Any:
        self.calls += 1
        return await self.interpose(ops)

    async def interpose(self, ops: Any) -> Any:
        return await self.inner.apply(ops)


class FaultInjector(Interposer):
    """Fails the first `failures` calls transiently (or with `error`), or stalls each call, as the
    test says. With `after`, a failing call first lets the connector apply the batch: the target took
    it and only its answer is lost (a worker killed between the commit and the result), so the batch
    comes again."""

    def __init__(
        self,
        inner: Connector,
        *,
        failures: int = 0,
        stall_s: float = 0.0,
        error: Exception | None = None,
        after: bool = False,
    ) -> None:
        super().__init__(inner)
        self.failures = failures
        self.stall_s = stall_s
        self.error = error
        self.after = after

    async def interpose(self, ops: Any) -> Any:
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        if self.calls > self.failures:
            return await self.inner.apply(ops)
        if self.after:
            await self.inner.apply(ops)
        raise self.error or TransientError("injected: target unavailable", code="503")
