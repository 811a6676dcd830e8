"""The state store's tables: objects and their applied state, group memberships as applied, job
control, staged deprovisions, cycles, the provisioning log and the audit trail. Migrations
(`migrations.py`) bring an older store to this schema."""

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
    # `engine.core.snapshot.fingerprint` of applied_hash and state, what a cycle loads of each object:
    # read as it is, a million take half the time they took to compute from the hash (null: compute).
    sa.Column("fingerprint", sa.BigInteger),
    # When the object was disabled (Unix seconds; null while active): a leaver's grace period
    # (`delete_after_days`) counts from it.
    sa.Column("disabled_at", sa.Float),
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
    sa.Column("moves_seen", sa.Integer),  # the last of `moves` the job's references were checked against
)

# The objects whose target id changed or went (an LDAP rename, a delete), written by triggers on
# `objects` (migration 10), so that every writer counts: the cycles of jobs whose references name them
# update the objects that point at them. AUTOINCREMENT: numbers never come back after a prune.
moves = sa.Table(
    "moves",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String, nullable=False),
    sa.Column("source_id", sa.String, nullable=False),
    sqlite_autoincrement=True,
)

# The inbound SCIM service's resources as pushed to it (issue 19): what its GET and list answer from,
# and what the jobs over it read as their source. `name_key` is the userName (Users) or displayName
# (Groups) casefolded, which must be unique per type among Users (RFC 7643 §4.1: userName is unique).
mirror = sa.Table(
    "mirror",
    metadata,
    sa.Column("resource_type", sa.String, primary_key=True),
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("external_id", sa.String),
    sa.Column("name_key", sa.String),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("mirror_name", "resource_type", "name_key"),
    sa.Index("mirror_external_id", "resource_type", "external_id"),
)
# Two pushes of one userName at once: the second fails here rather than both being stored.
sa.Index(
    "mirror_user_name",
    mirror.c.name_key,
    unique=True,
    sqlite_where=mirror.c.resource_type == "User",
    postgresql_where=mirror.c.resource_type == "User",
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

# Strings the log repeats on every record (job names, cycle ids, the op ids' cycle part, actions,
# statuses), each stored once: a log record holds their keys (see `engine.store.logrows`).
log_names = sa.Table(
    "log_names",
    metadata,
    sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
)

# Per job, the zlib dictionary its log records' attributes are compressed with: attribute names and
# values that several records share, never a value of one record alone (it outlives their pruning).
log_dictionaries = sa.Table(
    "log_dictionaries",
    metadata,
    sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String, nullable=False),
    sa.Column("zdict", sa.LargeBinary, nullable=False),
)

# A record per result, millions of them, so compact: repeated strings as keys of `log_names`, the op id
# as its cycle part's key and its number, the attributes compressed. `log_view` shows it as text.
log = sa.Table(
    "log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("job", sa.Integer, nullable=False),  # log_names
    sa.Column("cycle", sa.Integer),  # log_names
    sa.Column("op_prefix", sa.Integer),  # log_names: the op id up to its number (all of it if none)
    sa.Column("op_seq", sa.BigInteger),  # the number the op id ends with, -1 if it ends with none
    sa.Column("source_id", sa.String),
    sa.Column("target_id", sa.String),
    sa.Column("action", sa.Integer, nullable=False),  # log_names
    sa.Column("status", sa.Integer, nullable=False),  # log_names
    sa.Column("attempts", sa.Integer),
    sa.Column("error_class", sa.String),
    sa.Column("error_code", sa.String),
    sa.Column("error_message", sa.Text),
    sa.Column("latency_ms", sa.Float),
    sa.Column("duration_ms", sa.Float),  # the connector's time on the operation's batch
    sa.Column("zdict", sa.Integer),  # log_dictionaries: what `attributes` is compressed with
    sa.Column("attributes", sa.LargeBinary),  # the JSON sent, redacted values as "***", compressed
    sa.Index("log_job_at", "job", "at"),
    # A person's records (by job and source id) in time order, with what a search filters them by:
    # a search by person reads nothing else until its page is chosen (migration 13; it replaced
    # `log_job_source`, of the job and source id alone).
    sa.Index("log_person", "job", "source_id", "at", "status", "action", "cycle"),
    # The searches of `engine.store.history.LogFilter`, newest first by (at, id): each an equality on
    # its leading columns, then the order itself, so a page is read off the index (migration 13).
    sa.Index("log_at", "at", "id"),
    sa.Index("log_job_status_at", "job", "status", "at", "id"),
    sa.Index("log_status_at", "status", "at", "id"),
    sa.Index("log_action_at", "action", "at", "id"),
    sa.Index("log_cycle_at", "cycle", "at", "id"),
    # One record per result: a result message written again (its ack lost, or the engine stopped
    # between the commit and the ack) adds nothing to the log.
    sa.Index("log_result", "op_prefix", "op_seq", "status", "attempts", unique=True),
)

# Who did what through the API or the command line (`engine.store.audit`): one row per state-changing
# request, done or refused. Append-only: the store has no path that changes or deletes a row, and
# triggers (migration 12) make the database refuse one. An actor is a kind (service_account,
# oidc_user, local_user) and a name; an OIDC user also has its issuer and subject.
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),  # Unix seconds (UTC)
    sa.Column("actor_kind", sa.String, nullable=False),
    sa.Column("actor_name", sa.String, nullable=False),
    sa.Column("actor_issuer", sa.String),
    sa.Column("actor_subject", sa.String),
    sa.Column("address", sa.String, nullable=False),  # the client's address, or "local"
    sa.Column("action", sa.String, nullable=False),
    sa.Column("job", sa.String),
    sa.Column("object", sa.String),  # what the action was on besides the job: a source id, a cycle id
    sa.Column("outcome", sa.String, nullable=False),  # done or refused
    sa.Column("reason", sa.Text),  # why it was refused
    sa.Column("comment", sa.Text),
    sa.Index("audit_at", "at"),
    sa.Index("audit_job_at", "job", "at"),
    sa.Index("audit_actor_at", "actor_name", "at"),
    sqlite_autoincrement=True,
)


# The notifications (`engine.notify`): one row per event and route, pending until delivered or given
# up; what was sent, when, and how many tries it took. A webhook's URL is not kept (it may hold a
# token): the route's name is.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),  # when the event happened (Unix seconds)
    sa.Column("event", sa.String, nullable=False),
    sa.Column("job", sa.String),
    sa.Column("route", sa.String, nullable=False),  # the webhook's or the mail list's name
    sa.Column("channel", sa.String, nullable=False),  # webhook or mail
    sa.Column("recipient", sa.String),  # a mail's address where the route finds it per event (a manager's)
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the event as JSON (`engine.notify.events.Event`)
    sa.Column("status", sa.String, nullable=False),  # pending, sent or failed (given up)
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.Float),  # when a pending one is tried next
    sa.Column("sent_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Index("notifications_status_next", "status", "next_at"),
    sa.Index("notifications_at", "at"),
    sqlite_autoincrement=True,
)


# Who a log record is about, for searching the log by person: per job and source id, the keys it can
# be found by (its source and target ids, and the names and mails its records sent, casefolded; see
# `engine.store.logrows.person_keys`), written with its records and pruned with the last of them.
# Compared byte by byte ("C" on PostgreSQL, SQLite's own), so that a prefix is a range of the key.
log_people = sa.Table(
    "log_people",
    metadata,
    sa.Column("key", sa.String().with_variant(sa.String(collation="C"), "postgresql"), primary_key=True),
    sa.Column("job", sa.Integer, primary_key=True),  # log_names
    sa.Column("source_id", sa.String, primary_key=True),
    sa.Index("log_people_person", "job", "source_id"),
    sqlite_with_rowid=False,
)


# Rehire (`engine.core.rehire`): per live object of a job with `rehire:`, its key and the values kept
# for a rehire, as its create sent them; and each account deleted, by its key, until a person comes
# back with it (`returned_as`), which then tells the gap.
rehire_keys = sa.Table(
    "rehire_keys",
    metadata,
    sa.Column("job", sa.String, primary_key=True),
    sa.Column("source_id", sa.String, primary_key=True),
    sa.Column("key", sa.String, nullable=False),
    sa.Column("kept", sa.Text, nullable=False),  # JSON object
    sa.Column("target_id", sa.String),
)
departures = sa.Table(
    "departures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String, nullable=False),
    sa.Column("key", sa.String, nullable=False),
    sa.Column("source_id", sa.String, nullable=False),
    sa.Column("target_id", sa.String),
    sa.Column("kept", sa.Text, nullable=False),
    sa.Column("deleted_at", sa.Float, nullable=False),
    sa.Column("returned_as", sa.String),
    sa.Column("returned_at", sa.Float),
    sa.Index("departures_key", "job", "key"),
    sa.Index("departures_returned", "job", "returned_as"),
    sqlite_autoincrement=True,
)
