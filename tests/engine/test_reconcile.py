"""The classification of reconciliation (engine.core.reconcile), on plain values."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import ConfigError
from engine.core.reconcile import Reconciliation, comparable
from engine.core.reconcile_policy import parse_reconcile
from engine.model import ACTIVE, DISABLED, StateEntry

FIELDS = ["employeeNumber", "mail", "title"]


def rows(*items: tuple[str, str, Any, Any]) -> list[list[Any]]:
    return [list(item) for item in items]


def reconciliation(entries: dict[str, StateEntry], *items: tuple[str, str, Any, Any]) -> Reconciliation:
    return Reconciliation(FIELDS, rows(*items), ["mail", "title"], entries, ["employeeNumber"])


@pytest.mark.parametrize(
    ("expected", "found"),
    [
        (None, ""),
        ("", None),
        ([], None),
        (["a"], "a"),
        (["a", "b"], ["b", "a"]),
        (True, "TRUE"),
        (False, "false"),
        (42, "42"),
        (1.0, "1"),
    ],
)
def test_values_a_target_stores_differently_compare_equal(expected: Any, found: Any) -> None:
    assert comparable(expected) == comparable(found)


@pytest.mark.parametrize(("expected", "found"), [("Ada", "ada"), ("a", ["a", "b"]), ("x", None), (0, "")])
def test_values_that_differ_are_drift(expected: Any, found: Any) -> None:
    assert comparable(expected) != comparable(found)


def test_each_situation_is_found_once() -> None:
    entries = {
        "E1": StateEntry("t-1", "h", ACTIVE),
        "E2": StateEntry("t-2", "h", ACTIVE),
        "E3": StateEntry("t-3", "h", ACTIVE),  # gone from the target
        "E5": StateEntry("T-5", "h", DISABLED),  # left the source, disabled; the id's case differs
        "E6": StateEntry("t-6", "h", ACTIVE),  # left the source, not deprovisioned (policy none)
        "E7": StateEntry("t-7", "h", ACTIVE),  # its mappings fail this time
    }
    found = reconciliation(
        entries,
        ("t-1", "E1", "a@x.org", "Eng"),
        ("t-2", "E2", "b@x.org", "HACKED"),
        ("t-4", "E4", "d@x.org", None),
        ("t-5", "E5", None, None),
        ("t-6", "E6", None, None),
        ("t-7", "E7", None, None),
        ("t-9", "X9", None, None),
    )
    findings = [
        found.expected("E1", {"mail": "a@x.org", "title": "Eng"}, [["employeeNumber", "E1"]]),
        found.expected("E2", {"mail": "b@x.org", "title": "Eng"}, [["employeeNumber", "E2"]]),
        found.expected("E3", {"mail": "c@x.org", "title": "Eng"}, [["employeeNumber", "E3"]]),
        found.expected("E4", {"mail": "d@x.org", "title": "Eng"}, [["employeeNumber", "E4"]]),
        found.expected("E8", {"mail": "e@x.org", "title": None}, [["employeeNumber", "E8"]]),
        found.unreadable("E7"),
        *found.leftovers(),
    ]

    assert [(f.situation, f.source_id, f.target_id) for f in findings] == [
        ("in_step", "E1", "t-1"),
        ("drifted", "E2", "t-2"),
        ("missing", "E3", "t-3"),
        ("unlinked", "E4", "t-4"),
        ("unprovisioned", "E8", None),
        ("unknown", "E7", "t-7"),
        ("deprovisioned", "E5", "t-5"),
        ("orphan", "E6", "t-6"),
        ("orphan", None, "t-9"),
    ]
    assert findings[1].describe() == "drifted: title: expected 'Eng', found 'HACKED'"
    assert findings[3].drift[0].attribute == "title"  # linked, and what it then needs is known


def test_an_object_linked_to_one_target_object_never_claims_another_by_matching() -> None:
    entries = {"E1": StateEntry("t-1", "h", ACTIVE)}
    found = reconciliation(entries, ("t-1", "E1", None, None), ("t-2", "E2", None, None))

    first = found.expected("E1", {"mail": None, "title": None}, [["employeeNumber", "E1"]])
    # a second source object matching the first one's target object finds it taken
    second = found.expected("E1-bis", {"mail": None, "title": None}, [["employeeNumber", "E1"]])

    assert (first.situation, second.situation) == ("in_step", "unprovisioned")
    assert [f.target_id for f in found.leftovers()] == ["t-2"]


def test_attributes_not_listed_are_not_compared() -> None:
    found = Reconciliation(
        ["mail"], [["t-1", "a@x.org"]], ["mail", "title"], {"E1": StateEntry("t-1", "h", ACTIVE)}, []
    )

    assert found.compared == ("mail",)
    assert found.expected("E1", {"mail": "a@x.org", "title": "anything"}, []).situation == "in_step"


def test_the_policy_defaults_correct_and_report_and_never_compare_a_password() -> None:
    settings = parse_reconcile("jobs[0].reconcile", None)

    assert (settings.drifted, settings.missing, settings.orphan) == ("correct", "recreate", "report")
    assert settings.compared(["userName", "Password", "title"]) == ["userName", "title"]
    assert parse_reconcile("r", {"ignore": ["title"]}).compared(["userName", "title"]) == ["userName"]


def test_a_wrong_policy_names_the_field_and_the_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"jobs\[0\]\.reconcile\.orphan: 'purge' is not one of delete, disable, report"
    ):
        parse_reconcile("jobs[0].reconcile", {"orphan": "purge"})


@pytest.mark.parametrize("compared", [["mail"], ["mail", "title"]])
def test_one_value_that_differs_among_equal_ones_is_drift_however_many_are_compared(
    compared: list[str],
) -> None:
    entries = {"E1": StateEntry("t-1", None, ACTIVE), "E2": StateEntry("t-2", None, ACTIVE)}
    found = Reconciliation(
        FIELDS, rows(("t-1", "E1", "a@x.org", 42), ("t-2", "E2", "B@x.org", "Eng")), compared, entries, []
    )

    same = found.expected("E1", {"mail": "a@x.org", "title": "42"}, [])  # 42 as a target stores it
    other = found.expected("E2", {"mail": "b@x.org", "title": "Eng"}, [])

    assert same.situation == "in_step"
    assert [(d.attribute, d.expected, d.found) for d in other.drift] == [("mail", "b@x.org", "B@x.org")]
