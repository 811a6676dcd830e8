"""A job's `reconcile:` settings: what to do per situation, when to run, what not to compare.

The defaults make the target right where that is safe and only report where it is not: drift is
corrected, a missing object recreated, and an orphan (an object in the target that no source object
accounts for) reported, never disabled or deleted unless the job says so. An unlinked object (in the
target, matching a source object, with no link) is always linked: the next cycle's create finds it by
its matching attributes, as a first cycle does, so there is nothing to choose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from common.config.validation import as_list, as_mapping, check_keys, choice, join, positive, string
from common.errors import ConfigError
from engine.core.schedule import Schedule, parse_schedule

DriftedPolicy = Literal["correct", "report"]
MissingPolicy = Literal["recreate", "report"]
OrphanPolicy = Literal["report", "disable", "delete"]

KEYS: Final = ("drifted", "missing", "orphan", "schedule", "ignore", "timeout_s")

NEVER_READ: Final = frozenset({"password"})
"""Attributes a target takes but never returns (SCIM's `password` is `returned: never`, RFC 7643
§4.1.1): never compared, whatever the job says."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileSettings:
    drifted: DriftedPolicy = "correct"
    missing: MissingPolicy = "recreate"
    orphan: OrphanPolicy = "report"
    schedule: Schedule | None = None
    """When to reconcile on its own (with `--serve` or the engine); None: only when asked."""
    ignore: frozenset[str] = frozenset()
    """Attributes not compared: those the target rewrites or does not return as written."""
    timeout_s: float = 600.0
    """How long a reconciliation waits for the target's listing."""

    def compared(self, attributes: list[str]) -> list[str]:
        """The attributes of `attributes` that reconciliation compares."""
        skipped = {name.lower() for name in self.ignore} | NEVER_READ
        return [name for name in attributes if name.lower() not in skipped]


def parse_reconcile(path: str, raw: Any) -> ReconcileSettings:
    """`reconcile: {drifted: correct, missing: recreate, orphan: report, schedule:
    {interval: 1d}, ignore: [...], timeout_s: 600}`, each optional."""
    if raw is None or raw is True:
        return ReconcileSettings()
    raw = as_mapping(path, raw)
    check_keys(path, raw, KEYS)
    return ReconcileSettings(
        drifted=choice(join(path, "drifted"), raw.get("drifted", "correct"), ("correct", "report")),  # type: ignore[arg-type]
        missing=choice(join(path, "missing"), raw.get("missing", "recreate"), ("recreate", "report")),  # type: ignore[arg-type]
        orphan=choice(join(path, "orphan"), raw.get("orphan", "report"), ("report", "disable", "delete")),  # type: ignore[arg-type]
        schedule=parse_schedule(join(path, "schedule"), raw.get("schedule")),
        ignore=_names(join(path, "ignore"), raw.get("ignore") or []),
        timeout_s=_timeout(join(path, "timeout_s"), raw.get("timeout_s", 600)),
    )


def _names(path: str, raw: Any) -> frozenset[str]:
    return frozenset(string(join(path, i), name) for i, name in enumerate(as_list(path, raw)))


def _timeout(path: str, raw: Any) -> float:
    value = positive(path, raw)
    if not value <= 86_400:
        raise ConfigError(
            path, f"{raw!r} is out of range", "give the seconds to wait for a listing, at most a day"
        )
    return value
