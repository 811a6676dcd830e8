"""Connector and source types found through entry points, Roster's own and everyone else's alike.

A type is an entry point in a group (`roster.connectors`, `roster.sources`) naming an object of the
group's plugin class (`workers.connectors.plugin.ConnectorPlugin`, `engine.sources.plugin.SourcePlugin`).
Roster's built-in types are entry points of the `roster` distribution, so there is one way in. Each is
loaded on its own: one that fails to import, is not a plugin, was written for another API version, or
shares its name with another distribution's is *broken*, reported with its distribution and the error,
and leaves the others working. A configuration naming a broken type is refused with that error.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, Protocol, TypeVar

from common.errors import ConfigError

log = logging.getLogger(__name__)

API_VERSION = 1
"""The version of the connector and source API (`roster.connector`, `roster.source`) this Roster speaks.
Published as `roster.API_VERSION`; a plugin states the one it was written for."""

BUILTIN_DISTRIBUTION = "roster"


class Plugin(Protocol):
    @property
    def api_version(self) -> int: ...


P = TypeVar("P", bound=Plugin)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a type comes from: its entry point (`module:attribute`) and the distribution declaring it."""

    name: str
    value: str
    distribution: str
    version: str

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION


@dataclass(frozen=True, slots=True)
class Loaded(Generic[P]):
    origin: Origin
    plugin: P


@dataclass(frozen=True, slots=True)
class Broken:
    origin: Origin
    error: str
    """Why it cannot be used, as a person reads it (`ModuleNotFoundError: No module named 'x'`)."""


@dataclass(frozen=True, slots=True)
class PluginSet(Generic[P]):
    """The types of one group: those that loaded, by name, and those that did not."""

    group: str
    what: str
    """What a type of this group is called in messages: `connector type`, `source type`."""
    loaded: dict[str, Loaded[P]] = field(default_factory=dict)
    broken: list[Broken] = field(default_factory=list)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.loaded))

    def get(self, path: str, name: object) -> P:
        """The plugin called `name`, or a `ConfigError` at `path` naming the types there are and, for a
        broken one of that name, why it could not be loaded."""
        if isinstance(name, str) and name in self.loaded:
            return self.loaded[name].plugin
        known = ", ".join(self.names) or "none"
        for broken in self.broken:
            if broken.origin.name == name:
                origin = broken.origin
                raise ConfigError(
                    path,
                    f"{self.what} {name!r} ({origin.distribution} {origin.version}, {origin.value}) could "
                    f"not be loaded: {broken.error}",
                    f"fix or reinstall that package (`roster plugins` lists every {self.what}); "
                    f"the types that work are {known}",
                )
        close = difflib.get_close_matches(str(name), list(self.names), n=1)
        raise ConfigError(
            path,
            f"{name!r} is not one of {known}",
            (f"did you mean {close[0]!r}? " if close else "")
            + f"another package's {self.what} works once installed: `roster plugins` lists them",
        )


def discover(group: str, what: str, plugin_class: type[P]) -> PluginSet[P]:
    """Load every entry point of `group`; each failure is logged and kept as `Broken`, never raised."""
    found: PluginSet[P] = PluginSet(group=group, what=what)
    by_name: dict[str, list[EntryPoint]] = {}
    for point in entry_points(group=group):  # one per distribution: importlib keeps the first of a name
        by_name.setdefault(point.name, []).append(point)
    for name, same in sorted(by_name.items()):
        if len(same) > 1:
            names = " and ".join(sorted(_origin(point).distribution for point in same))
            for point in same:
                _keep_broken(found, _origin(point), f"{names} both provide a {what} {name!r}")
            continue
        _load(found, same[0], plugin_class)
    return found


def _load(found: PluginSet[P], point: EntryPoint, plugin_class: type[P]) -> None:
    origin = _origin(point)
    try:
        plugin = point.load()
    except Exception as exc:  # a plugin's import may fail in any way; it must not take the others down
        _keep_broken(found, origin, f"{type(exc).__name__}: {exc}")
        return
    if not isinstance(plugin, plugin_class):
        _keep_broken(
            found, origin, f"{origin.value} is a {type(plugin).__name__}, not a {plugin_class.__name__}"
        )
        return
    if plugin.api_version != API_VERSION:
        _keep_broken(
            found,
            origin,
            f"written for API version {plugin.api_version!r}; this Roster speaks version {API_VERSION}",
        )
        return
    found.loaded[origin.name] = Loaded(origin, plugin)


def _keep_broken(found: PluginSet[P], origin: Origin, error: str) -> None:
    log.warning(
        "event=plugin_broken group=%s name=%s distribution=%s error=%s",
        found.group,
        origin.name,
        origin.distribution,
        error,
    )
    found.broken.append(Broken(origin, error))


def _origin(point: EntryPoint) -> Origin:
    dist = point.dist
    return Origin(
        name=point.name,
        value=point.value,
        distribution=dist.name if dist is not None else "?",
        version=dist.version if dist is not None else "?",
    )
