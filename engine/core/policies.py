"""Policies that keep a failing or shrinking cycle from damaging many accounts.

**The accidental-deletion guard**: a cycle that would deprovision too much asks first. A source file cut
in half looks exactly like half the company leaving. When a cycle would disable or delete more objects
than the job's threshold (a count, or a share of the objects the job holds), those operations are staged
instead of published, the job waits for approval, and everything else in the cycle proceeds. `roster
approve JOB` runs them; `roster reject JOB` drops them.

**The mass-change guard**: a cycle that would change one attribute on too many objects asks first. A
mapping typo (`source: titel`) blanks `title` on every account at once, and nothing else looks wrong.
When a cycle's updates would change an attribute on more objects than the job's threshold (a count and
a share of the objects the job holds, both), or empty one that was set on that many, the updates that
change it are staged like deprovisions, with the reason in words (`title would be emptied on 4,844 of
5,000 accounts (97%)`); `roster approve` sends them, `roster reject` drops them. How a cycle counts
before it publishes is in `engine.core.masschange`.

**Holding on a bad read**: deprovisions wait for approval too, whatever their number, when the read they
rest on cannot be trusted: it was incomplete (a row could not be read, so whoever it held looks gone),
or the source shrank suddenly (`SourceShrink`: fewer objects than `source_min_objects`, or more than
`source_max_drop_percent` fewer than the last complete read), as an export cut off at a line boundary does.

**Quarantine**: a job whose target keeps failing stops sending it work, and says why. Two signs, read
from the final results as they arrive: the target rejected the credentials (every one of the last
`credential_calls` results failed with 401 or 403), or the share of failures among the last `window`
results reached `failure_share` once at least `min_operations` were tried. Either trips within one
window of results, minutes at most, not after thousands of failures. The cycle runner then stops
publishing that job's work, and the scheduler runs its cycles at a backed-off interval until one ends
without tripping it again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from common.config.validation import as_mapping, check_keys, integer, join, number
from common.errors import ConfigError
from queues.contracts import Result


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletionGuard:
    """Trips when deprovisions exceed `count`, or exceed `percent` of the objects the job holds."""

    count: int = 500
    percent: float = 20.0
    enabled: bool = True

    def trips(self, deprovisions: int, held: int) -> bool:
        if not self.enabled or deprovisions == 0:
            return False
        return deprovisions > self.count or deprovisions * 100.0 > self.percent * max(held, 1)

    def describe(self, deprovisions: int, held: int) -> str:
        share = deprovisions * 100.0 / max(held, 1)
        return (
            f"{deprovisions} of {held} objects would be disabled or deleted ({share:.0f}%), above the "
            f"threshold of {self.count} or {self.percent:g}%"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MassChangeGuard:
    """Trips when the updates of a cycle change one attribute on more than `count` objects and on more
    than `percent` of the objects the job holds."""

    count: int = 500
    percent: float = 20.0
    enabled: bool = True

    def trips(self, changed: int, held: int) -> bool:
        if not self.enabled:
            return False
        return changed > self.count and changed * 100.0 > self.percent * held

    def describe(self, attribute: str, changed: int, emptied: int, held: int, noun: str) -> str:
        """Why the updates that change `attribute` (`emptied` of them empty it) are held, in words."""
        what, many = ("emptied", emptied) if self.trips(emptied, held) else ("changed", changed)
        share = many * 100.0 / max(held, 1)
        return (
            f"{attribute} would be {what} on {many:,} of {held:,} {noun} ({share:.0f}%), above the "
            f"threshold of {self.count:,} and {self.percent:g}%"
        )


def parse_deletion_guard(path: str, raw: Any) -> DeletionGuard:
    """`deletion_guard: {count: 500, percent: 20}` (the defaults), or `false` to switch it off."""
    return _parse_guard(path, raw, DeletionGuard)


def parse_mass_change_guard(path: str, raw: Any) -> MassChangeGuard:
    """`mass_change_guard: {count: 500, percent: 20}` (the defaults), or `false` to switch it off."""
    return _parse_guard(path, raw, MassChangeGuard)


_Guard = TypeVar("_Guard", DeletionGuard, MassChangeGuard)


def _parse_guard(path: str, raw: Any, kind: type[_Guard]) -> _Guard:
    if raw is False:
        return kind(enabled=False)
    if raw is None or raw is True:
        return kind()
    raw = as_mapping(path, raw)
    check_keys(path, raw, ("count", "percent"))
    percent = number(join(path, "percent"), raw.get("percent", 20.0), minimum=0)
    if percent > 100:
        raise ConfigError(join(path, "percent"), f"is {percent:g}, above 100", "give a share such as 20")
    return kind(count=integer(join(path, "count"), raw.get("count", 500), minimum=0), percent=percent)


DEFAULT_MAX_DROP_PERCENT = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceShrink:
    """Trips when a complete read has fewer than `min_objects` objects, or more than `max_drop_percent`
    fewer than the last complete read (100 switches that comparison off)."""

    min_objects: int = 0
    max_drop_percent: float = DEFAULT_MAX_DROP_PERCENT

    def describe(self, read: int, last: int | None) -> str | None:
        """Why a read of `read` objects looks cut short, after one of `last` (None: none yet), if it does."""
        if read < self.min_objects:
            return f"the source has {read:,} objects, fewer than source_min_objects ({self.min_objects:,})"
        if last and (last - read) * 100.0 > self.max_drop_percent * last:
            drop = (last - read) * 100.0 / last
            return (
                f"the source has {read:,} objects, {drop:.0f}% fewer than the {last:,} of its last "
                f"complete read (source_max_drop_percent: {self.max_drop_percent:g})"
            )
        return None


SHRINK_KEYS = ("source_min_objects", "source_max_drop_percent")


def parse_source_shrink(path: str, job: Mapping[str, Any]) -> SourceShrink:
    """A job's `source_min_objects: 0` and `source_max_drop_percent: 10` (the defaults), at `path`."""
    min_path, drop_path = join(path, "source_min_objects"), join(path, "source_max_drop_percent")
    try:
        min_objects = integer(min_path, job.get("source_min_objects", 0), minimum=0)
    except ConfigError as exc:
        fix = "give the fewest objects a complete read of the source may have, such as 900 (0: no floor)"
        raise ConfigError(exc.path, exc.problem, fix) from None
    fix = (
        "give a share such as 10: a source that many percent smaller than its last complete read holds "
        "deprovisions for approval (100 switches the check off)"
    )
    try:
        drop = number(drop_path, job.get("source_max_drop_percent", DEFAULT_MAX_DROP_PERCENT), minimum=0)
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.problem, fix) from None
    if not math.isfinite(drop) or drop > 100:
        raise ConfigError(drop_path, f"is {drop:g}, above 100", fix)
    return SourceShrink(min_objects=min_objects, max_drop_percent=drop)


CREDENTIAL_CODES = frozenset({"401", "403"})
CREDENTIALS_REJECTED = "credentials rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineSettings:
    failure_share: float = 0.4
    min_operations: int = 50
    window: int = 200
    credential_calls: int = 10
    max_backoff_s: float = 6 * 3600.0


def parse_quarantine(path: str, raw: Any) -> QuarantineSettings:
    raw = as_mapping(path, raw or {})
    keys = ("failure_share", "min_operations", "window", "credential_calls", "max_backoff_s")
    check_keys(path, raw, keys)
    defaults = QuarantineSettings()
    share = number(
        join(path, "failure_share"), raw.get("failure_share", defaults.failure_share), minimum=0.01
    )
    if share > 1:
        raise ConfigError(
            join(path, "failure_share"), f"is {share}, above 1", "give a share such as 0.4 (40%)"
        )
    return QuarantineSettings(
        failure_share=share,
        min_operations=integer(join(path, "min_operations"), raw.get("min_operations", 50), minimum=1),
        window=integer(join(path, "window"), raw.get("window", defaults.window), minimum=1),
        credential_calls=integer(join(path, "credential_calls"), raw.get("credential_calls", 10), minimum=1),
        max_backoff_s=number(join(path, "max_backoff_s"), raw.get("max_backoff_s", 6 * 3600.0), minimum=1),
    )


class FailureWindow:
    """The last results of one job; `verdict()` is the quarantine reason they give, if any."""

    __slots__ = ("_failed", "_recent", "_rejected_run", "reason", "settings")

    def __init__(self, settings: QuarantineSettings) -> None:
        self.settings = settings
        self._recent: deque[bool] = deque(maxlen=max(settings.window, settings.min_operations))
        self._failed = 0
        self._rejected_run = 0
        self.reason: str | None = None
        """The quarantine reason the results so far give (kept current by `add`), if any."""

    def add(self, results: Iterable[Result]) -> None:
        recent = self._recent
        for result in results:
            if not result.final:
                continue
            failed = result.status == "failed"
            if len(recent) == recent.maxlen and recent[0]:
                self._failed -= 1
            recent.append(failed)
            self._failed += failed
            rejected = failed and result.error_code in CREDENTIAL_CODES
            self._rejected_run = self._rejected_run + 1 if rejected else 0
        self.reason = self._verdict()

    def clear(self) -> None:
        self._recent.clear()
        self._failed = 0
        self._rejected_run = 0
        self.reason = None

    def _verdict(self) -> str | None:
        settings = self.settings
        if self._rejected_run >= settings.credential_calls:
            run = self._rejected_run
            return f"{CREDENTIALS_REJECTED}: the last {run} operations got 401/403 from the target"
        tried = len(self._recent)
        if tried >= settings.min_operations and self._failed > settings.failure_share * tried:
            return (
                f"{self._failed} of the last {tried} operations failed "
                f"(threshold {settings.failure_share:.0%} of at least {settings.min_operations})"
            )
        return None


def backoff_s(normal_s: float, quarantined_cycles: int, settings: QuarantineSettings) -> float:
    """How long a quarantined job waits before its next cycle: its usual delay (at least a minute),
    doubled for each cycle in quarantine so far, capped."""
    return min(max(normal_s, 60.0) * 2.0 ** max(quarantined_cycles, 0), settings.max_backoff_s)
