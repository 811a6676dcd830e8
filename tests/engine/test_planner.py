"""The planner decides each object's operation from plain values: no loop, no broker, no database."""

from __future__ import annotations

import sys

import pytest

from engine.core.planner import Planner, plan_action, plan_missing
from engine.core.snapshot import Snapshot, encode_hash, fingerprint
from engine.mapping.base import ConstantMapping, DirectMapping, Mapper, attribute_hash
from engine.model import ACTIVE, DISABLED, SourceObject, StateEntry

MAPPER = Mapper(
    [
        DirectMapping(target="id", source="employee_id"),
        DirectMapping(target="mail", source="email", default="none@example.org"),
        ConstantMapping(target="company", value="Example"),
        ConstantMapping(target="initial_password", value="s3cret", apply_on="create"),
    ],
    matching=("id",),
)


def _planner(snapshot: dict[str, StateEntry], **kw) -> Planner:
    return Planner(
        job="j", target="t", object_type="user", cycle_id="c1", mapper=MAPPER, snapshot=snapshot, **kw
    )


def _obj(i: int, **attrs) -> SourceObject:
    return SourceObject(f"E{i}", {"employee_id": f"E{i}", "email": f"u{i}@example.org", **attrs})


def test_the_hash_ignores_key_order_and_sees_any_value_change() -> None:
    assert attribute_hash({"a": 1, "b": "x"}) == attribute_hash({"b": "x", "a": 1})
    assert attribute_hash({"a": 1, "b": "x"}) != attribute_hash({"a": 1, "b": "y"})
    assert attribute_hash({"a": None}) != attribute_hash({"a": ""})


def test_plan_action_covers_new_changed_unchanged_and_disabled_objects() -> None:
    assert plan_action(None, "h") == "create"
    assert plan_action(StateEntry("E1", "h", ACTIVE), "h") is None
    assert plan_action(StateEntry("E1", "old", ACTIVE), "h") == "update"
    assert plan_action(StateEntry("E1", "h", DISABLED), "h") == "update"


def test_plan_missing_follows_the_policy_and_does_not_disable_twice() -> None:
    active, disabled = StateEntry("E1", "h", ACTIVE), StateEntry("E1", "h", DISABLED)
    assert plan_missing(active, "disable") == "disable"
    assert plan_missing(disabled, "disable") is None
    assert plan_missing(disabled, "delete") == "delete"
    assert plan_missing(active, "none") is None


def test_a_new_object_is_created_with_its_create_only_values_which_stay_out_of_the_hash() -> None:
    planner = _planner({})
    op = planner.plan(_obj(1))
    assert op is not None and op.action == "create"
    assert op.attributes == {
        "id": "E1",
        "mail": "u1@example.org",
        "company": "Example",
        "initial_password": "s3cret",
    }
    assert op.desired_hash == attribute_hash({"id": "E1", "mail": "u1@example.org", "company": "Example"})
    assert op.matching == [["id", "E1"]]
    assert op.op_id.startswith("c1-")


def test_an_unchanged_object_gets_no_operation_and_a_changed_one_an_update_without_create_only_values() -> (
    None
):
    mapped = MAPPER.map(_obj(1).attributes)
    planner = _planner({"E1": StateEntry("E1", mapped.hash, ACTIVE), "E2": StateEntry("E2", "stale", ACTIVE)})
    assert planner.plan(_obj(1)) is None
    update = planner.plan(_obj(2))
    assert update is not None and update.action == "update" and "initial_password" not in update.attributes
    assert update.target_id == "E2"
    assert planner.unchanged == 1


def test_objects_missing_from_the_import_are_deprovisioned_by_their_target_id() -> None:
    planner = _planner({"E1": StateEntry("T-1", "h", ACTIVE), "E2": StateEntry("T-2", "h", ACTIVE)})
    planner.plan(_obj(1))
    missing = list(planner.plan_missing())
    assert [(op.action, op.source_id, op.target_id) for op in missing] == [("disable", "E2", "T-2")]


def test_an_object_with_an_operation_in_flight_is_deferred_not_planned_twice() -> None:
    planner = _planner({"E3": StateEntry("E3", "h", ACTIVE)}, in_flight={"E1", "E3"})
    assert planner.plan(_obj(1)) is None
    assert planner.deferred == ["E1"]
    assert list(planner.plan_missing()) == []  # E3 is in flight: not deprovisioned meanwhile


def test_matching_pairs_keep_precedence_and_leave_out_attributes_without_a_value() -> None:
    mapper = Mapper(
        [DirectMapping(target="id", source="employee_id"), DirectMapping(target="mail", source="email")],
        matching=("mail", "id"),
    )
    planner = Planner(job="j", target="t", object_type="user", cycle_id="c1", mapper=mapper, snapshot={})
    with_mail = planner.plan(_obj(1))
    without_mail = planner.plan(SourceObject("E2", {"employee_id": "E2", "email": None}))
    assert with_mail is not None and with_mail.matching == [["mail", "u1@example.org"], ["id", "E1"]]
    assert without_mail is not None and without_mail.matching == [["id", "E2"]]


def _held(entries: dict[str, StateEntry]) -> Snapshot:
    """A snapshot as a cycle takes it from the store: fingerprints only, no entry loaded."""
    return Snapshot({s: fingerprint(encode_hash(e.applied_hash), e.state) for s, e in entries.items()})


def test_a_cycle_needs_the_entries_only_of_objects_that_changed_or_left() -> None:
    entries = {
        "E1": StateEntry("T-1", MAPPER.map(_obj(1).attributes).hash, ACTIVE),  # unchanged
        "E2": StateEntry("T-2", "stale", ACTIVE),  # changed
        "E3": StateEntry("T-3", MAPPER.map(_obj(3).attributes).hash, DISABLED),  # back: enabled again
        "E4": StateEntry("T-4", "h", ACTIVE),  # left the source
    }
    planner = Planner(
        job="j", target="t", object_type="user", cycle_id="c1", mapper=MAPPER, snapshot=_held(entries)
    )
    batch = [_obj(1), _obj(2), _obj(3), _obj(5)]
    to_plan, wanted = planner.prepare(batch)
    assert wanted == ["E2", "E3"]  # not E1 (unchanged) nor E5 (new: a create needs no entry)
    assert to_plan == batch[1:] and (planner.seen, planner.unchanged) == (1, 1)  # E1 settled
    planner.snapshot.add_entries({s: entries[s] for s in wanted})
    ops = [planner.plan(obj) for obj in to_plan]
    assert [(op.action, op.target_id) if op else None for op in ops] == [
        ("update", "T-2"),
        ("update", "T-3"),
        ("create", None),
    ]
    assert planner.unseen() == ["E4"] and len(planner.snapshot) == 4
    planner.snapshot.add_entries({"E4": entries["E4"]})
    assert [(op.action, op.target_id) for op in planner.plan_missing()] == [("disable", "T-4")]


def test_planning_a_changed_object_whose_entry_was_not_loaded_fails_loudly() -> None:
    planner = Planner(
        job="j",
        target="t",
        object_type="user",
        cycle_id="c1",
        mapper=MAPPER,
        snapshot=_held({"E2": StateEntry("T-2", "stale", ACTIVE)}),
    )
    with pytest.raises(LookupError, match="E2"):  # rather than an update without its target id
        planner.plan(_obj(2))


@pytest.mark.parametrize("prepared", [False, True], ids=["planned", "prepared-then-planned"])
def test_a_scoping_regex_that_runs_out_of_time_fails_that_object_which_is_never_deprovisioned(
    prepared: bool,
) -> None:
    from engine.core.scoping import parse_scoping
    from engine.mapping.functions.errors import MappingError

    scope = parse_scoping(
        "jobs[0].scoping", [[{"attribute": "title", "operator": "REGEX MATCH", "value": "(a|aa)+$"}]]
    )
    held = {"E1": StateEntry("E1", "h1", ACTIVE), "E2": StateEntry("E2", "h2", ACTIVE)}
    planner = _planner(held, scope=scope)
    catastrophic, fine = _obj(1, title="a" * 5000 + "!"), _obj(2, title="aaa")
    if prepared:
        planner.prepare([catastrophic, fine])
    with pytest.raises(MappingError, match="REGEX MATCH"):
        planner.plan(catastrophic)
    op = planner.plan(fine)
    assert op is not None and op.source_id == "E2"
    assert list(planner.plan_missing()) == []  # E1 failed, which is not leaving the scope


def test_the_snapshot_gives_back_the_table_of_what_was_taken_and_still_plans_the_rest() -> None:
    held = {f"E{i}": StateEntry(f"T-{i}", "h", ACTIVE) for i in range(1, 10_001)}
    planner = _planner(held)
    planner.snapshot = _held(held)
    full_bytes = sys.getsizeof(planner.snapshot.fingerprints)
    unchanged = [SourceObject(f"E{i}", {}) for i in range(1, 8_001)]
    for obj in unchanged:
        assert planner.snapshot.take(obj.source_id) is not None
        planner.snapshot.shrink()  # as the runner does after each batch
    assert sys.getsizeof(planner.snapshot.fingerprints) < full_bytes / 3  # 2,000 of 10,000 left
    assert planner.unseen() == [f"E{i}" for i in range(8_001, 10_001)] and len(planner.snapshot) == 10_000
    planner.snapshot.add_entries(held)
    assert {op.source_id for op in planner.plan_missing()} == {f"E{i}" for i in range(8_001, 10_001)}
