"""The lines of `roster engine --check` and `roster worker --check`: one per thing checked, `ok` or
`FAILED` with what is wrong and the fix, and the exit code they add up to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from common.errors import ConfigError
from common.process.cli import EXIT_FAILED, EXIT_OK


@dataclass(frozen=True, slots=True)
class Check:
    """One thing checked (`what`), and what is wrong with it with its fix (None: it is fine)."""

    what: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        return f"ok     {self.what}" if self.problem is None else f"FAILED {self.what}: {self.problem}"


def checks_of(what: str, problems: Sequence[ConfigError], *, ok: str) -> list[Check]:
    """`ok` when the check of `what` found no problem, else one failed line per problem (each with
    the setting at fault and its fix)."""
    if not problems:
        return [Check(f"{what}: {ok}")]
    return [Check(what, str(problem)) for problem in problems]


def report_checks(checks: Iterable[Check], say: Callable[[str], None] = print) -> int:
    """Say each line, then a total; exit 0 when every check passed, else 1."""
    checks = list(checks)
    for check in checks:
        say(check.line())
    failed = sum(not check.ok for check in checks)
    if failed:
        say(f"{failed} of {len(checks)} check(s) FAILED")
        return EXIT_FAILED
    say(f"all {len(checks)} check(s) passed")
    return EXIT_OK
