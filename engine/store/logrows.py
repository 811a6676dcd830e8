"""The provisioning log's records as stored and as read back.

A record is written as the fifteen fields a user sees (`FIELDS`, less the id), and stored compactly
(`log` in `engine.store.schema`): the strings every record repeats (job, cycle id, action, status) as
keys of `log_names`; the op id, which the planner makes as `<cycle id>-<number>`, as the key of the
part before its number and the number; the attributes zlib-compressed with a dictionary of the job's
(`log_dictionaries`). Reading joins the names back in SQL (`readable`, also the `log_view` view for
people querying the store by hand) and decompresses the attributes to the very JSON text written.

Beside the records, the keys each person (job and source id) can be searched by go to `log_people`
(`person_keys`, `people_rows`), in the transaction that writes the records.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.store.schema import log, log_dictionaries, log_names, log_people

Writing = Callable[[Callable[[sa.Connection], Any]], Awaitable[Any]]
"""Runs blocking work in a write transaction (`StateStore.run_writing`)."""

_PER_QUERY = 500  # names bound in one query (well below every driver's limit)

FIELDS = (
    "id",
    "at",
    "cycle_id",
    "op_id",
    "job",
    "source_id",
    "target_id",
    "action",
    "status",
    "attempts",
    "error_class",
    "error_code",
    "error_message",
    "latency_ms",
    "duration_ms",
    "attributes",
)
"""A log record's fields as read, exported and shown, in this order."""

Plain = tuple[Any, ...]
"""A record to write: the values of `FIELDS` but the id, in their order (attributes as JSON text)."""

STORED = (
    "at",
    "job",
    "cycle",
    "op_prefix",
    "op_seq",
    "source_id",
    "target_id",
    "action",
    "status",
    "attempts",
    "error_class",
    "error_code",
    "error_message",
    "latency_ms",
    "duration_ms",
    "zdict",
    "attributes",
)
"""The columns of a stored record, in the order `encode` gives their values."""

NO_NUMBER = -1
"""`op_seq` of an op id that does not end with a number: `op_prefix` names all of it."""

_MAX_DIGITS = 18  # any number of up to 18 digits fits a 64-bit integer column
_WBITS = -12  # raw deflate with a 4 KiB window, the dictionary's largest size; fixed: stored records need it
_LEVEL = 6
_MEM_LEVEL = 2  # small state: records are a few hundred bytes, and each gets a compressor of its own
ZDICT_MAX_BYTES = 1 << 12
SAMPLE_RECORDS = 64
"""How many records of a job's first write its dictionary is made from."""
SHARED_BY = 4
"""A value enters a dictionary only if this many sampled records hold it: the dictionary stays
after the records are pruned, so it holds no value of one person alone."""


def split_op_id(op_id: str | None) -> tuple[str | None, int | None]:
    """The op id as its part before the number it ends with, and that number (`NO_NUMBER` if none):
    `prefix + str(number)` gives the op id back, so a number with a leading zero stays in the prefix."""
    if op_id is None:
        return None, None
    prefix = op_id.rstrip("0123456789")
    digits = op_id[len(prefix) :]
    if not digits or len(digits) > _MAX_DIGITS or (digits[0] == "0" and len(digits) > 1):
        return op_id, NO_NUMBER
    return prefix, int(digits)


OpParts = tuple[str | None, int | None]


def parts_and_names(plains: Sequence[Plain]) -> tuple[list[OpParts], set[str]]:
    """The records' op ids split (`split_op_id`), and the strings that the store keeps in `log_names`."""
    parts = [split_op_id(plain[2]) for plain in plains]
    names = {name for plain in plains for name in (plain[1], plain[3], plain[6], plain[7])}
    names.update(prefix for prefix, _number in parts)
    names.discard(None)
    return parts, names


def samples(plains: Iterable[Plain], known: Container[str]) -> dict[str, list[str]]:
    """The attributes to make dictionaries from, of the jobs not `known`: their first records'."""
    found: dict[str, list[str]] = {}
    for plain in plains:
        job, text = plain[3], plain[-1]
        if text is not None and job not in known:
            texts = found.setdefault(job, [])
            if len(texts) < SAMPLE_RECORDS:
                texts.append(text)
    return found


def encode(
    plain: Plain, op: OpParts, keys: Mapping[str | None, int | None], zdict: tuple[int, bytes] | None
) -> Plain:
    """A record as stored (values of `STORED`), given its op id's parts, the keys of its names and its
    job's dictionary."""
    at, cycle_id, _op_id, job, source_id, target_id, action, status, *errors, latency, duration, text = plain
    prefix, seq = op
    zkey, attributes = compress(text, zdict)
    return (
        at,
        keys[job],
        keys[cycle_id],
        keys[prefix],
        seq,
        source_id,
        target_id,
        keys[action],
        keys[status],
        *errors,
        latency,
        duration,
        zkey,
        attributes,
    )


def compress(text: str | None, zdict: tuple[int, bytes] | None) -> tuple[int | None, bytes | None]:
    """Attributes (JSON text) as stored: compressed with the dictionary (its key first), or as they
    are, UTF-8, with no dictionary key, where compressing would not make them smaller."""
    if text is None:
        return None, None
    raw = text.encode()
    if zdict is None:
        return None, raw
    key, data = zdict
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, data)
    packed = compressor.compress(raw) + compressor.flush()
    return (key, packed) if len(packed) < len(raw) else (None, raw)


def decompress(stored: bytes | None, zdict: bytes | None) -> str | None:
    """The JSON text `compress` was given."""
    if stored is None:
        return None
    if zdict is None:
        return bytes(stored).decode()
    decompressor = zlib.decompressobj(_WBITS, zdict)
    return (decompressor.decompress(stored) + decompressor.flush()).decode()


def make_zdict(samples: Iterable[str]) -> bytes:
    """A dictionary for a job's attributes, from some of its records: the attribute names, and the
    name-value pairs at least `SHARED_BY` of them hold, the most shared last (nearest to the data)."""
    names: dict[bytes, None] = {}
    shared: Counter[bytes] = Counter()
    for text in samples:
        try:
            attributes = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(attributes, dict):
            continue
        for name, value in attributes.items():
            key = orjson.dumps(name) + b":"
            names[key] = None
            shared[key + orjson.dumps(value)] += 1
    pairs = [pair for pair, count in sorted(shared.items(), key=lambda item: item[1]) if count >= SHARED_BY]
    return (b",".join(names) + b"," + b",".join(pairs))[-ZDICT_MAX_BYTES:]


class LogCodec:
    """Records to store and stored records read back, for one store: it knows the keys of the names
    and the dictionaries met so far. Both are made in short transactions of their own, before the
    records that use them are written, so what it knows is always committed; neither is ever
    deleted, so it is never stale."""

    def __init__(self) -> None:
        self._keys: dict[str | None, int | None] = {None: None}
        self._zdicts: dict[int, bytes] = {}
        self._job_zdicts: dict[str, tuple[int, bytes]] = {}

    async def rows(self, writing: Writing, plains: Sequence[Plain]) -> list[Plain]:
        """The records as stored (values of `STORED`)."""
        if not plains:
            return []
        parts, names = parts_and_names(plains)
        keys = await self.keys(writing, names)
        for job, texts in samples(plains, self._job_zdicts).items():
            await self._job_zdict(writing, job, texts)
        zdicts = self._job_zdicts
        return [
            encode(plain, op, keys, zdicts.get(plain[3])) for plain, op in zip(plains, parts, strict=True)
        ]

    def people(self, plains: Sequence[Plain]) -> list[Plain]:
        """The `log_people` rows of records that `rows` has seen (it knows their jobs' keys)."""
        return people_rows(plains, self._keys)

    async def keys(self, writing: Writing, names: set[str]) -> dict[str | None, int | None]:
        """The keys of `names` (and of None: None) in `log_names`, added where missing."""
        missing = sorted(names - self._keys.keys())
        if missing:

            def add(conn: sa.Connection) -> dict[str, int]:
                made: dict[str, int] = {}
                insert = insert_names(conn.dialect.name)
                for start in range(0, len(missing), _PER_QUERY):
                    chunk = missing[start : start + _PER_QUERY]
                    conn.execute(insert, [{"name": name} for name in chunk])
                    made.update((key, value) for key, value in conn.execute(select_keys(chunk)))
                return made

            self._keys.update(await writing(add))  # committed now
        return self._keys

    async def _job_zdict(self, writing: Writing, job: str, samples: list[str]) -> None:
        """Know the job's dictionary: the store's latest, or a new one made from `samples`."""

        def find_or_add(conn: sa.Connection) -> tuple[int, bytes]:
            found = conn.execute(latest_zdict(job)).first()
            if found is not None:
                return found[0], found[1]
            zdict = make_zdict(samples)
            return conn.execute(insert_zdict(job, zdict)).scalar_one(), zdict

        key, zdict = await writing(find_or_add)
        self._job_zdicts[job] = (key, bytes(zdict))
        self._zdicts[key] = bytes(zdict)

    async def records(self, conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Rows of `readable()` as records by `FIELDS`, their attributes as the JSON text written."""
        texts = await self.texts(conn, [(row[-2], row[-1]) for row in rows])
        return [
            dict(zip(FIELDS, (*row[:-2], text), strict=True)) for row, text in zip(rows, texts, strict=True)
        ]

    async def texts(
        self, conn: AsyncConnection, stored: Sequence[tuple[int | None, bytes | None]]
    ) -> list[str | None]:
        """Stored attributes (the key of their dictionary, the bytes) as the JSON text written."""
        wanted = {key for key, _data in stored if key is not None} - self._zdicts.keys()
        if wanted:
            found = (await conn.execute(select_zdicts(wanted))).all()
            self._zdicts.update((key, bytes(zdict)) for key, zdict in found)
        zdicts = self._zdicts
        return [decompress(data, zdicts.get(key) if key is not None else None) for key, data in stored]


def key_of(name: str) -> Any:
    """The key of a name, in SQL (NULL if the store has never seen it)."""
    return sa.select(log_names.c.key).where(log_names.c.name == name).scalar_subquery()


def _as_text() -> sa.Select[Any]:
    job, cycle, prefix, action, status = (
        log_names.alias(f"{n}_name") for n in ("job", "cycle", "op", "a", "s")
    )
    op_id = sa.case(
        (log.c.op_seq == NO_NUMBER, prefix.c.name),
        else_=prefix.c.name + sa.cast(log.c.op_seq, sa.String),
    )
    columns = (
        log.c.id,
        log.c.at,
        cycle.c.name.label("cycle_id"),
        op_id.label("op_id"),
        job.c.name.label("job"),
        log.c.source_id,
        log.c.target_id,
        action.c.name.label("action"),
        status.c.name.label("status"),
        log.c.attempts,
        log.c.error_class,
        log.c.error_code,
        log.c.error_message,
        log.c.latency_ms,
        log.c.duration_ms,
    )
    joined = (
        log.join(job, job.c.key == log.c.job)
        .outerjoin(cycle, cycle.c.key == log.c.cycle)
        .outerjoin(prefix, prefix.c.key == log.c.op_prefix)
        .join(action, action.c.key == log.c.action)
        .join(status, status.c.key == log.c.status)
    )
    return sa.select(*columns).select_from(joined)


def readable() -> sa.Select[Any]:
    """The log's records with their names as text: the `FIELDS` but the attributes, then the key of
    their dictionary and the attributes as stored (see `decompress`)."""
    return _as_text().add_columns(log.c.zdict, log.c.attributes)


def view_sql(dialect: sa.Dialect) -> str:
    """`CREATE VIEW log_view`: the log as text, its attributes aside (SQL cannot decompress them)."""
    body = _as_text().compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return f"CREATE VIEW log_view AS {body}"


def insert_names(dialect: str) -> Any:
    """INSERT of names that leaves those already there alone."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(log_names).on_conflict_do_nothing(index_elements=[log_names.c.name])


def select_keys(names: Iterable[str]) -> sa.Select[Any]:
    return sa.select(log_names.c.name, log_names.c.key).where(log_names.c.name.in_(list(names)))


def latest_applied(
    job: int, succeeded: int, actions: Sequence[int], source_ids: Sequence[str]
) -> sa.Select[Any]:
    """The source id, dictionary key and stored attributes of the latest successful create or update
    (`actions`, as keys) of each of the job's `source_ids`: one look into `log_person` per id."""
    latest = (
        sa.select(sa.func.max(log.c.id))
        .where(
            log.c.job == job,
            log.c.source_id.in_(list(source_ids)),
            log.c.status == succeeded,
            log.c.action.in_(list(actions)),
        )
        .group_by(log.c.source_id)
    )
    return sa.select(log.c.source_id, log.c.zdict, log.c.attributes).where(
        log.c.id.in_(latest.scalar_subquery())
    )


def select_zdicts(keys: Iterable[int]) -> sa.Select[Any]:
    return sa.select(log_dictionaries.c.key, log_dictionaries.c.zdict).where(
        log_dictionaries.c.key.in_(list(keys))
    )


def insert_zdict(job: str, zdict: bytes) -> Any:
    """INSERT of a job's new dictionary, returning its key."""
    return log_dictionaries.insert().values(job=job, zdict=zdict).returning(log_dictionaries.c.key)


def latest_zdict(job: str) -> sa.Select[Any]:
    return (
        sa.select(log_dictionaries.c.key, log_dictionaries.c.zdict)
        .where(log_dictionaries.c.job == job)
        .order_by(log_dictionaries.c.key.desc())
        .limit(1)
    )


WHO = frozenset(
    {
        "username",
        "displayname",
        "name",
        "givenname",
        "familyname",
        "middlename",
        "formatted",
        "nickname",
        "cn",
        "sn",
        "uid",
        "mail",
        "email",
        "emails",
        "samaccountname",
        "userprincipalname",
        "upn",
        "employeeid",
        "employeenumber",
    }
)
"""Attribute names (or parts of a path, case aside) whose values tell who a record is about."""

KEY_MAX_CHARS = 200
"""A search key is cut to this many characters (a prefix search finds it still)."""
MAX_KEYS = 24
"""At most this many keys of one record's attributes (ids aside): a group's members are not its names."""
PREFIX_MIN_CHARS = 3
"""A person searched by fewer characters is matched exactly, not by prefix: "a" is half the log."""

_PATH_PARTS = re.compile(r"\[[^\]]*\]|[.:]")  # `emails[type eq "work"].value`, `urn:...:User:employeeNumber`
_REDACTED = "***"


def _who(name: str) -> bool:
    return any(part.lower() in WHO for part in _PATH_PARTS.split(name) if part)


def _values(value: Any, who: bool, found: dict[str, None]) -> None:
    if len(found) >= MAX_KEYS:
        return
    if isinstance(value, str):
        if who:
            key = value.strip().casefold()[:KEY_MAX_CHARS]
            if key and key != _REDACTED:
                found[key] = None
                words = key.split()
                if len(words) > 1:  # "ada lovelace" is found by "lovelace" too
                    found.update((word, None) for word in words[1:] if len(word) >= PREFIX_MIN_CHARS)
    elif isinstance(value, list):
        for item in value:
            _values(item, who, found)
    elif isinstance(value, dict):
        for name, item in value.items():
            _values(item, _who(name) or (who and name == "value"), found)


def person_keys(source_id: str | None, target_id: str | None, text: str | None) -> list[str]:
    """What a record can be found by as a person: its source and target ids and the values of its
    attributes named in `WHO` (names, mails, account names), casefolded and stripped."""
    found: dict[str, None] = {}
    if text:
        try:
            attributes = orjson.loads(text)
        except orjson.JSONDecodeError:
            attributes = None
        if isinstance(attributes, dict):
            _values(attributes, False, found)
    for given in (source_id, target_id):
        if given:
            found[given.strip().casefold()[:KEY_MAX_CHARS]] = None
    found.pop("", None)
    return list(found)


def people_rows(plains: Iterable[Plain], keys: Mapping[str | None, int | None]) -> list[Plain]:
    """The `log_people` rows (key, job key, source id) of the records, once each. A record with no
    source id (an orphan a reconciliation found in the target) names no person."""
    rows: dict[Plain, None] = {}
    for plain in plains:
        source_id = plain[4]
        if source_id:
            job = keys[plain[3]]
            rows.update(((key, job, source_id), None) for key in person_keys(source_id, plain[5], plain[-1]))
    return list(rows)


PEOPLE_COLUMNS = ("key", "job", "source_id")


def insert_people(dialect: str) -> Any:
    """INSERT of `log_people` rows that leaves those already there alone."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(log_people).on_conflict_do_nothing(
        index_elements=[log_people.c.key, log_people.c.job, log_people.c.source_id]
    )


def person_term(term: str) -> tuple[str, str | None]:
    """A person searched for as the key to look up, and the end of its prefix range (None: exact)."""
    key = term.strip().casefold()[:KEY_MAX_CHARS]
    return key, (key + "\U0010ffff" if len(key) >= PREFIX_MIN_CHARS else None)


def people_matching(term: str, job: Any = None) -> sa.Select[Any]:
    """The people (job key, source id), once each, with a key that `term` gives or begins
    (`person_term`), of `job` (a key) only if given."""
    key, end = person_term(term)
    found = (
        log_people.c.key == key if end is None else sa.and_(log_people.c.key >= key, log_people.c.key < end)
    )
    query = sa.select(log_people.c.job, log_people.c.source_id).where(found).distinct()
    # `+ 0`: the key's range is the search, not every key of the job (SQLite would take either)
    return query if job is None else query.where(log_people.c.job + 0 == job)


def forget_people() -> Any:
    """DELETE of the keys of a person (job key `j`, source id `s`) that no log record names any more,
    run once per person a prune touched."""
    job: Any = sa.bindparam("j")
    source_id: Any = sa.bindparam("s")
    remaining = sa.exists().where(log.c.job == job, log.c.source_id == source_id)
    return log_people.delete().where(log_people.c.job == job, log_people.c.source_id == source_id, ~remaining)
