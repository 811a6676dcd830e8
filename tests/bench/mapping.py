"""Benchmark of scoping and mapping: one job of 20 mappings (half of them expressions), two scoping groups.

    python tests/bench/mapping.py --objects 100000

Objects are built in memory first (the source is not measured); then each one is scoped and, when in
scope, mapped and hashed by the real `Mapper`, on one core. The rate is per second of this process's CPU
time, best of three passes over all the objects, so that other work on a shared machine skews it less.
Prints one JSON object: objects and objects_per_s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.core.scoping import ScopingFilter, parse_scoping
from engine.mapping.base import DirectMapping, Mapper, Mapping
from engine.mapping.expression_mapping import parse_expression_mapping

COLUMNS = (
    "employee_id",
    "given_name",
    "family_name",
    "email",
    "department",
    "title",
    "phone",
    "location",
    "status",
    "cost_center",
)

EXPRESSIONS = {
    "displayName": 'Join(" ", [given_name], [family_name])',
    "userName": "ToLower(Coalesce([email], [upn]))",
    "mailNickname": 'NormalizeDiacritics(StripSpaces(ToLower(Join(".", [given_name], [family_name]))))',
    "departmentCode": 'Switch([department], "00", "Sales", "10", "R&D", "20", "People", "30", "Legal", "40")',
    "phoneNumber": 'Replace([phone], , "[^0-9+]", , "", , )',
    "active": 'IIF([status] = "terminated", "False", "True")',
    "city": 'Word([location], 1, ",")',
    "jobTitle": "PCase([title])",
    "externalId": 'Append([employee_id], "@hr.example.org")',
    "initials": 'ToUpper(Join("", Left([given_name], 1), Mid([family_name], 1, 1)))',
}

PASSES = 3
SCOPING = [
    {
        "clauses": [
            {"attribute": "department", "operator": "IS NOT NULL"},
            {"attribute": "status", "operator": "NOT EQUALS", "value": "terminated"},
        ]
    },
    {
        "clauses": [
            {"attribute": "email", "operator": "ENDS WITH", "value": "@example.org"},
            {"attribute": "cost_center", "operator": "GREATER_THAN_OR_EQUALS", "value": 100},
        ]
    },
]


def people(count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    given = ["José", "Zoë", "Siobhán", "Łukasz", "Ana", "Kofi", "Mei", "Olu", "Mary Ann", "Jean-Luc"]
    family = ["O'Brien", "Müller", "Nuñez", "D'Angelo", "Smith", "Ångström", "Kowalski", "Okafor", "van Dijk"]
    departments = ["Sales", "R&D", "People", "Finance", "Legal", None]
    return [
        {
            "employee_id": f"E{i:07d}",
            "given_name": rng.choice(given),
            "family_name": rng.choice(family),
            "email": f"user{i}@example.org" if i % 10 else None,
            "upn": f"user{i}@corp.example.org",
            "department": rng.choice(departments),
            "title": rng.choice(["SENIOR ENGINEER, LEVEL 2", "sales lead", "Director of People"]),
            "phone": f"+1 (555) {rng.randrange(1000):03d}-{rng.randrange(10**4):04d}",
            "location": rng.choice(["New York, NY", "Austin, TX", "Berlin, DE"]),
            "status": rng.choice(["active"] * 9 + ["terminated"]),
            "cost_center": str(rng.randrange(50, 500)),
        }
        for i in range(count)
    ]


def job() -> tuple[ScopingFilter, Mapper]:
    mappings: list[Mapping] = [DirectMapping(target=c, source=c) for c in COLUMNS]
    mappings += [
        parse_expression_mapping(f"mappings[{i}]", target=target, expression=text)
        for i, (target, text) in enumerate(EXPRESSIONS.items(), start=len(COLUMNS))
    ]
    return parse_scoping("scoping", SCOPING), Mapper(mappings, matching=("employee_id",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    args = parser.parse_args()
    objects = people(args.objects)
    scoping, mapper = job()
    matches, map_one = scoping.matches, mapper.map

    elapsed = []
    for _ in range(PASSES):
        started = time.process_time()
        mapped = [map_one(o) for o in objects if matches(o)]
        elapsed.append(time.process_time() - started)
        assert mapped and len(mapped) < len(objects), "the scoping filter should drop some objects, not all"
    print(json.dumps({"objects": args.objects, "objects_per_s": round(args.objects / min(elapsed))}))


if __name__ == "__main__":
    main()
