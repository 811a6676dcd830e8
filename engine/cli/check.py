"""`roster engine --check FILE`: whether this engine could work from where it runs, changing nothing
that lasts: the broker (reach, TLS with its CA, login, vhost, permissions to declare, consume and
publish: `queues.connect.check_broker`), the state store (`engine/store/check.py`) and each job's
source (its source type's `check`), all at once. One line per check, `ok` or `FAILED` with what is
wrong and the fix; none holds a secret.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Final

from rich.console import Console
from rich.markup import escape

from common.config.validation import join
from common.errors import ConfigError, RosterError
from common.process.checks import Check, checks_of, report_checks
from engine.config import JobConfig
from engine.store.check import check_state
from queues.connect import check_broker
from queues.topology import RESULTS_QUEUE, ops_queue

SOURCE_CHECK_TIMEOUT_S: Final = 60.0


def check_command(
    args: argparse.Namespace, console: Console, *, url: str, state: str, jobs: Sequence[JobConfig]
) -> int:
    """Run the checks, say one line each and a total; 0 when all passed, else 1."""
    checks = asyncio.run(check_engine(url, ca_file=args.broker_ca_file, state=state, jobs=jobs))
    return report_checks(checks, lambda line: console.print(escape(line), highlight=False, soft_wrap=True))


async def check_engine(
    url: str, *, ca_file: str | None, state: str, jobs: Sequence[JobConfig]
) -> list[Check]:
    """The broker's checks, the state store's, then each job's source, in the file's order."""
    targets = sorted({job.target for job in jobs})
    publishes_to = [ops_queue(target) for target in targets]
    broker = asyncio.create_task(
        check_broker(url, ca_file=ca_file, publishes_to=publishes_to, consumes=[RESULTS_QUEUE])
    )
    store = asyncio.create_task(check_state(state))
    sources = await asyncio.gather(*(check_source(job) for job in jobs))
    checks = [Check(what, problem) for what, problem in await broker]
    checks.append(Check(*await store))
    for found in sources:
        checks += found
    return checks


async def check_source(job: JobConfig) -> list[Check]:
    """The checks of one job's source by its source type's plugin."""
    what = f"job {job.name!r}: source ({job.source.type})"
    check = job.source.plugin.check
    if check is None:
        return [Check(f"{what}: nothing to reach (its type has no live check)")]
    path = join(job.path, "source")
    try:
        async with asyncio.timeout(SOURCE_CHECK_TIMEOUT_S):
            problems = await check(path, job.source.settings)
    except TimeoutError:
        problems = [ConfigError(path, f"no answer within {SOURCE_CHECK_TIMEOUT_S:g} s", "is it reachable?")]
    except RosterError as exc:
        problems = [ConfigError(path, str(exc))]
    return checks_of(what, problems, ok="reached, credentials accepted, read works")
