"""Versioned migrations of the state store's schema, applied by the engine when it opens the store.

The store records its version in `schema_version`, one row per migration applied. Opening a store
applies the migrations it lacks, in order, in one transaction; on PostgreSQL an advisory lock held for
that transaction lets two engines that start together migrate once. A store whose version is newer
than this Roster is refused rather than written with an older idea of its tables.

A change to the tables of `engine/store/schema.py` comes with a new migration here; migrations already
released are never edited, since stores out there went through them. Migration 1 also adopts a
store that an earlier, unversioned Roster created (its tables are there already).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from common.errors import StateError
from engine.core.snapshot import encode_hash, fingerprint
from engine.store import logrows

MIGRATION_LOCK = 0x526F737465720001  # pg_advisory_xact_lock key for migrations ("Roster", 1)

schema_version = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection, sa.MetaData], None]


def _v1_tables(conn: sa.Connection, tables: sa.MetaData) -> None:
    wanted = [tables.tables[name] for name in ("objects", "cycles", "log")]
    tables.create_all(conn, tables=wanted, checkfirst=True)


def _v2_cycle_index(conn: sa.Connection, _tables: sa.MetaData) -> None:
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS cycles_job_status ON cycles (job, status)")


def _v3_groups_and_control(conn: sa.Connection, tables: sa.MetaData) -> None:
    wanted = [tables.tables[name] for name in ("group_members", "job_control", "staged")]
    tables.create_all(conn, tables=wanted, checkfirst=True)
    present = {column["name"] for column in sa.inspect(conn).get_columns("log")}
    for name, kind in (("duration_ms", "FLOAT"), ("attributes", "TEXT")):
        if name not in present:  # a store that migration 1 adopted from before these columns
            conn.exec_driver_sql(f"ALTER TABLE log ADD COLUMN {name} {kind}")


def _v4_one_log_record_per_result(conn: sa.Connection, _tables: sa.MetaData) -> None:
    if "op_id" not in {column["name"] for column in sa.inspect(conn).get_columns("log")}:
        return  # a log made new by migration 1 of this Roster: compact, with its unique key (see 8)
    # Result messages written twice before this left twin records: keep the first of each.
    conn.exec_driver_sql(
        "DELETE FROM log WHERE op_id IS NOT NULL AND attempts IS NOT NULL AND id NOT IN ("
        "SELECT MIN(id) FROM log WHERE op_id IS NOT NULL AND attempts IS NOT NULL "
        "GROUP BY op_id, status, attempts)"
    )
    conn.exec_driver_sql("CREATE UNIQUE INDEX IF NOT EXISTS log_result ON log (op_id, status, attempts)")


def _v5_last_complete_read(conn: sa.Connection, _tables: sa.MetaData) -> None:
    present = {column["name"] for column in sa.inspect(conn).get_columns("job_control")}
    if "last_complete_read" not in present:  # a store that migration 1 adopted has it already
        conn.exec_driver_sql("ALTER TABLE job_control ADD COLUMN last_complete_read INTEGER")


def _v6_cycle_owner(conn: sa.Connection, _tables: sa.MetaData) -> None:
    present = {column["name"] for column in sa.inspect(conn).get_columns("cycles")}
    for name, kind in (("owner", "TEXT"), ("lease_until", "FLOAT")):
        if name not in present:  # migration 1 created the table with them on a new store
            conn.exec_driver_sql(f"ALTER TABLE cycles ADD COLUMN {name} {kind}")


_COPY_PAGE = 20_000


def _v7_compact_objects(conn: sa.Connection, tables: sa.MetaData) -> None:
    # The objects again, in a table that stores the applied hash as bytes (and, on SQLite, has no
    # rowid): copied a page at a time by key, then put in the old one's place.
    columns = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns("objects")}
    if isinstance(columns["applied_hash"], sa.LargeBinary):  # a store made new by migration 1 of this Roster
        return
    new = tables.tables["objects"].to_metadata(sa.MetaData(), name="objects_v7")
    new.create(conn)
    # The columns of version 6 (the new table may have more since: migration 9 fills `fingerprint`).
    columns_v6 = ("job", "source_id", "target_id", "applied_hash", "state", "updated_at")
    old = sa.table("objects", *(sa.column(name) for name in columns_v6))
    key = (old.c.job, old.c.source_id)
    after: tuple[str, str] | None = None
    while True:
        query = sa.select(old).order_by(*key).limit(_COPY_PAGE)
        if after is not None:
            query = query.where(sa.tuple_(*key) > sa.tuple_(*after))
        rows = [dict(row._mapping) for row in conn.execute(query)]
        if not rows:
            break
        for row in rows:
            row["applied_hash"] = encode_hash(row["applied_hash"])
        conn.execute(new.insert(), rows)
        after = (rows[-1]["job"], rows[-1]["source_id"])
    conn.exec_driver_sql("DROP TABLE objects")
    conn.exec_driver_sql("ALTER TABLE objects_v7 RENAME TO objects")


def _v8_compact_log(conn: sa.Connection, tables: sa.MetaData) -> None:
    # The log again, compact (see `engine.store.logrows`): copied a page at a time by id, ids kept,
    # then put in the old one's place; and `log_view`, the log as text for people reading by hand.
    wanted = [tables.tables[name] for name in ("log_names", "log_dictionaries")]
    tables.create_all(conn, tables=wanted, checkfirst=True)
    if "op_id" in {column["name"] for column in sa.inspect(conn).get_columns("log")}:
        _copy_log_compactly(conn, tables)
    if "log_view" not in sa.inspect(conn).get_view_names():
        conn.exec_driver_sql(logrows.view_sql(conn.dialect))


def _copy_log_compactly(conn: sa.Connection, tables: sa.MetaData) -> None:
    for index in ("log_job_at", "log_job_source", "log_result"):  # the new table's have these names
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
    new = tables.tables["log"].to_metadata(sa.MetaData(), name="log_v8")
    new.create(conn)
    old = sa.table("log", *(sa.column(name) for name in logrows.FIELDS))
    insert_names = logrows.insert_names(conn.dialect.name)
    keys: dict[str | None, int | None] = {None: None}
    zdicts: dict[str, tuple[int, bytes]] = {}
    after = 0
    while True:
        query = sa.select(old).where(old.c.id > after).order_by(old.c.id).limit(_COPY_PAGE)
        rows = conn.execute(query).all()
        if not rows:
            break
        plains = [tuple(row[1:]) for row in rows]
        parts, names = logrows.parts_and_names(plains)
        missing = sorted(names - keys.keys())
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            conn.execute(insert_names, [{"name": name} for name in chunk])
            keys.update(conn.execute(logrows.select_keys(chunk)).all())
        for job, texts in logrows.samples(plains, zdicts).items():
            zdict = logrows.make_zdict(texts)
            zdicts[job] = (conn.execute(logrows.insert_zdict(job, zdict)).scalar_one(), zdict)
        stored = [
            {
                "id": row[0],
                **dict(
                    zip(logrows.STORED, logrows.encode(plain, op, keys, zdicts.get(plain[3])), strict=True)
                ),
            }
            for row, plain, op in zip(rows, plains, parts, strict=True)
        ]
        conn.execute(new.insert(), stored)
        after = rows[-1][0]
    conn.exec_driver_sql("DROP TABLE log")
    conn.exec_driver_sql("ALTER TABLE log_v8 RENAME TO log")
    if conn.dialect.name == "postgresql":  # ids were given: the next one comes after them
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('log', 'id'), MAX(id)) FROM log")


def _v9_object_fingerprints(conn: sa.Connection, _tables: sa.MetaData) -> None:
    # What a cycle loads of each object, computed once here rather than at every cycle's start.
    if "fingerprint" not in {column["name"] for column in sa.inspect(conn).get_columns("objects")}:
        conn.exec_driver_sql("ALTER TABLE objects ADD COLUMN fingerprint BIGINT")
    objects = sa.table(
        "objects", *(sa.column(n) for n in ("job", "source_id", "applied_hash", "state", "fingerprint"))
    )
    key = (objects.c.job, objects.c.source_id)
    update = (
        objects.update()
        .where(objects.c.job == sa.bindparam("j"), objects.c.source_id == sa.bindparam("s"))
        .values(fingerprint=sa.bindparam("f"))
    )
    after: tuple[str, str] | None = None
    while True:
        query = sa.select(*key, objects.c.applied_hash, objects.c.state).order_by(*key).limit(_COPY_PAGE)
        if after is not None:
            query = query.where(sa.tuple_(*key) > sa.tuple_(*after))
        rows = conn.execute(query).all()
        if not rows:
            break
        conn.execute(update, [{"j": j, "s": s, "f": fingerprint(h, state)} for j, s, h, state in rows])
        after = (rows[-1][0], rows[-1][1])


_SQLITE_MOVES = (
    """CREATE TRIGGER IF NOT EXISTS objects_moved AFTER UPDATE OF target_id ON objects FOR EACH ROW
    WHEN OLD.target_id IS NOT NULL AND OLD.target_id IS NOT NEW.target_id
    BEGIN INSERT INTO moves (job, source_id) VALUES (OLD.job, OLD.source_id); END""",
    """CREATE TRIGGER IF NOT EXISTS objects_gone AFTER DELETE ON objects FOR EACH ROW
    WHEN OLD.target_id IS NOT NULL
    BEGIN INSERT INTO moves (job, source_id) VALUES (OLD.job, OLD.source_id); END""",
)
_POSTGRESQL_MOVES = (
    """CREATE OR REPLACE FUNCTION roster_object_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO moves (job, source_id) VALUES (OLD.job, OLD.source_id); RETURN NULL; END $$""",
    "DROP TRIGGER IF EXISTS objects_moved ON objects",
    """CREATE TRIGGER objects_moved AFTER UPDATE OF target_id ON objects FOR EACH ROW
    WHEN (OLD.target_id IS NOT NULL AND OLD.target_id IS DISTINCT FROM NEW.target_id)
    EXECUTE PROCEDURE roster_object_moved()""",
    "DROP TRIGGER IF EXISTS objects_gone ON objects",
    """CREATE TRIGGER objects_gone AFTER DELETE ON objects FOR EACH ROW WHEN (OLD.target_id IS NOT NULL)
    EXECUTE PROCEDURE roster_object_moved()""",
)


def _v10_moves(conn: sa.Connection, tables: sa.MetaData) -> None:
    # Reference attributes hash the source ids they name, so a cycle need not look up a target id
    # per object; what moved in the target is told by these rows instead (`engine.core.references`).
    # A later migration that rebuilds `objects` must create these triggers again.
    tables.create_all(conn, tables=[tables.tables["moves"]], checkfirst=True)
    if "moves_seen" not in {column["name"] for column in sa.inspect(conn).get_columns("job_control")}:
        conn.exec_driver_sql("ALTER TABLE job_control ADD COLUMN moves_seen INTEGER")
    for statement in _POSTGRESQL_MOVES if conn.dialect.name == "postgresql" else _SQLITE_MOVES:
        conn.exec_driver_sql(statement)


def _v11_mirror(conn: sa.Connection, tables: sa.MetaData) -> None:
    tables.create_all(conn, tables=[tables.tables["mirror"]], checkfirst=True)


_SQLITE_APPEND_ONLY = (
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE refused'); END""",
)
_POSTGRESQL_APPEND_ONLY = (
    """CREATE OR REPLACE FUNCTION roster_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP; END $$""",
    "DROP TRIGGER IF EXISTS audit_append_only ON audit",
    """CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW
    EXECUTE PROCEDURE roster_audit_append_only()""",
    "DROP TRIGGER IF EXISTS audit_no_truncate ON audit",
    """CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT
    EXECUTE PROCEDURE roster_audit_append_only()""",
)


def _v12_audit(conn: sa.Connection, tables: sa.MetaData) -> None:
    # Who did what (`engine.store.audit`); the database itself refuses to change or delete a row.
    tables.create_all(conn, tables=[tables.tables["audit"]], checkfirst=True)
    for statement in _POSTGRESQL_APPEND_ONLY if conn.dialect.name == "postgresql" else _SQLITE_APPEND_ONLY:
        conn.exec_driver_sql(statement)


_SEARCH_INDEXES = (
    "log_person",
    "log_at",
    "log_job_status_at",
    "log_status_at",
    "log_action_at",
    "log_cycle_at",
)


def _v13_log_search(conn: sa.Connection, tables: sa.MetaData) -> None:
    # The log searched (`engine.store.history.LogFilter`): an index per filter, and the keys each
    # person is found by, taken from the records already there as the engine takes them from new ones.
    tables.create_all(conn, tables=[tables.tables["log_people"]], checkfirst=True)
    conn.exec_driver_sql("DROP INDEX IF EXISTS log_job_source")  # log_person begins with its columns
    for index in tables.tables["log"].indexes:
        if index.name in _SEARCH_INDEXES:
            index.create(conn, checkfirst=True)
    stored = sa.table(
        "log", *(sa.column(n) for n in ("id", "job", "source_id", "target_id", "zdict", "attributes"))
    )
    dictionaries = tables.tables["log_dictionaries"]
    found = conn.execute(sa.select(dictionaries.c.key, dictionaries.c.zdict)).all()
    zdicts = {key: bytes(zdict) for key, zdict in found}
    insert = logrows.insert_people(conn.dialect.name)
    after = 0
    while True:
        query = sa.select(stored).where(stored.c.id > after).order_by(stored.c.id).limit(_COPY_PAGE)
        rows = conn.execute(query).all()
        if not rows:
            break
        people: dict[tuple[str, int, str], None] = {}
        for _id, job, source_id, target_id, zkey, data in rows:
            if source_id:
                text = logrows.decompress(data, zdicts.get(zkey) if zkey is not None else None)
                people.update(
                    ((key, job, source_id), None) for key in logrows.person_keys(source_id, target_id, text)
                )
        if people:
            conn.execute(insert, [dict(zip(logrows.PEOPLE_COLUMNS, row, strict=True)) for row in people])
        after = rows[-1][0]


def _v14_notifications(conn: sa.Connection, tables: sa.MetaData) -> None:
    tables.create_all(conn, tables=[tables.tables["notifications"]], checkfirst=True)


def _v15_disabled_at(conn: sa.Connection, tables: sa.MetaData) -> None:
    # A store made new has the column already (migration 1 creates `objects` as it is now).
    if "disabled_at" not in {column["name"] for column in sa.inspect(conn).get_columns("objects")}:
        conn.exec_driver_sql("ALTER TABLE objects ADD COLUMN disabled_at FLOAT")
    # Disabled before this: the grace counts from the row's last write, never earlier than the disable.
    conn.exec_driver_sql(
        "UPDATE objects SET disabled_at = updated_at WHERE state = 'disabled' AND disabled_at IS NULL"
    )


def _v16_rehire(conn: sa.Connection, tables: sa.MetaData) -> None:
    wanted = [tables.tables["rehire_keys"], tables.tables["departures"]]
    tables.create_all(conn, tables=wanted, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "objects, cycles and the provisioning log", _v1_tables),
    Migration(2, "cycles by job and status: last success, cycles left running", _v2_cycle_index),
    Migration(
        3,
        "group members as applied, job control, deprovisions held for approval, log details",
        _v3_groups_and_control,
    ),
    Migration(4, "one provisioning log record per result", _v4_one_log_record_per_result),
    Migration(
        5, "objects in each job's last complete read, for the source shrink check", _v5_last_complete_read
    ),
    Migration(6, "the owner and lease of a running cycle: a dead owner's is interrupted", _v6_cycle_owner),
    Migration(7, "objects compact: applied hashes as bytes, no rowid", _v7_compact_objects),
    Migration(8, "log compact: names as keys, op ids as numbers, attributes compressed", _v8_compact_log),
    Migration(9, "objects keep the fingerprint a cycle compares", _v9_object_fingerprints),
    Migration(10, "the objects whose target id changed or went, for references to them", _v10_moves),
    Migration(11, "the inbound SCIM service's resources as pushed", _v11_mirror),
    Migration(12, "the audit trail: who did what, append-only", _v12_audit),
    Migration(
        13, "the provisioning log searched: by person, job, cycle, action, status, time", _v13_log_search
    ),
    Migration(14, "notifications: each event's deliveries, pending, sent or given up", _v14_notifications),
    Migration(15, "objects keep when they were disabled, for a leaver's grace period", _v15_disabled_at),
    Migration(16, "rehire: each account's key, and the accounts deleted, by it", _v16_rehire),
)
LATEST = MIGRATIONS[-1].version


async def migrate(conn: AsyncConnection, tables: sa.MetaData) -> list[int]:
    """Bring the store to `LATEST` inside the caller's transaction; returns the versions applied."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
    await conn.run_sync(lambda sync: schema_version.create(sync, checkfirst=True))
    current = (await conn.execute(sa.select(sa.func.max(schema_version.c.version)))).scalar() or 0
    if current > LATEST:
        raise StateError(
            f"the state store has schema version {current}, newer than this Roster knows ({LATEST}): "
            "run a newer Roster, or point --state at another store"
        )
    applied = []
    for migration in MIGRATIONS[current:]:
        await conn.run_sync(migration.apply, tables)
        await conn.execute(
            schema_version.insert().values(
                version=migration.version, description=migration.description, applied_at=time.time()
            )
        )
        applied.append(migration.version)
    return applied


async def version(conn: AsyncConnection) -> int:
    """The schema version of an open store (0 for one that was never migrated)."""
    exists = await conn.run_sync(lambda sync: sa.inspect(sync).has_table("schema_version"))
    if not exists:
        return 0
    return (await conn.execute(sa.select(sa.func.max(schema_version.c.version)))).scalar() or 0
