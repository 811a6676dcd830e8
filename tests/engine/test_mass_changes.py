"""The mass-change guard's count over a cycle: which updates go at once, wait, or are held."""

from __future__ import annotations

from engine.core.changes import Change, Diff
from engine.core.masschange import MassChanges
from engine.core.policies import MassChangeGuard

GUARD = MassChangeGuard(count=5, percent=20)  # a job of 50 objects: trips above 10


def _same(item: int) -> int:
    return item


def _changes(*names: str, emptied: bool = False) -> Diff:
    kind = "emptied" if emptied else "changed"
    return Diff(attributes=tuple(Change(name, kind, "old", None if emptied else "new") for name in names))


def test_updates_wait_while_under_the_threshold_and_go_when_the_read_ends() -> None:
    counts: MassChanges[int, int] = MassChanges(GUARD, 50, held_as=_same)
    assert all(counts.add(i, _changes("title")) == [] for i in range(10))
    assert counts.finish() == list(range(10))
    assert counts.held == [] and counts.holds() == ()


def test_the_update_that_passes_the_threshold_holds_those_waiting_and_every_later_one() -> None:
    counts: MassChanges[int, int] = MassChanges(GUARD, 50, held_as=_same, noun="accounts")
    for i in range(10):
        counts.add(i, _changes("title", emptied=True))
    counts.add(100, _changes("mail"))
    assert counts.add(10, _changes("title", emptied=True)) == []
    assert counts.held == list(range(11))
    assert counts.add(11, _changes("title", "mail", emptied=True)) == []  # held for title, mail aside
    assert counts.held == [*range(11), 11]
    assert counts.finish() == [100]
    [hold] = counts.holds()
    assert hold.kind == "mass_change"
    assert hold.reason.startswith("title would be emptied on 12 of 50 accounts (24%)")


def test_what_waits_is_bounded_by_the_threshold_per_attribute() -> None:
    counts: MassChanges[int, int] = MassChanges(GUARD, 50, held_as=_same)
    for i in range(1_000):
        counts.add(i, _changes("title"))
    assert len(counts.held) == 1_000 and counts.finish() == []  # the first 10 waited, then all held


def test_an_update_whose_changes_are_not_known_or_only_members_goes_at_once() -> None:
    counts: MassChanges[int, int] = MassChanges(GUARD, 50, held_as=_same)
    assert counts.add(1, None) == [1]
    assert counts.add(2, Diff(members_added=("t1",))) == [2]


def test_in_a_job_too_small_to_pass_the_threshold_nothing_waits() -> None:
    counts: MassChanges[int, int] = MassChanges(
        GUARD, 5, held_as=_same
    )  # never more than 5 changes: never above the count
    assert not counts.active
    assert counts.add(1, _changes("title")) == [1]


def test_values_set_where_there_were_none_go_at_once_and_count_nothing() -> None:
    """A newly mapped attribute, or references resolved a cycle later, fill empty values on every object:
    nothing is overwritten or emptied, so nothing is held (seen: a manager set on 45% of a job held)."""
    counts: MassChanges[int, int] = MassChanges(GUARD, 50, held_as=_same)
    added = Diff(attributes=(Change("manager", "added", None, "uid=ada"),))
    assert all(counts.add(i, added) == [i] for i in range(50))
    assert counts.held == [] and counts.holds() == () and counts.finish() == []
