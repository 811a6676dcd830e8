"""What a cycle holds of its job's state: a small fingerprint per object, and full entries on demand.

A cycle over a million objects cannot hold every `StateEntry` (its target id, applied hash and state
as Python objects came to about 0.6 KB an object). It holds, per source id, one int that digests the
applied hash and says whether the object is disabled: enough to tell that an object is unchanged,
which most are. The cycle runner loads the full entries of the few objects that need them (changed,
failed, or left the source) from the store, one query per batch (`Snapshot.add_entries`).

Applied hashes are stored compactly too (`encode_hash`): the hex digest the mappings make as its 16
bytes, behind a byte that says how to read it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from hashlib import blake2b

from engine.core.membership import PENDING_PREFIX
from engine.model import DISABLED, StateEntry

_TEXT, _DIGEST, _PENDING = 0, 1, 2  # the first byte of an encoded hash


def encode_hash(value: str | None) -> bytes | None:
    """An applied hash as stored: a lowercase hex digest (after `pending:` or not) as its bytes, any
    other text as UTF-8, each behind a byte that says which."""
    if value is None:
        return None
    marker, digest = _DIGEST, value
    if value.startswith(PENDING_PREFIX):
        marker, digest = _PENDING, value[len(PENDING_PREFIX) :]
    try:
        raw = bytes.fromhex(digest)
    except ValueError:
        raw = None
    if raw is not None and raw.hex() == digest and raw:  # fromhex also takes capitals and spaces
        return bytes((marker,)) + raw
    return bytes((_TEXT,)) + value.encode()


def decode_hash(value: bytes | str | None) -> str | None:
    """The applied hash `encode_hash` stored. Text (a store written before hashes were encoded, or a
    value this Roster did not encode) reads back as it is."""
    if value is None or isinstance(value, str):
        return value
    value = bytes(value)  # asyncpg gives bytes, some drivers memoryview
    marker = value[0] if value else -1
    if marker == _DIGEST:
        return value[1:].hex()
    if marker == _PENDING:
        return PENDING_PREFIX + value[1:].hex()
    if marker == _TEXT:
        return value[1:].decode(errors="replace")
    return value.decode(errors="replace")


def fingerprint(encoded: bytes | str | None, state: str) -> int:
    """59 bits of the encoded applied hash, then one bit for a disabled object: below 2**60, so that
    CPython keeps it in two digits (32 bytes). Two digests share a fingerprint once in 2**56."""
    if encoded is None:
        key = 0
    else:
        if type(encoded) is not bytes:
            encoded = encode_hash(encoded) if isinstance(encoded, str) else bytes(encoded)
            assert encoded is not None
        if len(encoded) >= 8 and encoded[0] != _TEXT:  # 56 bits of the digest, and its marker
            key = int.from_bytes(encoded[1:8], "big") << 3 | encoded[0]
        else:
            key = int.from_bytes(blake2b(encoded, digest_size=8).digest(), "big") >> 5
    return key << 1 | (state == DISABLED)


def digest_fingerprint(digest: str) -> int:
    """`desired_fingerprint` of a hash `attribute_hash` made (32 lowercase hex digits, always), without
    checking it: once per object per cycle, the check cost a third of a microsecond."""
    return (int(digest[:14], 16) << 3 | _DIGEST) << 1


_LOWER_HEX_DIGEST = re.compile(r"[0-9a-f]{16,}")


def desired_fingerprint(desired_hash: str) -> int:
    """The fingerprint of an active object that holds `desired_hash`: equal to its state's when the
    target already holds these values. Once per object per cycle: a digest the mappings made (what
    nearly every hash is) takes a short cut to the value `fingerprint(encode_hash(...))` gives."""
    if len(desired_hash) % 2 == 0 and _LOWER_HEX_DIGEST.fullmatch(desired_hash) is not None:
        return (int(desired_hash[:14], 16) << 3 | _DIGEST) << 1
    return fingerprint(encode_hash(desired_hash), "active")


class Snapshot:
    """One job's state at a cycle's start: a fingerprint per source id, and the full entries loaded.

    `take` hands out an object's fingerprint once and forgets it, so what is left once the source was
    read is what the source no longer holds (`unseen`); the memory of what was taken is given back.
    """

    __slots__ = ("_entries", "_sized_for", "fingerprints", "held")

    def __init__(self, fingerprints: dict[str, int]) -> None:
        self.fingerprints = fingerprints
        """Source id -> fingerprint of the objects not taken yet (the planner's hot path reads it)."""
        self._entries: dict[str, StateEntry] = {}
        self.held = len(fingerprints)
        """How many objects the state held at the start (the deletion guard's measure)."""
        self._sized_for = self.held

    @classmethod
    def of(cls, entries: Mapping[str, StateEntry]) -> Snapshot:
        """A snapshot with every entry loaded (tests, a cycle of one object)."""
        snapshot = cls({s: fingerprint(encode_hash(e.applied_hash), e.state) for s, e in entries.items()})
        snapshot._entries.update(entries)
        return snapshot

    def __len__(self) -> int:
        return self.held

    def peek(self, source_id: str) -> int | None:
        """The object's fingerprint, None if the state does not hold it (or it was taken)."""
        return self.fingerprints.get(source_id)

    def take(self, source_id: str) -> int | None:
        """The object's fingerprint, which from now on counts as seen."""
        return self.fingerprints.pop(source_id, None)

    def shrink(self) -> None:
        """Once half the fingerprints were taken, hold the rest in a dict of their size: a dict keeps
        its table however many entries leave it, and the table of a million is 40 MB, which the ids
        a source read so far (`engine.sources.file`) would otherwise come on top of."""
        if len(self.fingerprints) <= self._sized_for // 2:
            self.fingerprints = dict(self.fingerprints)
            self._sized_for = len(self.fingerprints)

    def unseen(self) -> Iterator[str]:
        """The source ids not taken so far (a snapshot of them: taking goes on meanwhile)."""
        return iter(list(self.fingerprints))

    def entry(self, source_id: str) -> StateEntry | None:
        """The object's full entry, if loaded (see `add_entries`)."""
        return self._entries.get(source_id)

    def add_entries(self, entries: Mapping[str, StateEntry]) -> None:
        self._entries.update(entries)

    def drop_entries(self, source_ids: Iterable[str]) -> None:
        """Forget loaded entries that were used: the memory stays flat over a cycle."""
        entries = self._entries
        for source_id in source_ids:
            entries.pop(source_id, None)
