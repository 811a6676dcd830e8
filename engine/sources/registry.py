"""Which source type reads which settings and opens which source.

A job's `source:` section names its `type:`; each kind validates its own settings (errors name the key and
the fix) and opens a fresh `Source` per cycle. A file source may leave `type:` out: the file's suffix says it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config.validation import choice, join
from engine.sources.base import Source
from engine.sources.file import FileSource, parse_file_source
from engine.sources.inbound import InboundSource, parse_inbound_source
from engine.sources.ldap import LdapSource, parse_ldap_source
from engine.sources.scim import ScimSource, parse_scim_source
from engine.sources.sql import SqlSource, parse_sql_source
from engine.store.state import StateStore


@dataclass(frozen=True, slots=True)
class SourceKind:
    """How one source type reads its settings and opens a source from them."""

    parse: Callable[[str, Mapping[str, Any], Path, str], Any]
    """Validates the settings at a path, with the file's folder and the job's object_type (user, group)."""
    open: Callable[[Any, str | None, StateStore | None], Source]
    """Opens a source on its settings; the second argument is a watermark to read changes since, the
    third the state store where the caller has one (the inbound source reads its mirror there)."""
    incremental: Callable[[Any], tuple[bool, float]] = lambda _settings: (False, 0.0)
    """Whether the settings ask for incremental reads, and how often a full import still comes (s)."""


_FILE = SourceKind(
    parse=lambda path, raw, base_dir, _object_type: parse_file_source(path, raw, base_dir=base_dir),
    open=lambda settings, _since, _state: FileSource(settings),
)

SOURCE_KINDS: dict[str, SourceKind] = {
    "csv": _FILE,
    "jsonl": _FILE,
    "ldap": SourceKind(
        parse=lambda path, raw, base_dir, _object_type: parse_ldap_source(path, raw, base_dir=base_dir),
        open=lambda settings, since, _state: LdapSource(settings, since=since),
        incremental=lambda settings: (settings.incremental, settings.full_import_every_s),
    ),
    "scim": SourceKind(
        parse=lambda path, raw, base_dir, object_type: parse_scim_source(
            path, raw, base_dir=base_dir, object_type=object_type
        ),
        open=lambda settings, _since, _state: ScimSource(settings),
    ),
    "sql": SourceKind(
        parse=lambda path, raw, base_dir, _object_type: parse_sql_source(path, raw, base_dir=base_dir),
        open=lambda settings, since, _state: SqlSource(settings, since=since),
        incremental=lambda settings: (settings.incremental, settings.full_import_every_s),
    ),
    "scim_inbound": SourceKind(
        parse=lambda path, raw, _base_dir, object_type: parse_inbound_source(
            path, raw, object_type=object_type
        ),
        open=lambda settings, _since, state: InboundSource(settings, state),
    ),
}


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """A job's validated source: its type and that type's own settings."""

    type: str
    settings: Any

    def open(self, since: str | None = None, *, state: StateStore | None = None) -> Source:
        """A fresh source; `since` (a watermark an incremental read left) reads only what changed;
        `state`: the state store, where the caller has one (an inbound source needs it)."""
        return SOURCE_KINDS[self.type].open(self.settings, since, state)

    @property
    def incremental(self) -> bool:
        return SOURCE_KINDS[self.type].incremental(self.settings)[0]

    @property
    def full_import_every_s(self) -> float:
        return SOURCE_KINDS[self.type].incremental(self.settings)[1]


def parse_source(
    path: str, raw: Mapping[str, Any], *, base_dir: Path, object_type: str = "user"
) -> SourceSettings:
    """Validate a job's `source:` with the parser of its type (a file's type may come from its name).

    `object_type` is the job's (user or group), for the kinds whose reading depends on it (SCIM).
    """
    if "type" not in raw:
        settings = _FILE.parse(path, raw, base_dir, object_type)
        return SourceSettings(type=settings.type, settings=settings)
    kind_name = choice(join(path, "type"), raw["type"], tuple(SOURCE_KINDS))
    settings = SOURCE_KINDS[kind_name].parse(path, raw, base_dir, object_type)
    return SourceSettings(type=kind_name, settings=settings)
