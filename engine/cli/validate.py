"""`roster validate FILE [--connect]`: every problem of a jobs/targets file, each on its own line with
its path and the fix, then a line of totals that says what was checked.

Without `--connect` it reads the file and the local files its sources name (their header, or the keys of
their first rows), checks each target's settings against what its jobs send, and contacts nothing. With
it, it also connects to each job's source and each target, reading at most one resource, the existence
of an entry or a table, or a schema, and writing nothing. It exits 0 only when nothing
is wrong, else 2, as a config error does.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from common.config.problems import Parts, collecting
from common.config.yamlfile import load_yaml
from common.errors import ConfigError
from common.process.cli import EXIT_CONFIG
from engine.cli.embedded import check_job_targets
from engine.config import EngineConfig, JobConfig, parse_engine_config
from engine.sources.file import FileSourceSettings
from engine.validation.file_sources import check_file_source
from engine.validation.listed_attributes import check_listed_attributes
from engine.validation.source_peers import probe_source
from engine.validation.uses import mapping_path
from workers.config import TargetConfig, parse_targets
from workers.probe import TargetUse, probe_target, target_problems


def validate_command(args: argparse.Namespace, console: Console) -> int:
    """Check whichever sections the file has: jobs (the engine's), targets (the workers'), or both."""
    with collecting() as unread:  # every variable that is not set; YAML that cannot be read is one error
        raw = Parts()(lambda: load_yaml(args.file))
    if raw is None:
        _print(console, unread)
        console.print(
            f"{len(unread)} problem(s) in {escape(str(args.file))}: fix these, then validate it again "
            "to check the rest",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_CONFIG
    if "jobs" not in raw and "targets" not in raw:
        raise ConfigError(
            str(args.file), "has neither `jobs:` nor `targets:`", "see examples/quickstart.yaml"
        )
    config, targets, problems = _read(raw, base_dir=args.file.absolute().parent)
    jobs = config.jobs if config is not None else ()
    for job in jobs:
        problems += check_file_source(job) + check_listed_attributes(job)
    uses = _target_uses(jobs)
    for target in targets:
        problems += target_problems(target, uses.get(target.name, TargetUse()))
    if args.connect:
        problems += asyncio.run(_connect(jobs, targets, uses))
    problems = _print(console, problems)
    console.print(_totals(args, jobs, targets, problems), highlight=False, soft_wrap=True)
    return EXIT_CONFIG if problems else 0


def _print(console: Console, problems: Sequence[ConfigError]) -> list[ConfigError]:
    """Each problem on its own line, once (a top-level key is checked by both sides), in the order of
    the file's paths; the problems printed."""
    unique = sorted({str(p): p for p in problems}.values(), key=lambda p: _in_order(p.path))
    for problem in unique:
        console.print(f"[bold red]error[/] {escape(str(problem))}", highlight=False, soft_wrap=True)
    return unique


def _read(
    raw: Mapping[str, Any], *, base_dir: Path
) -> tuple[EngineConfig | None, tuple[TargetConfig, ...], list[ConfigError]]:
    """The jobs and targets that could be read, and the problems of the others (all of them)."""
    with collecting() as problems:
        read = Parts()
        config = read(lambda: parse_engine_config(raw, base_dir=base_dir)) if "jobs" in raw else None
        targets = read(lambda: parse_targets(raw, base_dir=base_dir)) if "targets" in raw else ()
        if config is not None and "targets" in raw:
            read(lambda: check_job_targets(config, _names(raw["targets"])))
    return config, targets or (), problems


def _in_order(path: str) -> list[tuple[int, str]]:
    """`jobs[10].x` after `jobs[9].x`: the numbers in a path compare as numbers."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", path)]


def _names(items: Any) -> set[str]:
    """The names the `targets:` list gives, read or not: a job naming an unreadable one is not wrong."""
    if not isinstance(items, list):
        return set()
    return {item["name"] for item in items if isinstance(item, Mapping) and isinstance(item.get("name"), str)}


async def _connect(
    jobs: Sequence[JobConfig], targets: Sequence[TargetConfig], uses: Mapping[str, TargetUse]
) -> list[ConfigError]:
    """The problems found on each source and target peer, all probed at once."""
    found = await asyncio.gather(
        *(probe_source(job) for job in jobs),
        *(probe_target(target, uses.get(target.name, TargetUse())) for target in targets),
    )
    return [problem for problems in found for problem in problems]


def _target_uses(jobs: Sequence[JobConfig]) -> dict[str, TargetUse]:
    """What the jobs of each target send it: per object type, the attributes (with the mapping that
    sends each), and the match attributes."""
    sent: dict[str, dict[str, dict[str, str]]] = {}
    matched: dict[str, set[str]] = {}
    for job in jobs:
        attributes = sent.setdefault(job.target, {}).setdefault(job.object_type, {})
        for i, mapping in enumerate(job.mappings):
            attributes.setdefault(mapping.target, f"{mapping_path(job, i)}.target")
        matched.setdefault(job.target, set()).update(job.matching[:1])
    return {name: TargetUse(sent=kinds, matched=matched[name]) for name, kinds in sent.items()}


def _totals(
    args: argparse.Namespace,
    jobs: Sequence[JobConfig],
    targets: Sequence[TargetConfig],
    problems: Sequence[ConfigError],
) -> str:
    """What was read, what was checked, and what was not."""
    read = []
    if jobs:
        read.append(f"{len(jobs)} job(s) ({', '.join(j.name for j in jobs)})")
    if targets:
        read.append(f"{len(targets)} target(s) ({', '.join(t.name for t in targets)})")
    files = sum(isinstance(job.source.settings, FileSourceSettings) for job in jobs)
    peers = _count(len(jobs) - files, "source") + _count(sum(t.type != "noop" for t in targets), "target")
    checked = "file checked" + (f", with {_count(files, 'source file')[0]}" if files else "")
    if peers and args.connect:
        checked += f"; contacted: {' and '.join(peers)}"
    elif peers:
        checked += f"; not contacted: {' and '.join(peers)} (run with --connect to check them)"
    head = f"{len(problems)} problem(s) in" if problems else "[green]ok[/]"
    return f"{head} {escape(str(args.file))}: {escape(', '.join(read) or 'nothing read')}; {checked}"


def _count(n: int, what: str) -> list[str]:
    """`["2 sources"]`, `["1 target"]`; nothing for none."""
    return [f"{n} {what}{'s' if n != 1 else ''}"] if n else []
