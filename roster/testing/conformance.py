"""The conformance kit's entry points: the catalogue of checks (`check_names`), `run_check` (one check
against a freshly opened connector, for the pytest plugin) and `run_conformance` (every check, for the
command line), each answering with `CheckResult`s gathered in a `Report`.

A check is named `<object type>/<tag>` (`user/crud:create`) or, for the target as a whole, by its tag
alone (`error:transient-stalled`), so an author sees at once which capability fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from common.errors import ConnectorError, PermanentError, TransientError
from roster.testing import checks
from roster.testing.deadpeers import point_url_at, refused_port, stalled_listener
from roster.testing.probe import Probe
from roster.testing.profile import Profile
from roster.testing.session import Failed, NotRun, Session, describe, new_prefix
from workers.config import TargetConfig, parse_target
from workers.connectors.base import Connector

Status = Literal["passed", "failed", "not run"]
TypeCheck = Callable[[Session, str], Awaitable[str]]

TYPE_CHECKS: Final[dict[str, TypeCheck]] = {
    "crud:create": checks.create,
    "crud:create-again": checks.create_again,
    "match:planted": checks.match_planted,
    "crud:update": checks.update,
    "crud:update-unmapped": checks.update_unmapped,
    "crud:disable": checks.disable,
    "crud:create-disabled": checks.create_disabled,
    "crud:update-disabled": checks.update_disabled,
    "crud:delete": checks.delete,
    "crud:delete-gone": checks.delete_gone,
    "batch:redelivery": checks.redelivery,
    "batch:isolation": checks.isolation,
    "values:hostile": checks.hostile,
}
"""Checks run once per object type of the profile."""

TARGET_CHECKS: Final = (
    "error:permanent",
    "error:transient-refused",
    "error:transient-stalled",
    "groups:members",
)
"""Checks run once per target."""

_CLOSE_S: Final = 10.0
log = logging.getLogger("roster.testing")


def check_names(object_types: Sequence[str] = ("user", "group")) -> list[str]:
    """Every check's name, in the order they run."""
    return [f"{kind}/{tag}" for kind in object_types for tag in TYPE_CHECKS] + list(TARGET_CHECKS)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Every check's result, and the kit's objects that its clean-up could not delete."""

    target: str
    prefix: str
    results: tuple[CheckResult, ...]
    leftovers: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed and not self.leftovers

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def passed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "passed"]

    @property
    def not_run(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "not run"]


@dataclass(frozen=True, slots=True)
class KitTarget:
    """The target under test: its parsed config, and its YAML when given (to point it elsewhere)."""

    config: TargetConfig
    raw: Mapping[str, Any] | None = None
    base_dir: Path = field(default_factory=Path.cwd)


def kit_target(target: Mapping[str, Any] | str | TargetConfig, base_dir: Path | None = None) -> KitTarget:
    """`target` as the kit takes it: one target's YAML (text or mapping), or a parsed `TargetConfig`."""
    base = base_dir or Path.cwd()
    if isinstance(target, TargetConfig):
        return KitTarget(target, None, base)
    raw = yaml.safe_load(target) if isinstance(target, str) else target
    if not isinstance(raw, Mapping):
        raise TypeError("the target must be one target's YAML: a mapping with name, type and its settings")
    return KitTarget(parse_target("target", raw, base), dict(raw), base)


async def run_check(
    name: str,
    target: Mapping[str, Any] | str | TargetConfig,
    probe: Probe,
    profile: Profile,
    *,
    base_dir: Path | None = None,
) -> CheckResult:
    """Run one check against a connector opened for it, and delete what it made."""
    report = await run_conformance(target, probe, profile, checks=[name], base_dir=base_dir)
    (result,) = report.results
    if report.leftovers and result.status != "failed":
        return CheckResult(name, "failed", "the kit could not delete: " + ", ".join(report.leftovers))
    return result


async def run_conformance(
    target: Mapping[str, Any] | str | TargetConfig,
    probe: Probe,
    profile: Profile,
    *,
    checks: Sequence[str] | None = None,
    base_dir: Path | None = None,
    prefix: str | None = None,
) -> Report:
    """Run `checks` (default: every one for the profile's object types) against the target through one
    connector, then delete every object the kit made. Objects' matching values start with `prefix`
    (default: `roster-ck-<random hex>-`)."""
    kit = kit_target(target, base_dir)
    names = list(checks) if checks is not None else check_names(profile.object_types)
    for name in names:
        if name not in TARGET_CHECKS and name.partition("/")[2] not in TYPE_CHECKS:
            raise ValueError(f"no conformance check is named {name!r}; they are: {', '.join(check_names())}")
    connector = kit.config.runtime().connector
    session = Session(connector, probe, profile, prefix=prefix or new_prefix(), target=kit.config.name)
    results: list[CheckResult] = []
    open_error = await _open(connector, profile.patience_s)
    try:
        for name in names:
            if open_error is not None and not name.startswith("error:transient"):
                results.append(
                    CheckResult(name, "failed", f"the connector could not be opened: {open_error}")
                )
                continue
            results.append(await _run(name, kit, session))
    finally:
        leftovers = await session.clean_up() if open_error is None else []
        await _close(connector)
    return Report(
        target=kit.config.name, prefix=session.prefix, results=tuple(results), leftovers=tuple(leftovers)
    )


async def _run(name: str, kit: KitTarget, session: Session) -> CheckResult:
    try:
        if name == "error:transient-refused":
            detail = await _transient(kit, session, refused_port, "a port where nothing listens")
        elif name == "error:transient-stalled":
            detail = await _transient(kit, session, stalled_listener, "a listener that never answers")
        elif name == "error:permanent":
            refusal = session.profile.refusal
            detail = await checks.permanent(session, refusal.object_type if refusal else "user")
        elif name == "groups:members":
            detail = await checks.members(session, "group")
        else:
            kind, _, tag = name.partition("/")
            if kind not in session.profile.samples:
                raise NotRun(f"the profile has no {kind} sample")
            detail = await TYPE_CHECKS[tag](session, kind)
    except NotRun as reason:
        return CheckResult(name, "not run", str(reason))
    except Failed as failure:
        return CheckResult(name, "failed", str(failure))
    except ConnectorError as error:
        return CheckResult(
            name, "failed", f"apply() raised {describe(error)} instead of an outcome per operation"
        )
    except TimeoutError:
        return CheckResult(name, "failed", f"the probe did not answer within {session.patience}")
    except Exception as exc:  # a crash is this check's failure, never the end of the run
        return CheckResult(name, "failed", f"unexpected {type(exc).__name__}: {exc}")
    return CheckResult(name, "passed", detail)


async def _transient(
    kit: KitTarget, session: Session, dead: Callable[[], AbstractAsyncContextManager[int]], what: str
) -> str:
    """The connector pointed at a target that does not answer gives a `TransientError` (a retry), never a
    `PermanentError`, and within the profile's patience."""
    if kit.raw is None:
        raise NotRun(
            "the kit was given a parsed TargetConfig: give it the target's YAML to point it elsewhere"
        )
    point = session.profile.point_at or point_url_at
    kind = session.profile.object_types[0]
    patience = session.profile.patience_s
    async with dead() as port:
        raw = point(kit.raw, "127.0.0.1", port)
        if raw is None:
            raise NotRun(
                "the target has no network address to point at a dead one (e.g. a SQLite file); "
                "give the profile a `point_at`"
            )
        connector = parse_target("target", raw, kit.base_dir).runtime().connector
        obj = session.new_object(kind)
        op = session.op("create", obj)
        try:
            async with asyncio.timeout(patience) as deadline:
                await connector.open()
                (outcome,) = await connector.apply([op])
        except TransientError as error:
            outcome = error
        except PermanentError as error:
            outcome = error
        except TimeoutError:
            if not deadline.expired():
                raise Failed("the connector raised a bare TimeoutError: raise TransientError") from None
            raise Failed(
                f"pointed at {what}, the connector gave no outcome within {session.patience}: it would hold "
                "its worker's slot; give its calls a timeout"
            ) from None
        except Exception as exc:
            raise Failed(
                f"pointed at {what}, the connector raised {type(exc).__name__}: {exc}; raise TransientError"
            ) from None
        finally:
            await _close(connector)
    if not isinstance(outcome, TransientError):
        shown = describe(outcome) if isinstance(outcome, ConnectorError) else repr(outcome)
        raise Failed(
            f"pointed at {what}, the outcome is {shown}, not a TransientError: it would never be retried"
        )
    return f"pointed at {what}: {describe(outcome)}"


async def _open(connector: Connector, patience_s: float) -> str | None:
    try:
        await asyncio.wait_for(connector.open(), patience_s)
    except TimeoutError:
        return f"open() did not return within {patience_s:g} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def _close(connector: Connector) -> None:
    """Close within a bound: a connector stuck on a dead peer must not stall the run."""
    try:
        await asyncio.wait_for(connector.aclose(), _CLOSE_S)
    except (TimeoutError, ConnectorError, OSError) as exc:
        # The check that used it has its verdict already; a close that fails changes none.
        log.warning("event=conformance_close_failed connector=%r error=%s", connector, type(exc).__name__)
