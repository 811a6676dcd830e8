"""The `Source` protocol: where identities come from.

A source streams its objects in batches, so a cycle never holds a whole export in memory and the
event loop gets a turn between batches. A row that cannot be read is a `SourceProblem` (reported with
its line, skipped), never an exception that ends the cycle; only a source that cannot be read at all
(a missing file, no id column) raises `SourceError`.

A skipped row counts in `skipped`: whoever it held looks gone from the source, so a read that skipped
anything is *incomplete* and the cycle deprovisions nothing on it. A problem that loses no object (a
group member left out, its group still read) is a note: reported, not counted in `skipped`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from engine.model import SourceObject, SourceProblem


class Source(Protocol):
    """Reads every object of one source, in batches. `problems` fills up while it reads."""

    problems: list[SourceProblem]
    """The first problems met (a capped list, so a broken file cannot fill memory)."""

    @property
    def problem_count(self) -> int:
        """Every problem met, including those past the cap of `problems`."""
        ...

    @property
    def skipped(self) -> int:
        """Objects the last read met but could not use (unreadable, torn, without an id, repeated):
        more than 0 makes the read incomplete."""
        ...

    @property
    def full(self) -> bool:
        """Whether a read sees every object, so that one it does not see has left the source (an
        incremental read sees only what changed)."""
        ...

    @property
    def watermark(self) -> str | None:
        """After an incremental read: where the next one starts (None: read everything next time)."""
        ...

    def batches(self, size: int) -> AsyncIterator[list[SourceObject]]:
        """Yield lists of at most `size` objects; the whole source is one full import."""
        ...


@runtime_checkable
class ReportsDeletions(Protocol):
    """A source whose incremental reads also see deletions (Active Directory's tombstones): the cycle
    deprovisions those objects at once, as a full read would, under the same deletion guard. Optional:
    a source without it leaves deletions to the next full read (`full_import_every`)."""

    @property
    def deleted(self) -> Sequence[str]:
        """After an incremental read: the ids of the objects it saw deleted from the source."""
        ...


MAX_PROBLEMS = 1000
"""Problems a source keeps; the rest are only counted, so a broken source cannot fill memory."""


class ProblemLog:
    """The capped `problems`, `problem_count` and `skipped` of a source; `_problem` records one,
    `_forget_problems` starts a new read."""

    def __init__(self) -> None:
        self.problems: list[SourceProblem] = []
        self.problems_omitted = 0
        self.skipped = 0

    @property
    def problem_count(self) -> int:
        return len(self.problems) + self.problems_omitted

    def _forget_problems(self) -> None:
        self.problems, self.problems_omitted, self.skipped = [], 0, 0

    def _problem(self, line: int, message: str, *, skipped: bool = True) -> None:
        """Record a problem at `line`; `skipped=False` for a note on an object that was still read."""
        self.skipped += skipped
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(SourceProblem(line, message))
        else:
            self.problems_omitted += 1
