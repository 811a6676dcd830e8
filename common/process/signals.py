"""Signal handling of a Roster process (the engine, a worker, or both in one).

The first SIGTERM or SIGINT asks for a graceful stop (the process finishes what it holds, within its
grace period); a second SIGINT forces the exit at once. Forcing is safe: a message not yet acked goes
back to its queue, and the idempotent connectors make its redelivery harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger("roster.signals")

FORCED_EXIT_CODE = 130


def install_stop_handlers(stop: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handle(sig: signal.Signals) -> None:
        if received and sig == signal.SIGINT:
            log.warning("event=forced_exit signal=%s", sig.name)
            os._exit(FORCED_EXIT_CODE)
        received.append(sig)
        log.info("event=stopping signal=%s", sig.name)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)
