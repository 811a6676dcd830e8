"""`ConnectorPlugin`: what a connector type gives Roster, and the registry of every type installed.

A connector type is an entry point in the `roster.connectors` group naming a `ConnectorPlugin`; the
built-in ones are declared by Roster's own pyproject.toml the same way (see `common.plugins`). The
plugin parses the target's settings (errors name the key), builds a connector from them, and may
check a target against what its jobs send, without a connection (`problems`) and against the live
peer, writing nothing (`check`, for `roster worker --check` and `roster validate --connect`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.plugins import PluginSet, discover
from workers.connectors.base import Connector

GROUP = "roster.connectors"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetUse:
    """What the jobs of a target send to it."""

    sent: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per object type (user, group), each attribute sent with the path of the (first) mapping that
    sends it (`jobs[0].mappings[3].target`)."""
    matched: Collection[str] = ()
    """The attributes sent as the match value (the first matching attribute of each job)."""

    @property
    def attributes(self) -> dict[str, str]:
        """Every attribute sent, whatever the object type."""
        merged: dict[str, str] = {}
        for attributes in self.sent.values():
            for attribute, where in attributes.items():
                merged.setdefault(attribute, where)
        return merged


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorPlugin:
    """A connector type. `api_version` is the `roster.API_VERSION` the plugin was written for."""

    api_version: int
    parse: Callable[[str, Mapping[str, Any], Path], Any]
    """`(path, settings, base_dir)`: the target's own settings (without `name`, `type`, `max_inflight`,
    `retry`) validated, as any object the connector takes; a `ConfigError` naming `path.key` if wrong.
    `base_dir` is the configuration file's folder, for relative file paths."""
    build: Callable[[str, Any], Connector]
    """`(target name, parsed settings)`: a connector, not yet opened."""
    problems: Callable[[str, Any, TargetUse], list[ConfigError]] | None = None
    """`(path, settings, use)`: what the settings cannot do with what the jobs send; no connection."""
    check: Callable[[str, Any, TargetUse], Awaitable[list[ConfigError]]] | None = None
    """`(path, settings, use)`: the problems found on the live target, writing nothing: that it can be
    reached (network, TLS), takes the credentials, has what the settings name (base DN, table,
    endpoint), and answers a read. Each problem names the setting at fault and the fix, no secret."""
    probe: Callable[[str, Any, TargetUse], Awaitable[list[ConfigError]]] | None = None
    """The former name of `check` (API version 1 plugins): taken as `check` when that is not given."""
    summary: str = ""
    """One line for `roster plugins`."""
    takes_proxy: bool = False
    """The type reaches its target over HTTP and reads a `proxy:` key (as `common.peers.http_settings`
    does): a target that sets none gets the worker's top-level `proxy:`."""

    def __post_init__(self) -> None:
        if self.check is None and self.probe is not None:
            object.__setattr__(self, "check", self.probe)


@cache
def connector_types() -> PluginSet[ConnectorPlugin]:
    """Every connector type installed, loaded once per process."""
    return discover(GROUP, "connector type", ConnectorPlugin)
