"""Signal handling of a Roster process (the engine, a worker, or both in one).

The first SIGTERM or SIGINT asks for a graceful stop (the process finishes what it holds, within its
grace period); a second SIGINT forces the exit at once. Forcing is safe: a message not yet acked goes
back to its queue, and the idempotent connectors make its redelivery harmless.

A command a person runs in a terminal says what the stop waits for, and what an exit now leaves: a
stop that takes seconds and says nothing looks hung.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger("roster.signals")

FORCED_EXIT_CODE = 130


def install_stop_handlers(
    stop: Callable[[], object],
    *,
    say: Callable[[str], None] | None = None,
    waiting: Callable[[], str] | None = None,
    leaving: Callable[[], str] | None = None,
) -> None:
    """On the first signal call `stop()`; on a second SIGINT exit at once with `FORCED_EXIT_CODE`.

    With `say`, each tells the person: the first signal `stopping: <waiting()>; Ctrl-C again to exit
    now`, the second `exiting now: <leaving()>`."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handle(sig: signal.Signals) -> None:
        if received and sig == signal.SIGINT:
            log.warning("event=forced_exit signal=%s", sig.name)
            if say is not None:
                say(f"exiting now{': ' + leaving() if leaving else ''}")
            os._exit(FORCED_EXIT_CODE)
        if received:
            return  # a second SIGTERM: the stop is under way already
        received.append(sig)
        log.info("event=stopping signal=%s", sig.name)
        if say is not None:
            say(f"stopping{': ' + waiting() if waiting else ''}; Ctrl-C again to exit now")
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)
