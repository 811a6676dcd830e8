"""A whole cycle through the embedded pipeline into an in-house REST service (tests/rest_service.py),
with connections dropped after the service applied a POST, checked object by object in the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pipeline import job_config, person, pipeline, write_csv
from tests.rest_service import KEY, RestService, serving

N = 60


def rest_target(url: str) -> dict[str, Any]:
    body = {
        "login": "{employee_id}",
        "email": "{email}",
        "name": {"given": "{first_name}", "family": "{last_name}"},
        "department": "{department}",
        "company": "{company}",
    }
    return {
        "targets": [
            {
                "name": "db",
                "type": "rest",
                "url": url,
                "auth": {"type": "api_key", "header": "X-Api-Key", "key": KEY},
                "error_path": "error.message",
                "retry": {"first_delay_ms": 20, "multiplier": 2, "tiers": 6},
                "users": {
                    "attributes": {
                        "employee_id": "login",
                        "first_name": "name.given",
                        "last_name": "name.family",
                    },
                    "read": {"url": "/users/{target_id}", "path": "data"},
                    "match": [{"url": "/users?login={employee_id}", "path": "items"}],
                    "create": {"url": "/users", "path": "data", "body": body},
                    "update": {"url": "/users/{target_id}", "body": {**body, "active": True}},
                    "disable": {"method": "POST", "url": "/users/{target_id}/disable"},
                    "delete": "/users/{target_id}",
                    "list": {"url": "/users", "path": "items", "paging": {"style": "cursor", "size": 25}},
                },
            }
        ]
    }


@pytest.fixture
async def service() -> AsyncIterator[RestService]:
    async with serving() as service:
        yield service


def expected(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "login": source["employee_id"],
        "email": source["email"],
        "name": {"given": source["given_name"], "family": source["family_name"]},
        "department": source["department"] or "Unassigned",
        "company": "Example Corp",
    }


async def test_a_cycle_with_dropped_answers_leaves_each_person_once_and_exactly_right(
    tmp_path: Path, service: RestService
) -> None:
    rows = [person(i) for i in range(N)]
    write_csv(tmp_path / "people.csv", rows)
    service.faults.drop_after_post = 5  # five creates applied whose answers never come
    raw = {**job_config(tmp_path), **rest_target(service.url)}
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        assert (first.created, first.failed, first.status) == (N, 0, "succeeded")
        assert service.faults.drop_after_post == 0

        by_login = {u["login"]: u for u in service.users.values()}
        assert len(by_login) == len(service.users) == N  # no duplicates
        for source in rows:
            user = by_login[source["employee_id"]]
            assert {k: user.get(k) for k in expected(source)} == expected(source)
            assert user["active"] is True

        # Edits, a removal, and a service that answers 503 with Retry-After at first.
        edited = person(7, department="Legal")
        write_csv(tmp_path / "people.csv", [edited if i == 7 else r for i, r in enumerate(rows) if i != 9])
        service.faults.status_503, service.faults.retry_after = 2, "0.2"
        second = await p.runner.run_cycle(job)
        assert (second.updated, second.disabled, second.failed) == (1, 1, 0)

    by_login = {u["login"]: u for u in service.users.values()}
    assert len(service.users) == N
    assert by_login[edited["employee_id"]]["department"] == "Legal"
    assert by_login[rows[9]["employee_id"]]["active"] is False
    assert sum(u["active"] for u in service.users.values()) == N - 1
