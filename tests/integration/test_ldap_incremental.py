"""Incremental reads of a directory through the engine: a cycle reads only the entries changed since the
last one, never deprovisions after such a partial read, and a restart brings back a full import."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import ldap3

from tests.integration.pipeline import pipeline, sql_target, target_rows
from tests.slapd import READER_DN, ROOT_DN, SUFFIX, Slapd

PEOPLE = f"ou=people,{SUFFIX}"
COUNT = 1000
STAMP_S = 1.1
"""slapd stamps modifyTimestamp in whole seconds: a change must land in a second after the watermark."""


def admin(server: Slapd) -> ldap3.Connection:
    conn = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), ROOT_DN, server.password)
    conn.bind()
    return conn


def config(tmp_path: Path, server: Slapd) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    return {
        "engine": {"batch_size": 200, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {
                    "type": "ldap",
                    "url": server.url,
                    "bind_dn": READER_DN,
                    "bind_password": server.reader_password,
                    "base_dn": PEOPLE,
                    "attributes": ["uid", "givenName", "sn", "mail"],
                    "incremental": True,
                    "full_import_every": "1d",
                },
                "target": "db",
                "deletion_guard": False,
                "mappings": [
                    {"target": "employee_id", "source": "uid", "match": True},
                    {"target": "first_name", "source": "givenName"},
                    {"target": "last_name", "source": "sn"},
                    {"target": "email", "source": "mail"},
                    {"target": "department", "constant": "Sales"},
                    {"target": "company", "constant": "Example Corp"},
                ],
            }
        ],
        **sql_target(url),
    }


def rows_of(people: dict[str, dict[str, str]], inactive: set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """What the table must hold for these people."""
    return {
        uid: {
            "employee_id": uid,
            "first_name": p["givenName"],
            "last_name": p["sn"],
            "email": p["mail"],
            "department": "Sales",
            "company": "Example Corp",
            "active": 0 if uid in inactive else 1,
        }
        for uid, p in people.items()
    }


async def test_incremental_cycles_read_only_changes_and_a_restart_brings_back_the_full_import(
    tmp_path: Path, slapd: Slapd
) -> None:
    people = {
        f"p{i:04d}": {"givenName": f"G{i}", "sn": f"F{i}", "mail": f"p{i}@example.org"} for i in range(COUNT)
    }
    conn = admin(slapd)
    for uid, attributes in people.items():
        assert conn.add(f"uid={uid},{PEOPLE}", ["inetOrgPerson"], {"uid": uid, "cn": uid, **attributes})
    # One entry alone in the latest second, so that the watermark's own second (read again) holds just it.
    await asyncio.sleep(STAMP_S)
    assert conn.modify(f"uid=p0000,{PEOPLE}", {"description": [(ldap3.MODIFY_REPLACE, ["marker"])]})

    async with pipeline(tmp_path, config(tmp_path, slapd)) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        assert (first.read, first.created, first.status) == (COUNT, COUNT, "succeeded")

        await asyncio.sleep(STAMP_S)
        people["p0500"]["mail"] = "moved@example.org"
        assert conn.modify(f"uid=p0500,{PEOPLE}", {"mail": [(ldap3.MODIFY_REPLACE, ["moved@example.org"])]})
        second = await p.runner.run_cycle(job)
        assert second.read <= 2, second  # p0500, and p0000 stamped in the watermark's second
        assert (second.updated, second.created, second.disabled, second.failed) == (1, 0, 0, 0)
        assert await target(tmp_path) == rows_of(people)

        assert conn.delete(f"uid=p0700,{PEOPLE}"), conn.result
        third = await p.runner.run_cycle(job)
        assert third.read <= 2 and third.changed == 0, third  # a partial read: nobody left
        assert await target(tmp_path) == rows_of(people)

        await p.runner.control.restart(job.name)
        fourth = await p.runner.run_cycle(job)
        assert (fourth.read, fourth.disabled, fourth.updated, fourth.failed) == (COUNT - 1, 1, 0, 0)
        assert await target(tmp_path) == rows_of(people, inactive={"p0700"})
    conn.unbind()


async def target(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The table's rows by key, with their active flag as 0 or 1."""
    rows = await target_rows(f"sqlite:///{tmp_path / 'accounts.db'}")
    return {key: {**row, "active": int(row["active"])} for key, row in rows.items()}
