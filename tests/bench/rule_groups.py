"""Benchmark of groups by rule ("birthright" groups): how long forming them from the people takes.

    python tests/bench/rule_groups.py --people 100000

Writes a CSV export of `--people` people (40 departments, 12 countries, one in 20 not active) and
parses a jobs file with a people job scoped on the active ones and two group jobs by rule: a group per
department for the people of three countries (`group_per` with a rule), and one group whose rule picks
the Sales people of two countries. Then forms the groups of each from one read of the export, as a
group job's cycle does (`engine.sources.rules`), `--repeat` times, and prints one JSON object:
people, groups, rule_groups_s (the best time of the group per department: read, scope, rule and
grouping), rule_group_single_s (the same for the one group), people_per_s, members (in the groups per
department) and max_rss_mb.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.config import JobConfig, parse_engine_config
from engine.sources.rules import RuleGroupSource

COUNTRIES = ["DE", "FR", "AT", "CH", "NL", "BE", "ES", "IT", "PL", "SE", "DK", "IE"]
DEPARTMENTS = [f"Department {d:02d}" for d in range(39)] + ["Sales"]


def write_people(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["employee_id", "login", "given_name", "family_name", "department", "country", "status"]
        )
        for i in range(count):
            writer.writerow(
                [
                    f"E{i:07d}",
                    f"user{i}",
                    ["José", "Zoë", "Siobhán", "Łukasz"][i % 4],
                    ["O'Brien", "Müller", "Nuñez, Jr.", "D'Angelo"][i % 4],
                    DEPARTMENTS[(i * 7) % len(DEPARTMENTS)],
                    COUNTRIES[(i * 5) % len(COUNTRIES)],
                    "left" if i % 20 == 0 else "active",
                ]
            )


def jobs(folder: Path) -> dict[str, JobConfig]:
    raw: dict[str, Any] = {
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(folder / "people.csv"), "id_column": "employee_id"},
                "target": "directory",
                "scoping": [{"clauses": [{"attribute": "status", "operator": "EQUALS", "value": "active"}]}],
                "mappings": [{"target": "userName", "source": "login", "match": True}],
            },
            {
                "name": "departments",
                "object_type": "group",
                "target": "directory",
                "members": {
                    "job": "people",
                    "group_per": "department",
                    "rule": '[country] = "DE" or [country] = "AT" or [country] = "CH"',
                },
                "mappings": [
                    {"target": "displayName", "expression": 'Join(" ", "Dept", [value])', "match": True}
                ],
            },
            {
                "name": "sales-dach",
                "object_type": "group",
                "target": "directory",
                "members": {
                    "job": "people",
                    "rule": '[department] = "Sales" and ([country] = "DE" or [country] = "AT")',
                },
                "mappings": [{"target": "displayName", "constant": "Sales DACH", "match": True}],
            },
        ]
    }
    config = parse_engine_config(raw, base_dir=folder)
    return {job.name: job for job in config.jobs}


async def best_of(job: JobConfig, repeat: int) -> tuple[float, dict[str, list[str]]]:
    best, groups = float("inf"), {}
    for _ in range(repeat):
        started = time.perf_counter()
        groups = await RuleGroupSource(job.source.settings, None).groups()
        best = min(best, time.perf_counter() - started)
    return best, groups


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_people(Path(folder) / "people.csv", args.people)
        by_name = jobs(Path(folder))
        per_department_s, groups = await best_of(by_name["departments"], args.repeat)
        single_s, single = await best_of(by_name["sales-dach"], args.repeat)
    members = sum(len(m) for m in groups.values())
    expected = sum(1 for i in range(args.people) if i % 20 and COUNTRIES[(i * 5) % 12] in ("DE", "AT", "CH"))
    assert members == expected, (members, expected)  # the figures are of the right answer
    print(
        json.dumps(
            {
                "people": args.people,
                "groups": len(groups) + len(single),
                "rule_groups_s": round(per_department_s, 3),
                "rule_group_single_s": round(single_s, 3),
                "people_per_s": round(args.people / per_department_s),
                "members": members,
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
