"""The `roster` executable: hands the command line to the side of Roster that serves its command.

A command is served by the entry point of that name in the group `roster.cli` (`worker =
"workers.cli:main"`); every other command by the entry point `roster`, the engine's command line. So
`roster worker` loads the workers' modules and none of the engine's, and this module names no other
package of Roster: the entry points in `pyproject.toml` do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE, as a shell reports a process that SIGPIPE ended
GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--log-level"})

GROUP = "roster.cli"
DEFAULT = "roster"


def command_line(argv: Sequence[str]) -> Callable[[Sequence[str]], int]:
    """The `main(argv)` that serves `argv`: its first argument after the global options names it."""
    found = {point.name: point for point in entry_points(group=GROUP)}
    command = _command(argv)
    point = found.get(command) if command is not None and command != DEFAULT else None
    if point is None:
        point = found[DEFAULT]
    serve: Callable[[Sequence[str]], int] = point.load()
    return serve


def _command(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = command_line(args)(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`roster logs | head -1`): what it read is all it wanted. Point stdout
        # at /dev/null so the interpreter's last flush does not fail again, and exit as a process
        # killed by SIGPIPE reports itself in a shell.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
