"""Benchmark of the embedded pipeline: CSV source, real planner and state store, in-memory broker, workers.

    python tests/bench/pipeline.py --objects 100000

Prints one JSON object: objects, null_ops_per_s and sqlite_ops_per_s (an initial cycle into a target
that does nothing and into a SQLite table), p50_latency_ms and p99_latency_ms (emitted to result, in
the null run), unchanged_cycle_s (a full cycle in which nothing changed) and peak_rss_mb (of the whole
run); first_cycle_peak_rss_mb and unchanged_cycle_peak_rss_mb (the null run's two cycles, one after the
other in one engine, as a server runs them: the high-water mark is reset before each, so each counts
what the process still holds from before), unchanged_cycle_cpu_s (the process's CPU time in that
cycle: on a shared machine, steadier than its wall time) and state_bytes_per_object (the SQLite
state of the null run, divided by the objects: the unchanged cycle adds one cycle record to what the
first wrote).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common.process.tuning import tune_process
from engine.cli.embedded import embedded
from engine.config import in_dependency_order, parse_engine_config
from engine.store.state import state_url
from workers.config import parse_targets

COLUMNS = ("employee_id", "given_name", "family_name", "email", "department", "title", "phone", "location")


def write_people(path: Path, count: int, *, managers: bool = False) -> None:
    rng = random.Random(7)
    given = ["José", "Zoë", "Siobhán", "Łukasz", "Ana", "Kofi", "Mei", "Olu"]
    family = ["O'Brien", "Müller", "Nuñez", "D'Angelo", "Smith", "Ångström", "Kowalski", "Okafor"]
    departments = ["Sales", "R&D", "People", "Finance", "Legal", ""]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow((*COLUMNS, "manager") if managers else COLUMNS)
        for i in range(count):
            g, fam = rng.choice(given), rng.choice(family)
            row = [
                f"E{i:07d}",
                g,
                fam,
                f"user{i}@example.org",
                rng.choice(departments),
                "Engineer, Level 2",
                f"+1 555 {rng.randrange(10**7):07d}",
                "New York, NY",
            ]
            writer.writerow([*row, f"E{(i - 1) // 5:07d}" if i else ""] if managers else row)


MANAGER = {"target": "manager", "reference": {"source": "manager", "job": "bench"}}
COPIED_MANAGER = {"target": "manager", "source": "manager"}
"""The same column sent as it is read: what the reference step is weighed against."""


def config(
    workdir: Path, target: dict[str, Any], *, managers: bool = False, copied: bool = False
) -> dict[str, Any]:
    return {
        "jobs": [
            {
                "name": "bench",
                "source": {"type": "csv", "path": str(workdir / "people.csv"), "id_column": "employee_id"},
                "target": target["name"],
                "mappings": [{"target": c, "source": c, "match": c == "employee_id"} for c in COLUMNS]
                + [{"target": "company", "constant": "Example Corp"}]
                + ([MANAGER] if managers else [COPIED_MANAGER] if copied else []),
            }
        ],
        "targets": [target],
    }


async def run_cycles(
    workdir: Path,
    raw: dict[str, Any],
    state: str,
    cycles: int,
    peaks: list[int] | None = None,
    cpu_s: list[float] | None = None,
) -> list[Any]:
    """`cycles` rounds of one cycle per job (users before groups); the summaries in the order run.
    `peaks` gets the peak RSS (MB) of each round, where the kernel can reset the high-water mark,
    `cpu_s` the process's CPU time of each round."""
    engine_config = parse_engine_config(raw, base_dir=workdir)
    targets = parse_targets(raw, base_dir=workdir)
    jobs = in_dependency_order(engine_config.jobs)
    summaries = []
    async with embedded(engine_config, targets, state_url(state)) as pipeline:
        for _ in range(cycles):
            reset_peak_rss()
            started_cpu_s = time.process_time()
            summaries += [await pipeline.runner.run_cycle(job, trigger="bench") for job in jobs]
            if peaks is not None:
                peaks.append(peak_rss_mb())
            if cpu_s is not None:
                cpu_s.append(time.process_time() - started_cpu_s)
    return summaries


def reset_peak_rss() -> None:
    """Reset the process's RSS high-water mark to its current RSS (Linux; elsewhere nothing)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> int:
    """The RSS high-water mark since the last reset (Linux), or of the whole run."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def state_bytes(path: Path) -> int:
    """The size of a SQLite store, with its write-ahead log if one is left."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument(
        "--managers",
        action="store_true",
        help="a manager on every row but the first, mapped as a reference: the first cycle sends them "
        "empty (none provisioned yet), a second sets them, the unchanged cycle is the third",
    )
    parser.add_argument(
        "--managers-copied",
        action="store_true",
        help="the same manager column, mapped as a plain copy of the source id: the baseline that "
        "`--managers` is weighed against, so that the difference is the reference step alone",
    )
    args = parser.parse_args()
    if args.managers and args.managers_copied:
        parser.error("--managers and --managers-copied are two runs to compare: give one")
    tune_process()
    managers, copied = args.managers, args.managers_copied
    with tempfile.TemporaryDirectory(prefix="roster-bench-") as tmp:
        workdir = Path(tmp)
        write_people(workdir / "people.csv", args.objects, managers=managers or copied)

        null = config(workdir, {"name": "noop", "type": "noop"}, managers=managers, copied=copied)
        null_state = workdir / "null-state.db"
        peaks: list[int] = []
        cpu_s: list[float] = []
        # The reference runs need a second cycle to set the references the first sent empty; the
        # copied baseline runs one too, so that both unchanged cycles are the third on a like store.
        count = 3 if managers or copied else 2
        cycles = asyncio.run(run_cycles(workdir, null, str(null_state), count, peaks, cpu_s))
        initial, unchanged = cycles[0], cycles[-1]
        if count == 3:
            peaks, cpu_s = [peaks[0], peaks[2]], [cpu_s[0], cpu_s[2]]
            # the references the first cycle could not resolve (their manager not provisioned when planned)
            assert cycles[1].updated == cycles[0].pending_references, cycles
            assert cycles[1].pending_references == 0, cycles[1]
        state_bytes_per_object = state_bytes(null_state) / args.objects
        assert initial.created == args.objects and unchanged.changed == 0, (initial, unchanged)

        columns = {c: c for c in (*COLUMNS, "company", *(["manager"] if managers or copied else []))}
        sqlite_target = {
            "name": "sqlite",
            "type": "sql",
            "url": f"sqlite:///{workdir / 'target.db'}",
            "table": "accounts",
            "key_column": "employee_id",
            "active_column": "active",
            "create_table": True,
            "columns": columns,
        }
        (sql_initial,) = asyncio.run(
            run_cycles(
                workdir,
                config(workdir, sqlite_target, managers=managers, copied=copied),
                str(workdir / "sql-state.db"),
                1,
            )
        )
        assert sql_initial.created == args.objects, sql_initial

    print(
        json.dumps(
            {
                "objects": args.objects,
                "null_ops_per_s": round(initial.ops_per_s),
                "sqlite_ops_per_s": round(sql_initial.ops_per_s),
                "p50_latency_ms": round(initial.p50_latency_ms, 1),
                "p99_latency_ms": round(initial.p99_latency_ms, 1),
                "unchanged_cycle_s": round(unchanged.elapsed_s, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "first_cycle_peak_rss_mb": peaks[0],
                "unchanged_cycle_peak_rss_mb": peaks[1],
                "state_bytes_per_object": round(state_bytes_per_object),
                "unchanged_cycle_cpu_s": round(cpu_s[1], 3),
                "managers": managers,
                "managers_copied": copied,
                "references_cycle_s": round(cycles[1].elapsed_s, 3) if managers else None,
            }
        )
    )


if __name__ == "__main__":
    main()
