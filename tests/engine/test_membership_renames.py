"""A member whose target id changes (a rename that moves the entry) and who leaves a group: the removal
reaches the target id the member has now, and is looked at again whenever that id changes."""

from __future__ import annotations

from engine.core.membership import REMOVED_PREFIX, Membership, MembersSettings

SETTINGS = MembersSettings(source="members", job="people")


def plan_for(target_ids: dict[str, str], record: dict[str, str], wanted: list[str]):  # type: ignore[no-untyped-def]
    return Membership(SETTINGS, target_ids=target_ids, applied={"G": record}).plan(
        "G", {"members": wanted}, "h"
    )


def test_a_member_renamed_and_leaving_is_removed_at_its_current_and_its_applied_target_id() -> None:
    plan = plan_for({"E1": "new1", "E2": "t2"}, {"E1": "old1", "E2": "t2"}, ["E2"])
    assert (plan.add, plan.remove) == ([], ["new1", "old1"])
    assert plan.record == {"E2": "t2", REMOVED_PREFIX + "E1": "new1"}


def test_a_removed_member_whose_target_id_changes_later_is_removed_again_at_the_new_one() -> None:
    """The removal went out with the old id while another worker renamed the entry (or the rename's own
    result failed): once the state learns the new id, the group is planned again and removes it."""
    first = plan_for({"E1": "old1", "E2": "t2"}, {"E1": "old1", "E2": "t2"}, ["E2"])
    assert first.remove == ["old1"]
    same = plan_for({"E1": "old1", "E2": "t2"}, first.record, ["E2"])
    assert (same.add, same.remove, same.hash) == ([], [], first.hash)  # nothing new: nothing planned

    moved = plan_for({"E1": "new1", "E2": "t2"}, first.record, ["E2"])
    assert (moved.add, moved.remove) == ([], ["new1"])
    assert moved.hash != first.hash
    settled = plan_for({"E1": "new1", "E2": "t2"}, moved.record, ["E2"])
    assert (settled.remove, settled.hash) == ([], moved.hash)


def test_a_removed_member_whose_account_is_gone_is_forgotten_and_one_who_rejoins_is_added() -> None:
    record = {"E2": "t2", REMOVED_PREFIX + "E1": "t1"}
    gone = plan_for({"E2": "t2"}, record, ["E2"])
    assert (gone.remove, gone.record) == ([], {"E2": "t2"})
    back = plan_for({"E1": "t1b", "E2": "t2"}, record, ["E1", "E2"])
    assert (back.add, back.remove, back.record) == (["t1b"], [], {"E1": "t1b", "E2": "t2"})


def test_a_group_without_removed_members_keeps_the_hash_it_had() -> None:
    """No mass re-plan on upgrade: the hash of a group that never lost a member is the one before."""
    from engine.mapping.base import attribute_hash

    plan = plan_for({"E1": "t1"}, {"E1": "t1"}, ["E1"])
    assert plan.hash == attribute_hash({"attributes": "h", "members": [("E1", "t1")]})
