"""Every problem of a file at once: `collecting()` makes the parsers go on past a `ConfigError`.

A parser is written as if the first error ends it, and raises `ConfigError` as always. Where its parts
are independent (jobs, targets, a job's mappings), it builds each part through a `Parts`: outside
`collecting()` the first error goes up unchanged (so `roster run` refuses a file exactly as before);
inside, each part's error is recorded, the parser goes on with the next part, and `Parts.done()` then
raises `Reported` instead of building a whole from parts that failed. The parsers of a whole file
(`parse_engine_config`, `parse_targets`) return instead what could be read, for further checks.
`roster validate` collects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from common.errors import ConfigError

T = TypeVar("T")

_COLLECTED: ContextVar[list[ConfigError] | None] = ContextVar("roster_config_problems", default=None)


class Reported(ConfigError):
    """A part whose problems are collected already: it cannot be built, and says nothing more itself."""

    def __init__(self) -> None:
        super().__init__("", "see the problems collected")


@contextmanager
def collecting() -> Iterator[list[ConfigError]]:
    """Collect the `ConfigError`s that parsers record meanwhile, in the order they are found."""
    problems: list[ConfigError] = []
    token = _COLLECTED.set(problems)
    try:
        yield problems
    finally:
        _COLLECTED.reset(token)


def raise_all(errors: Sequence[ConfigError]) -> None:
    """Raise `errors`: all recorded (then `Reported`) when collecting, else the first one."""
    if not errors:
        return
    problems = _COLLECTED.get()
    if problems is None:
        raise errors[0]
    problems.extend(errors)
    raise Reported()


class Parts:
    """Builds the independent parts of one whole; see the module docstring."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed = False

    def __call__(self, build: Callable[[], T]) -> T:
        """`build()`. When collecting, a `ConfigError` is recorded and a placeholder comes back that the
        caller must not use before `done()` (which then raises)."""
        try:
            return build()
        except ConfigError as exc:
            self._record(exc)
            return cast(T, None)

    def each(self, items: Sequence[Any], build: Callable[[int, Any], T]) -> list[T]:
        """`build(i, item)` of every item; those that failed are left out (`done()` raises then)."""
        built: list[T] = []
        for i, item in enumerate(items):
            try:
                built.append(build(i, item))
            except ConfigError as exc:
                self._record(exc)
        return built

    def done(self) -> None:
        """Raise `Reported` when a part failed: the whole cannot be built."""
        if self.failed:
            raise Reported()

    def _record(self, exc: ConfigError) -> None:
        problems = _COLLECTED.get()
        if problems is None:
            raise exc
        if not isinstance(exc, Reported):
            problems.append(exc)
        self.failed = True
