"""`roster worker --check FILE`: whether this worker could work from where it runs, found without
writing to any target and without changing anything that lasts on the broker.

The broker: reach, TLS with its CA, the login, the vhost, and the permissions to declare, consume and
publish (`queues.connect.check_broker`). Each target, all at once: its connector type's `check`
(reach, TLS, credentials accepted, the base DN / table / endpoint there, a read that works). One line
per check, `ok` or `FAILED` with what is wrong and the fix; none holds a secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from common.errors import ConfigError, RosterError
from common.process.checks import Check, checks_of
from queues.connect import check_broker
from queues.topology import RESULTS_QUEUE, ops_queue
from workers.config import TargetConfig
from workers.connectors.plugin import TargetUse

TARGET_CHECK_TIMEOUT_S: Final = 60.0
"""Beyond the peers' own timeouts: a check that hangs past this is a failure, not a wait."""


async def check_worker(url: str, *, ca_file: str | None, targets: Sequence[TargetConfig]) -> list[Check]:
    """The broker's checks, then each target's, in the file's order."""
    consumes = [ops_queue(target.name) for target in targets]
    broker = asyncio.create_task(
        check_broker(url, ca_file=ca_file, publishes_to=[RESULTS_QUEUE], consumes=consumes)
    )
    each = await asyncio.gather(*(check_target(target) for target in targets))
    checks = [Check(what, problem) for what, problem in await broker]
    for found in each:
        checks += found
    return checks


async def check_target(target: TargetConfig) -> list[Check]:
    """The checks of one target by its connector type's plugin, with nothing known of its jobs."""
    what = f"target {target.name!r} ({target.type})"
    check = target.plugin.check
    if check is None:
        return [Check(f"{what}: nothing to reach (its type has no live check)")]
    path = target.path or f"target {target.name!r}"
    try:
        async with asyncio.timeout(TARGET_CHECK_TIMEOUT_S):
            problems = await check(path, target.settings, TargetUse())
    except TimeoutError:
        problems = [ConfigError(path, f"no answer within {TARGET_CHECK_TIMEOUT_S:g} s", "is it reachable?")]
    except RosterError as exc:
        problems = [ConfigError(path, str(exc))]
    return checks_of(what, problems, ok="reached, credentials accepted, read works")
