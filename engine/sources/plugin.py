"""`SourcePlugin`: what a source type gives Roster, and the registry of every type installed.

A source type is an entry point in the `roster.sources` group naming a `SourcePlugin`; the built-in
ones (`engine.sources.builtin`) are declared by Roster's own pyproject.toml the same way (see
`common.plugins`). The plugin validates a job's `source:` settings (errors name the key), opens a
fresh `Source` on them for each cycle, and may check the live source (`check`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.plugins import PluginSet, discover
from engine.sources.base import Source

GROUP = "roster.sources"


def _never_incremental(_settings: Any) -> tuple[bool, float]:
    return False, 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcePlugin:
    """A source type. `api_version` is the `roster.API_VERSION` the plugin was written for."""

    api_version: int
    parse: Callable[[str, Mapping[str, Any], Path, str], Any]
    """`(path, settings, base_dir, object_type)`: the job's `source:` settings validated, as any object
    the source takes; a `ConfigError` naming `path.key` if wrong. `base_dir` is the job file's folder
    (for relative paths), `object_type` the job's (`user`, `group`) for sources that read differently
    for each."""
    open: Callable[[Any, str | None, Any], Source]
    """`(settings, since, state)`: a new source for one read. `since` is the watermark the last
    incremental read left (None: read everything); `state` is Roster's own state store where the caller
    has one, used only by the built-in inbound source: a plugin ignores it."""
    incremental: Callable[[Any], tuple[bool, float]] = _never_incremental
    """`(settings)`: whether they ask for incremental reads, and every how many seconds a full read
    still comes (so deletions, which only a full read sees, are found)."""
    check: Callable[[str, Any], Awaitable[list[ConfigError]]] | None = None
    """`(path, settings)`: the problems found on the live source, writing nothing: that it can be
    reached (network, TLS), takes the credentials, has what the settings name (a base DN, a table, an
    endpoint) and answers a read (`roster validate --connect`, `roster engine --check`). Each problem
    names the setting at fault (`path.key`) and the fix, and holds no secret."""
    summary: str = ""
    """One line for `roster plugins`."""


@cache
def source_types() -> PluginSet[SourcePlugin]:
    """Every source type installed, loaded once per process."""
    return discover(GROUP, "source type", SourcePlugin)
