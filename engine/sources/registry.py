"""A job's source settings: which installed source type reads them, and the source it opens.

A job's `source:` section names its `type:`, one of the source types installed (`engine.sources.plugin`);
that type validates its own settings (errors name the key and the fix) and opens a fresh `Source` per
cycle. A file source may leave `type:` out: the file's suffix says it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config.validation import join
from engine.sources.base import Source
from engine.sources.builtin import FILE
from engine.sources.plugin import SourcePlugin, source_types
from engine.store.state import StateStore


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """A job's validated source: its type and that type's own settings."""

    type: str
    settings: Any

    def open(self, since: str | None = None, *, state: StateStore | None = None) -> Source:
        """A fresh source; `since` (a watermark an incremental read left) reads only what changed;
        `state`: the state store, where the caller has one (an inbound source needs it)."""
        return self.plugin.open(self.settings, since, state)

    @property
    def plugin(self) -> SourcePlugin:
        return source_types().loaded[self.type].plugin

    @property
    def incremental(self) -> bool:
        return self.plugin.incremental(self.settings)[0]

    @property
    def full_import_every_s(self) -> float:
        return self.plugin.incremental(self.settings)[1]


def parse_source(
    path: str, raw: Mapping[str, Any], *, base_dir: Path, object_type: str = "user"
) -> SourceSettings:
    """Validate a job's `source:` with the parser of its type (a file's type may come from its name).

    `object_type` is the job's (user or group), for the kinds whose reading depends on it (SCIM).
    """
    if "type" not in raw:
        settings = FILE.parse(path, raw, base_dir, object_type)
        return SourceSettings(type=settings.type, settings=settings)
    plugin = source_types().get(join(path, "type"), raw["type"])
    return SourceSettings(type=raw["type"], settings=plugin.parse(path, raw, base_dir, object_type))
