"""`roster connector-check FILE TARGET --yes`: the conformance kit (roster.testing) run against one
target of a workers file, with the connector's own listing as the probe.

It writes to the live target: every object it makes has a matching value that starts with
`roster-ck-<random hex>-`, and it deletes them all at the end. It asks first, or refuses without
`--yes` when nobody can be asked. The checks that need what a listing cannot do (create or change an
object outside the connector), or a refused value only the target's owner knows, are reported as not
run, with the reason; docs/conformance.md says how to run them all with a probe of one's own.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table

from common.config.validation import as_list, as_mapping
from common.config.yamlfile import load_yaml
from common.errors import ConfigError
from common.process.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from roster.testing.conformance import KitTarget, Report
    from roster.testing.profile import Profile
    from workers.config import TargetConfig

HELP = (
    "run the connector conformance kit against TARGET of FILE: it WRITES to the live target (objects "
    "whose matching value starts with roster-ck-<hex>-, all deleted at the end); needs --yes or a yes"
)
_STYLE = {"passed": "green", "failed": "bold red", "not run": "yellow"}


def add_connector_check_command(commands: Any) -> None:
    """Add `connector-check` to `roster`'s subparsers."""
    check = commands.add_parser("connector-check", help=HELP, description=HELP + ".")
    check.add_argument("file", type=Path, help="a YAML file with targets:")
    check.add_argument("target", help="the name of the target to check")
    check.add_argument("--yes", action="store_true", help="write to the target without asking")
    check.add_argument(
        "--check",
        action="append",
        metavar="NAME",
        help="run only this check (repeatable), e.g. user/crud:create",
    )
    check.add_argument(
        "--profile",
        metavar="MODULE:NAME",
        help="a roster.testing.Profile (or a function of the target giving one) instead of the built-in one",
    )
    check.set_defaults(func=connector_check_command)


def connector_check_command(args: argparse.Namespace, console: Console) -> int:
    from roster.testing.builtin import builtin_profile
    from roster.testing.conformance import kit_target

    raw = _target_yaml(args.file, args.target)
    kit = kit_target(raw, args.file.absolute().parent)
    profile = _load_profile(args.profile, kit.config) if args.profile else builtin_profile(kit.config)
    if profile is None:
        raise ConfigError(
            "--profile",
            f"is required for a target of type {kit.config.type!r}, which has no built-in profile",
            "name a roster.testing.Profile as MODULE:NAME (a noop target keeps nothing and needs no check)",
        )
    console.print(
        f"This writes to target {escape(args.target)!r} ({kit.config.type}): objects whose matching value "
        "starts with roster-ck-<hex>-, deleted at the end.",
        highlight=False,
        soft_wrap=True,
    )
    if not args.yes:
        if not sys.stdin.isatty():
            console.print("[bold red]refused[/] it writes to a live target: run it again with --yes")
            return EXIT_CONFIG
        if not Confirm.ask("Go ahead?", console=console, default=False):
            return EXIT_CONFIG
    report, unprobed = asyncio.run(_run(kit, profile, args.check))
    _print(console, report, unprobed)
    return EXIT_OK if report.ok else EXIT_FAILED


async def _run(kit: KitTarget, profile: Profile, checks: list[str] | None) -> tuple[Report, str | None]:
    from roster.testing.conformance import check_names, run_conformance
    from roster.testing.probe import ListingProbe
    from workers.connectors.base import Lister

    lister = kit.config.runtime().connector
    target = kit.raw if kit.raw is not None else kit.config
    names = checks or check_names(profile.object_types)
    if not isinstance(lister, Lister):
        # Without a listing there is nothing to read the target with: only the checks that read nothing.
        transient = [n for n in names if n.startswith("error:transient")]
        report = await run_conformance(target, _Blind(), profile, checks=transient, base_dir=kit.base_dir)
        skipped = [n for n in names if n not in transient]
        return report, f"{len(skipped)} check(s) need a probe: connector {kit.config.type!r} cannot list"
    attributes = {
        kind: [*sample.attributes, *sample.changes, *(sample.disabled or {})]
        for kind, sample in profile.samples.items()
    }
    await lister.open()
    try:
        probe = ListingProbe(lister, attributes)
        report = await run_conformance(target, probe, profile, checks=names, base_dir=kit.base_dir)
    finally:
        await lister.aclose()
    return report, None


class _Blind:
    """A probe for a connector that cannot list: it is never asked (only the transient checks run)."""

    async def read(self, object_type: str, target_id: str) -> None:
        return None

    async def find(self, object_type: str, attribute: str, value: Any) -> list[str]:
        return []


def _target_yaml(file: Path, name: str) -> dict[str, Any]:
    raw = as_mapping(str(file), load_yaml(file))
    targets = as_list("targets", raw.get("targets") or [])
    for target in targets:
        if isinstance(target, dict) and target.get("name") == name:
            return target
    names = ", ".join(str(t.get("name")) for t in targets if isinstance(t, dict)) or "none"
    raise ConfigError(str(file), f"has no target named {name!r}", f"its targets: {names}")


def _load_profile(spec: str, target: TargetConfig) -> Profile:
    from roster.testing.profile import Profile

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError("--profile", f"must be MODULE:NAME, got {spec!r}")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("--profile", f"cannot load {spec!r}: {exc}") from None
    profile = found if isinstance(found, Profile) else found(target) if callable(found) else None
    if not isinstance(profile, Profile):
        raise ConfigError("--profile", f"{spec!r} is not a roster.testing.Profile nor a function giving one")
    return profile


def _print(console: Console, report: Report, unprobed: str | None) -> None:
    table = Table("check", "result", "what it saw", title=f"Conformance of target {report.target!r}")
    for result in report.results:
        style = _STYLE[result.status]
        table.add_row(escape(result.name), f"[{style}]{result.status}[/]", escape(result.detail))
    console.print(table)
    if unprobed:
        console.print(f"[yellow]not run[/] {escape(unprobed)}", highlight=False, soft_wrap=True)
    for left in report.leftovers:
        console.print(f"[bold red]left in the target[/] {escape(left)}", highlight=False, soft_wrap=True)
    console.print(
        f"{len(report.passed)} passed, {len(report.failed)} failed, {len(report.not_run)} not run; "
        f"objects made under prefix {report.prefix} were deleted"
        + (f" except {len(report.leftovers)}" if report.leftovers else ""),
        highlight=False,
        soft_wrap=True,
    )
