"""The errors of evaluating an expression (`MappingError`, and `LimitExceeded` when a bound of
`engine.mapping.limits` is crossed), of checking its arguments at parse time (`ArgumentError`), and the
signal that leaves an attribute out of the flow (`OmitFlow`)."""

from __future__ import annotations

from common.errors import RosterError


class MappingError(RosterError):
    """An expression cannot be evaluated for one object: that object fails, not the cycle."""

    def __init__(self, problem: str, *, function: str | None = None, column: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.function = function
        self.column = column
        self.target: str | None = None

    def __str__(self) -> str:
        where = f"{self.function} at column {self.column}: " if self.function else ""
        return f"{self.target}: {where}{self.problem}" if self.target else f"{where}{self.problem}"


class LimitExceeded(MappingError):
    """An evaluation crossed a bound (size, time, number range): at parse time the expression is refused."""


class ArgumentError(Exception):
    """A parse-time problem with one argument (or the call, when `index` is None)."""

    def __init__(self, index: int | None, problem: str) -> None:
        super().__init__(problem)
        self.index = index
        self.problem = problem


class OmitFlow(Exception):
    """Raised by IgnoreFlowIfNullOrEmpty; the expression then evaluates to `OMIT`."""
