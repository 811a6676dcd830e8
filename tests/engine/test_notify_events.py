"""Which cycles make which events: a lasting state is said once, when it begins."""

from __future__ import annotations

import time

from engine.model import CycleSummary, Hold
from engine.notify.events import EventFilter
from engine.notify.senders import signature, verify
from engine.notify.settings import one_address

GUARD = Hold("deletion_guard", "4 of 6 objects would be disabled or deleted")


def cycle(n: int, status: str = "succeeded", **counts: object) -> CycleSummary:
    return CycleSummary(cycle_id=f"c{n}", job="people", status=status, read=6, **counts)  # type: ignore[arg-type]


def said(events: EventFilter, summary: CycleSummary) -> list[str]:
    return [event.type for event in events.of_cycle(summary)]


def test_held_deprovisions_are_said_when_they_begin_or_change_not_at_each_cycle() -> None:
    events = EventFilter()
    assert said(events, cycle(1)) == []
    assert said(events, cycle(2, "held", staged=4, holds=(GUARD,))) == ["deletions_held"]
    assert said(events, cycle(3, "held", staged=4, holds=(GUARD,))) == []
    assert said(events, cycle(4, "held", staged=5, holds=(GUARD,))) == ["deletions_held"]  # more now
    assert said(events, cycle(5)) == []  # approved, or back in the source
    assert said(events, cycle(6, "held", staged=5, holds=(GUARD,))) == ["deletions_held"]


def test_a_quarantine_and_failing_cycles_are_said_at_their_start_and_again_after_a_good_cycle() -> None:
    events = EventFilter()
    assert said(events, cycle(1, "failed", error="the source file is missing")) == ["cycle_failed"]
    assert said(events, cycle(2, "failed", error="the source file is missing")) == []
    assert said(events, cycle(3)) == []
    assert said(events, cycle(4, "failed", failed=3)) == ["cycle_failed"]
    assert said(events, cycle(5, "quarantined", quarantined="90% of operations failed")) == [
        "job_quarantined"
    ]
    assert said(events, cycle(6, "quarantined", quarantined="90% of operations failed")) == []
    assert said(events, cycle(7)) == []  # released
    assert said(events, cycle(8, "quarantined", quarantined="again")) == ["job_quarantined"]


def test_the_texts_say_what_happened_and_what_to_do() -> None:
    (held,) = EventFilter().of_cycle(cycle(2, "held", staged=4, holds=(GUARD,)))
    assert held.subject == "Roster: 4 deprovision(s) of job people held for approval"
    assert "deletion guard: 4 of 6" in held.text and "roster approve" in held.text
    assert held.details["held"] == 4 and held.details["cycle_id"] == "c2"
    (failed,) = EventFilter().of_cycle(cycle(1, "failed", failed=3))
    assert "3 operation(s) failed" in failed.text


def test_a_signature_holds_for_its_body_secret_and_time_only() -> None:
    body, secret, now = b'{"event":"deletions_held"}', "a-secret-of-enough-length-01234", time.time()
    header = signature(secret, int(now), body)
    assert verify(secret, header, body, now=now)
    assert not verify(secret, header, body + b" ", now=now)
    assert not verify("another-secret-of-enough-length", header, body, now=now)
    assert not verify(secret, header, body, now=now + 301)  # a replay, later
    assert not verify(secret, "v1=abc", body, now=now)


def test_one_address_is_one_address_and_nothing_a_header_could_be_split_by() -> None:
    assert one_address("ada@example.org")
    for text in (
        "ada",
        "ada@example.org\r\nBcc: eve@example.org",
        "a@x.org, b@x.org",
        "Ada <ada@x.org>",
        "a @x.org",
    ):
        assert not one_address(text), text
