"""The SQL target keeps one table of rows and no group members. A group operation that carries members
(a group job with `members:`) is refused with the reason, so the engine never records as applied a
membership that no table holds (nor a rename and a group leave, then, anything to meet on)."""

from __future__ import annotations

import dataclasses

from common.errors import PermanentError
from tests.workers.test_sql_connector import Database, db, op
from workers.connectors.base import Applied
from workers.connectors.sql.connector import SqlConnector

__all__ = ["db"]  # the fixture, used by name


async def test_a_group_operation_with_members_is_refused_and_writes_nothing(db: Database) -> None:
    user = op("create", "alice", userName="alice", mail="alice@x.org")
    group = dataclasses.replace(
        op("create", "staff", userName="staff"),
        object_type="group",
        members_add=["alice"],
        members={"E1": "alice"},
    )
    leave = dataclasses.replace(
        group, op_id="leave", action="update", members_add=[], members_remove=["alice"]
    )
    async with SqlConnector("app", db.settings()) as connector:
        outcomes = await connector.apply([user, group, leave])

    assert outcomes[0] == Applied(target_id="alice")
    for refused in outcomes[1:]:
        assert isinstance(refused, PermanentError), refused
        assert "keeps no group members" in refused.message and refused.code == "members"
    assert set(await db.rows()) == {"alice"}
