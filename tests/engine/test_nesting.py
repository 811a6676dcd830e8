"""Nested groups of one job are planned member groups first, and loops are found and named."""

from __future__ import annotations

from engine.core.nesting import NestedGroups, NestingLoop, nesting_order
from engine.model import SourceObject


def test_groups_listed_outermost_first_are_ordered_innermost_first() -> None:
    order = nesting_order({"G1": ["G2", "E4"], "G2": ["E3", "G3"], "G3": ["E0", "E1"]})
    assert order.levels == [["G3"], ["G2"], ["G1"]]
    assert order.loops == {}


def test_a_group_waits_for_its_deepest_member_group_and_siblings_share_a_level() -> None:
    order = nesting_order({"A": ["B", "C"], "B": [], "C": ["D"], "D": [], "E": ["D"]})
    assert order.levels == [["B", "D"], ["C", "E"], ["A"]]


def test_loops_are_named_from_each_group_in_them_and_the_groups_that_hold_them_still_get_a_level() -> None:
    order = nesting_order({"G1": ["G2"], "G2": ["G1"], "G5": ["G5"], "G6": ["G1", "G7"], "G7": []})
    assert order.loops == {"G1": ("G1", "G2", "G1"), "G2": ("G2", "G1", "G2"), "G5": ("G5", "G5")}
    assert order.levels == [["G7"], ["G6"]]
    assert "G1 contains G2 contains G1" in str(NestingLoop(order.loops["G1"]))


def test_a_long_chain_is_ordered_without_recursion() -> None:
    chain = {f"G{i}": [f"G{i + 1}"] for i in range(5000)}
    order = nesting_order(chain)
    assert len(order.levels) == 5000
    assert order.levels[0] == ["G4999"] and order.levels[-1] == ["G0"]


def test_only_members_that_are_groups_read_this_cycle_order_the_held_groups() -> None:
    nested = NestedGroups()
    for source_id in ("G1", "G2", "G3"):
        nested.see(source_id)
    nested.hold(SourceObject("G1", {}), ["G2", "E9"])  # E9: a person not provisioned yet
    nested.hold(SourceObject("G2", {}), ["G3"])  # G3: read, planned while reading
    levels, loops = nested.order()
    assert [[obj.source_id for obj in level] for level in levels] == [["G2"], ["G1"]]
    assert loops == []
