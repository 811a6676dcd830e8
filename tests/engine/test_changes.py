"""The attribute diff: the last applied values against the desired ones, as the log keeps them."""

from __future__ import annotations

from engine.core.changes import Change, Diff, as_logged, diff


def test_added_changed_and_emptied_attributes_each_say_from_what_to_what() -> None:
    old = {"title": "Engineer", "mail": "a@x", "phone": None, "groups": ["a"], "same": "s"}
    new = {"title": None, "mail": "b@x", "phone": "+1 555", "groups": [], "same": "s", "dept": "Sales"}
    assert diff(old, new).attributes == (
        Change("title", "emptied", "Engineer", None),
        Change("mail", "changed", "a@x", "b@x"),
        Change("phone", "added", None, "+1 555"),
        Change("groups", "emptied", ["a"], []),
        Change("dept", "added", None, "Sales"),
    )


def test_one_empty_value_for_another_and_attributes_an_update_does_not_send_are_no_change() -> None:
    old = {"title": "", "password": "set on create", "tags": None}
    assert diff(old, {"title": None, "tags": []}) == Diff()
    assert not diff(old, {"title": None})


def test_a_create_adds_every_attribute_with_a_value() -> None:
    assert diff(None, {"mail": "a@x", "title": ""}).attributes == (Change("mail", "added", None, "a@x"),)


def test_values_compare_as_logged_so_tuples_and_redacted_values_are_not_changes() -> None:
    new = as_logged({"groups": ("a", "b"), "secret": "new one"}, {"secret"})
    assert new == {"groups": ["a", "b"], "secret": "***"}
    assert diff({"groups": ["a", "b"], "secret": "***"}, new) == Diff()
    assert diff({"n": 1}, {"n": True}).attributes == (Change("n", "changed", 1, True),)


def test_group_members_added_and_removed_are_part_of_the_diff() -> None:
    changes = diff({"name": "g"}, {"name": "g"}, members_add=["t1"], members_remove=["t2", "t3"])
    assert changes and changes.members_added == ("t1",) and changes.members_removed == ("t2", "t3")
    assert changes.changed() == frozenset()
