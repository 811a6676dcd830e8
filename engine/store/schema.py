"""The state store's tables: objects and their applied state, group memberships as applied, job
control, staged deprovisions, cycles and the provisioning log. Migrations (`migrations.py`) bring an
older store to this schema."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# A row per object of every job, millions of them: without a rowid on SQLite (the key is the table,
# not a second index beside it), and the applied hash as bytes (`engine.core.snapshot.encode_hash`).
objects = sa.Table(
    "objects",
    metadata,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("source_id", sa.String, primary_key=True),
    sa.Column("target_id", sa.String),
    sa.Column("applied_hash", sa.LargeBinary),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sqlite_with_rowid=False,
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("source_id", sa.String, primary_key=True),
    sa.Column("members", sa.Text, nullable=False),  # JSON: member source id -> target id, as applied
)

job_control = sa.Table(
    "job_control",
    metadata,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("quarantine_reason", sa.Text),
    sa.Column("quarantined_at", sa.Float),
    sa.Column("quarantined_cycles", sa.Integer, nullable=False),
    sa.Column("approval_reason", sa.Text),
    sa.Column("watermark", sa.String),
    sa.Column("last_full_at", sa.Float),
    sa.Column("last_complete_read", sa.Integer),  # objects in the last complete read (source shrink)
)

staged = sa.Table(
    "staged",
    metadata,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("source_id", sa.String, primary_key=True),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("cycle_id", sa.String, nullable=False),
)

cycles = sa.Table(
    "cycles",
    metadata,
    sa.Column("cycle_id", sa.String, primary_key=True),
    sa.Column("job", sa.String, nullable=False, index=True),
    sa.Column("trigger", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("counts", sa.Text),
    sa.Column("owner", sa.String),  # host:pid:token of the process running it
    sa.Column("lease_until", sa.Float),  # renewed while it runs; past it, the owner is gone
)

log = sa.Table(
    "log",
    metadata,
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
    sa.Column("duration_ms", sa.Float),  # the connector's time on the operation's batch
    sa.Column("attributes", sa.Text),  # JSON: the attributes sent, redacted ones as "***"
    sa.Index("log_job_at", "job", "at"),
    sa.Index("log_job_source", "job", "source_id"),
    # One record per result: a result message written again (its ack lost, or the engine stopped
    # between the commit and the ack) adds nothing to the log.
    sa.Index("log_result", "op_id", "status", "attempts", unique=True),
)
