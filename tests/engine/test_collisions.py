"""Two objects of a job whose matching values are one value to the target: the planner sends one of
them, never both (the other fails, naming the one that keeps the value)."""

from __future__ import annotations

import pytest

from engine.core.collisions import CollisionError, linking, refuse_shared
from engine.core.planner import Planner
from engine.core.snapshot import Snapshot, encode_hash, fingerprint
from engine.mapping.base import DirectMapping, Mapper
from engine.model import ACTIVE, SourceObject, StateEntry
from queues.contracts import Operation, Result

NAMES = Mapper([DirectMapping(target="displayName", source="name")], matching=("displayName",))
BOTH = Mapper(
    [DirectMapping(target="externalId", source="gid"), DirectMapping(target="displayName", source="name")],
    matching=("externalId", "displayName"),
)


def group(gid: str, name: object) -> SourceObject:
    return SourceObject(gid, {"gid": gid, "name": name})


def planner(mapper: Mapper, linked: dict[str, SourceObject] | None = None) -> Planner:
    """A planner whose state holds `linked` as applied (unchanged unless their source changed)."""
    entries = {}
    for gid, obj in (linked or {}).items():
        mapped = mapper.map(obj.attributes)
        entries[gid] = StateEntry(f"cn={gid}", mapped.hash, ACTIVE)
    snapshot = Snapshot.of(entries)
    for gid, entry in entries.items():  # the applied hashes as a cycle loads them
        snapshot.fingerprints[gid] = fingerprint(encode_hash(entry.applied_hash), ACTIVE)
    return Planner(
        job="teams", target="t", object_type="group", cycle_id="c", mapper=mapper, snapshot=snapshot
    )


def run(p: Planner, batch: list[SourceObject]) -> tuple[list[Operation], dict[str, str]]:
    """Prepare the batch, then plan what is left: the operations, and the failures by source id."""
    to_plan, _ = p.prepare(batch)
    ops: list[Operation] = []
    failed: dict[str, str] = {}
    for obj in to_plan:
        try:
            op = p.plan(obj)
        except CollisionError as exc:
            failed[obj.source_id] = str(exc)
            continue
        if op is not None:
            ops.append(op)
    return ops, failed


def test_a_name_equal_to_another_without_case_or_extra_spaces_is_not_sent_and_names_the_other() -> None:
    batch = [
        group("G1", "App Helix"),
        group("G2", "App Helix"),
        group("G3", "app HELIX"),
        group("G4", "  App   Helix "),
    ]
    ops, failed = run(planner(NAMES), [*batch, group("G5", "App  Nova")])

    assert [(op.source_id, op.action) for op in ops] == [("G1", "create"), ("G5", "create")]
    assert sorted(failed) == ["G2", "G3", "G4"]
    assert "displayName 'app HELIX' is also that of 'G1'" in failed["G3"]
    assert "on_collision" in failed["G3"] and "rename" in failed["G3"]


def test_the_linked_object_keeps_its_name_even_when_a_new_one_comes_first_in_the_batch() -> None:
    a = group("G1", "App Helix")
    ops, failed = run(planner(NAMES, {"G1": a}), [group("G0", "APP HELIX"), a])
    assert ops == [] and list(failed) == ["G0"] and "'G1'" in failed["G0"]


def test_an_unchanged_object_keeps_its_name_from_an_earlier_batch_and_from_an_object_renamed_into_it() -> (
    None
):
    a, b = group("G1", "App Helix"), group("G2", "Other")
    p = planner(NAMES, {"G1": a, "G2": b})
    assert run(p, [a]) == ([], {})
    ops, failed = run(p, [group("G2", "app helix"), group("G3", "App Helix ")])
    assert ops == [] and sorted(failed) == ["G2", "G3"]


def test_names_alike_told_apart_by_another_matching_attribute_are_two_objects() -> None:
    ops, failed = run(planner(BOTH), [group("G1", "App Helix"), group("G2", "App Helix")])
    assert [op.source_id for op in ops] == ["G1", "G2"] and failed == {}
    # Without a value of the first attribute, the name is all they can be told apart by.
    one = SourceObject("G3", {"name": "app helix"})
    ops, failed = run(planner(BOTH), [group("G1", "App Helix"), one])
    assert [op.source_id for op in ops] == ["G1"] and list(failed) == ["G3"]


@pytest.mark.parametrize("name", [None, "", {"$unique": ["App Helix", "App Helix (G2)"]}])
def test_a_value_that_is_no_name_never_collides(name: object) -> None:
    ops, failed = run(planner(NAMES), [group("G1", name), group("G2", name)])
    assert [op.source_id for op in ops] == ["G1", "G2"] and failed == {}


def result(source_id: str, action: str, target_id: str | None, status: str = "succeeded") -> Result:
    return Result(
        op_id=f"c-{source_id}-{action}",
        job="teams",
        target="t",
        cycle_id="c",
        source_id=source_id,
        action=action,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        attempts=1,
        emitted_at=0.0,
        completed_at=0.0,
        target_id=target_id,
    )


def test_a_create_linked_to_an_entry_another_object_holds_fails_naming_it() -> None:
    results = [
        result("G2", "create", "cn=App Helix"),  # G1 holds it (the state says)
        result("G1", "create", "cn=App Helix"),  # a replay of G1's own: its own entry
        result("G3", "create", "cn=Other"),
        result("G4", "create", "cn=Other"),  # the entry G3 got a moment ago
        result("G5", "delete", "cn=Gone"),  # frees it for G6
        result("G6", "create", "cn=Gone"),
        result("G7", "update", "cn=App Helix"),  # not a link: the planner's check covers updates
    ]
    holders = {"teams": {"cn=App Helix": "G1", "cn=Gone": "G5"}}
    assert linking(results) == {"teams": {"cn=App Helix", "cn=Other", "cn=Gone"}}

    out = refuse_shared(results, holders)

    assert [(r.source_id, r.status) for r in out] == [
        ("G2", "failed"),
        ("G1", "succeeded"),
        ("G3", "succeeded"),
        ("G4", "failed"),
        ("G5", "succeeded"),
        ("G6", "succeeded"),
        ("G7", "succeeded"),
    ]
    assert out[0].target_id is None and "the entry of 'G1'" in (out[0].error_message or "")
    assert "the entry of 'G3'" in (out[3].error_message or "")
