"""`roster_build_info`: which version of Roster a process runs, on which Python, in which role.

A dashboard counts processes by role with it, and spots a fleet running mixed versions during a
rollout.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Gauge


def version_text(wire_version: int) -> str:
    """What `roster --version` and `roster worker --version` say: the installed package's version, and
    the version of the messages between engine and workers (`queues.contracts.VERSION`), which an engine
    and its workers must share."""
    return f"roster {roster_version()} (wire version {wire_version})"


def roster_version() -> str:
    try:
        return version("roster")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


_GAUGES: WeakKeyDictionary[CollectorRegistry, Gauge] = WeakKeyDictionary()


def register_build_info(registry: CollectorRegistry, role: str) -> None:
    """A gauge at 1 whose labels carry the version, the Python version and the role; a process with
    two roles on one registry (`roster run --serve`: engine and worker) has a series for each."""
    info = _GAUGES.get(registry)
    if info is None:
        info = _GAUGES[registry] = Gauge(
            "roster_build_info",
            "Always 1; the labels say which Roster version runs, on which Python, in which role.",
            ["version", "python", "role"],
            registry=registry,
        )
    info.labels(roster_version(), platform.python_version(), role).set(1)
