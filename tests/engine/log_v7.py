"""The provisioning log as stores of schema version 7 hold it (before migration 8 made it compact),
for tests that take a store back to that version."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

log_v7 = sa.Table(
    "log",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("cycle_id", sa.String),
    sa.Column("op_id", sa.String),
    sa.Column("job", sa.String, nullable=False),
    sa.Column("source_id", sa.String),
    sa.Column("target_id", sa.String),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer),
    sa.Column("error_class", sa.String),
    sa.Column("error_code", sa.String),
    sa.Column("error_message", sa.Text),
    sa.Column("latency_ms", sa.Float),
    sa.Column("duration_ms", sa.Float),
    sa.Column("attributes", sa.Text),
    sa.Index("log_job_at", "job", "at"),
    sa.Index("log_job_source", "job", "source_id"),
    sa.Index("log_result", "op_id", "status", "attempts", unique=True),
)


async def back_to_version_7_log(conn: AsyncConnection) -> None:
    """Replace the store's log (and what migration 8 added) with an empty log of version 7."""
    for statement in (
        "DROP VIEW log_view",
        "DROP TABLE log",
        "DROP TABLE log_names",
        "DROP TABLE log_dictionaries",
        "DELETE FROM schema_version WHERE version >= 8",
    ):
        await conn.execute(sa.text(statement))
    await conn.run_sync(log_v7.create)
