"""Process-wide runtime settings for a Roster process: the event loop, the garbage collector, the GIL
and the release of freed memory after a cycle.

Applied once by an entry point (`roster run`, `roster engine`, `roster worker`, `roster provision`, and
the benchmarks), never at import time of a library module.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import sys
from collections.abc import Callable

GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two young collections (Python's default: 700).

A cycle allocates a few short-lived objects per source object. At the default threshold that ran
~1,600 young and ~12 full collections per 100,000 objects, each full one walking every object of the
loaded modules again: 15-20% of a cycle's time. Cyclic garbage is still collected."""

GIL_SWITCH_INTERVAL_S = 0.001
"""How long a thread waits for the GIL before it asks the running one to let go (default: 5 ms).

A driver thread (aiosqlite, for the state store and for SQL targets on SQLite) that returns from the
database while the event loop thread computes waits up to this interval; at 5 ms, state writes fell
seconds behind a cycle's planning (100,000 rows took 1.5 to 60 s instead of 0.5 to 1)."""


def tune_process() -> None:
    """Freeze what exists now (modules, the configuration) out of the collections, give young
    objects room to die before a collection looks at them, shorten the GIL switch interval, and
    install uvloop's event loop policy where uvloop is installed."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (musl, macOS, Windows). Looked up
    in the symbols the process already has, on first use: `ctypes.util.find_library` runs `ldconfig`,
    which every command would wait for at start."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def release_memory() -> None:
    """Give the memory a finished cycle freed back to the system, so that what a server holds between
    cycles is what it keeps, not the high-water mark of the biggest cycle so far.

    Python frees a cycle's objects as it goes, but glibc keeps freed heap pages for the next
    allocation: once the snapshot and the ids read of a million objects were freed, the process
    held 142 MB without the trim, 113 MB with it. A collection first frees what only cycles held."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
