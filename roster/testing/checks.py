"""The conformance checks, one coroutine each: what a connector must do, driven through `apply()` and
read back through the probe. Each returns a line saying what it saw pass, or raises `Failed` / `NotRun`
(roster.testing.session). The catalogue that names them is in roster.testing.conformance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.errors import ConnectorError, PermanentError
from queues.contracts import MEMBERS
from roster.testing.probe import Planter, Setter
from roster.testing.session import Failed, KitObject, NotRun, Session, describe, same_value

HOSTILE = {
    "quotes": 'say "hi" it\'s',
    "backslash": "back\\slash\\end",
    "dn-specials": "a,b=c+d;e<f>g#h",
    "url-specials": "path/to?x=1&y=%20",
    "filter-specials": "star*(paren)",
    "unicode": "Zoë Ærø 山田 Ελλη",
    "emoji": "fox🦊rocket🚀",
}
"""Characters that break a connector that builds a DN, a filter, a URL or a statement as text."""


async def create(s: Session, kind: str) -> str:
    """A create is applied, holds what was sent, and makes exactly one object."""
    obj = s.new_object(kind)
    target_id = await s.applied(s.op("create", obj), obj)
    await s.expect_holds(kind, target_id, obj.attributes)
    await s.expect_one(obj, target_id)
    return f"created {target_id!r} holding every attribute sent"


async def create_again(s: Session, kind: str) -> str:
    """A create sent again without its target id (state lost, or the result never came back) matches the
    object made the first time: same target id, no second object."""
    obj = s.new_object(kind)
    first = await s.applied(s.op("create", obj), obj)
    second = await s.applied(s.op("create", obj), obj)
    if second != first:
        raise Failed(f"the second create reported {second!r}, the first {first!r}")
    await s.expect_one(obj, first)
    return f"the second create matched {first!r}; one object in the target"


async def match_planted(s: Session, kind: str) -> str:
    """A create of an object that already exists in the target (made outside Roster) adopts it."""
    if not isinstance(s.probe, Planter):
        raise NotRun("the probe has no plant(): it cannot create an object outside the connector")
    obj = s.new_object(kind)
    planted = await s.probe.plant(kind, obj.attributes)
    s.made[(kind, planted)] = obj
    target_id = await s.applied(s.op("create", obj), obj)
    if target_id != planted:
        raise Failed(f"the create reported {target_id!r}, not the object already there ({planted!r})")
    await s.expect_one(obj, planted)
    return f"the create matched the planted {planted!r}"


async def update(s: Session, kind: str) -> str:
    """An update changes what changed, and the other attributes keep their values (a change of the
    matching attribute renames the object: it is then found by its new value only)."""
    changes = s.sample(kind).changes
    if not changes:
        raise NotRun(f"the {kind} sample has no `changes` to update")
    obj = s.new_object(kind)
    target_id = await s.applied(s.op("create", obj), obj)
    new = s.changed(obj)
    updated = await s.applied(s.op("update", new, target_id=target_id), new)
    if updated != target_id:
        if new.key == obj.key:
            raise Failed(f"the update reported {updated!r}, the create {target_id!r}")
        await s.expect_gone(kind, target_id)  # renamed, in a target whose ids are names (an LDAP DN)
    await s.expect_holds(kind, updated, new.attributes)
    await s.expect_one(new, updated)
    kept = len(new.attributes) - len(changes)
    return f"changed {', '.join(changes)}; the other {kept} attribute(s) kept their values"


async def update_unmapped(s: Session, kind: str) -> str:
    """An update leaves alone an attribute the job does not map (set in the target by someone else)."""
    sample = s.sample(kind)
    if not sample.unmapped:
        raise NotRun(f"the {kind} sample names no `unmapped` attribute")
    if not isinstance(s.probe, Setter):
        raise NotRun("the probe has no set(): it cannot set an attribute outside the connector")
    obj = s.new_object(kind)
    target_id = await s.applied(s.op("create", obj), obj)
    unmapped = s.fill(obj, sample.unmapped)
    await s.probe.set(kind, target_id, unmapped)
    try:
        await s.expect_holds(kind, target_id, unmapped)
    except Failed as failure:
        raise Failed(f"the probe cannot read back what its set() wrote: {failure}") from None
    new = s.changed(obj)
    updated = await s.applied(s.op("update", new, target_id=target_id), new)
    await s.expect_holds(kind, updated, {**new.attributes, **unmapped})
    return f"{', '.join(unmapped)} kept the value set outside the connector"


async def disable(s: Session, kind: str) -> str:
    """A disable is applied and shows in the target; a disable sent again is applied too."""
    disabled = _disabled_state(s, kind)
    obj = s.new_object(kind)
    target_id = await s.applied(s.op("create", obj), obj)
    for _ in range(2):
        done = await s.applied(s.op("disable", obj, target_id=target_id), obj)
        if done != target_id:
            raise Failed(f"the disable reported {done!r}, the create {target_id!r}")
        await s.expect_holds(kind, target_id, disabled)
    return f"disabled {target_id!r} twice; the target shows {disabled}"


async def create_disabled(s: Session, kind: str) -> str:
    """A create that leaves the account disabled makes it disabled, holding what was sent; sent again (a
    retry after a crash, without the target id) it matches that object and leaves it disabled; sent for
    an enabled object already there, it disables that one."""
    disabled = _disabled_state(s, kind)
    obj = s.new_object(kind)
    target_id = await s.applied(s.op("create", obj, disabled=True), obj)
    await s.expect_holds(kind, target_id, {**obj.attributes, **disabled})
    again = await s.applied(s.op("create", obj, disabled=True), obj)
    if again != target_id:
        raise Failed(f"the second create reported {again!r}, the first {target_id!r}")
    await s.expect_holds(kind, target_id, disabled)
    await s.expect_one(obj, target_id)
    there = s.new_object(kind)
    enabled_id = await s.applied(s.op("create", there), there)
    adopted = await s.applied(s.op("create", there, disabled=True), there)
    if adopted != enabled_id:
        await s.expect_gone(kind, enabled_id)  # moved, in a target whose ids are names (an LDAP DN)
    await s.expect_holds(kind, adopted, {**there.attributes, **disabled})
    await s.expect_one(there, adopted)
    return (
        f"created {target_id!r} disabled, and sent again it stayed so; an enabled object already there "
        f"was matched and disabled; the target shows {disabled}"
    )


async def update_disabled(s: Session, kind: str) -> str:
    """An update that leaves the account disabled applies its attributes and disables it; sent again, it
    stays disabled; an update without the flag then enables it again."""
    disabled = _disabled_state(s, kind)
    obj = s.new_object(kind)
    target_id = await s.applied(s.op("create", obj), obj)
    new = s.changed(obj)
    updated = await s.applied(s.op("update", new, target_id=target_id, disabled=True), new)
    if updated != target_id:
        await s.expect_gone(kind, target_id)  # moved, in a target whose ids are names (an LDAP DN)
    await s.expect_holds(kind, updated, {**new.attributes, **disabled})
    again = await s.applied(s.op("update", new, target_id=updated, disabled=True), new)
    if again != updated:
        raise Failed(f"the update of the disabled object reported {again!r}, not {updated!r}")
    await s.expect_holds(kind, updated, {**new.attributes, **disabled})
    enabled = await s.applied(s.op("update", obj, target_id=updated), obj)
    got = await s.expect_holds(kind, enabled, obj.attributes)
    still = {name: value for name, value in disabled.items() if same_value(value, got.get(name))}
    if still:
        raise Failed(f"an update without the flag left {kind} {enabled!r} disabled: it holds {still}")
    await s.expect_one(obj, enabled)
    return f"updated {target_id!r} disabled (twice) with new attributes, then enabled again by an update"


def _disabled_state(s: Session, kind: str) -> Mapping[str, Any]:
    disabled = s.sample(kind).disabled
    if disabled is None:
        raise NotRun(f"the profile says a {kind} cannot be disabled (its sample has no `disabled`)")
    return disabled


async def delete(s: Session, kind: str) -> str:
    """A delete removes the object."""
    obj = s.new_object(kind)
    target_id = await s.applied(s.op("create", obj), obj)
    await s.applied_any(s.op("delete", obj, target_id=target_id), obj)
    await s.expect_gone(kind, target_id)
    found = await s.find(obj)
    if found:
        raise Failed(f"after the delete, {obj.key!r} is still held by {found}")
    return f"deleted {target_id!r}"


async def delete_gone(s: Session, kind: str) -> str:
    """A delete of an object already gone (by its target id, or never made) is applied, not an error."""
    obj = s.new_object(kind)
    target_id = await s.applied(s.op("create", obj), obj)
    await s.applied_any(s.op("delete", obj, target_id=target_id), obj)
    await s.applied_any(s.op("delete", obj, target_id=target_id), obj)
    never = s.new_object(kind)
    await s.applied_any(s.op("delete", never), never)
    return "a second delete, and a delete of an object never made, were both applied"


async def redelivery(s: Session, kind: str) -> str:
    """A batch delivered twice (same op ids: the broker redelivers after a crash) ends as once."""
    a, b = s.new_object(kind), s.new_object(kind)
    batch = [s.op("create", a), s.op("create", b)]
    first = await s.apply(batch, [a, b])
    again = await s.apply(batch, [a, b])
    ids = [s.target_id_of(op, outcome) for op, outcome in zip(batch, first, strict=True)]
    ids_again = [s.target_id_of(op, outcome) for op, outcome in zip(batch, again, strict=True)]
    if ids_again != ids:
        raise Failed(f"the redelivered creates reported {ids_again}, the first delivery {ids}")
    for obj, target_id in zip((a, b), ids, strict=True):
        await s.expect_one(obj, target_id)
        await s.expect_holds(kind, target_id, obj.attributes)
    changes = s.sample(kind).changes
    if changes:
        new = s.changed(a)
        batch = [s.op("update", new, target_id=ids[0])]
        (outcome,) = await s.apply(batch, [new])
        renamed = s.target_id_of(batch[0], outcome)
        (outcome,) = await s.apply(batch, [new])
        if s.target_id_of(batch[0], outcome) != renamed:
            raise Failed(f"the redelivered update reported {outcome!r}, the first delivery {renamed!r}")
        await s.expect_holds(kind, renamed, new.attributes)
        await s.expect_one(new, renamed)
    also = " and an update" if changes else ""
    return f"two creates{also} delivered twice: one object each, holding what was sent"


async def isolation(s: Session, kind: str) -> str:
    """One operation the target refuses fails alone: the others of its batch are applied."""
    refusal = s.profile.refusal
    if refusal is None:
        raise NotRun("the profile has no `refusal`: a value the target refuses")
    if refusal.object_type != kind:
        raise NotRun(f"the profile's refusal is for a {refusal.object_type}")
    good, bad, other = s.new_object(kind), s.new_object(kind, extra=refusal.attributes), s.new_object(kind)
    batch = [s.op("create", good), s.op("create", bad), s.op("create", other)]
    outcomes = await s.apply(batch, [good, bad, other])
    if not isinstance(outcomes[1], PermanentError):
        raise Failed(f"the refused create's outcome is {_shown(outcomes[1])}, not a PermanentError")
    for i in (0, 2):
        target_id = s.target_id_of(batch[i], outcomes[i])
        await s.expect_holds(kind, target_id, batch[i].attributes)
    return f"the refused create failed alone ({describe(outcomes[1])}); the two beside it were applied"


async def permanent(s: Session, kind: str) -> str:
    """A value the target refuses is a `PermanentError` carrying the target's own message, and makes
    nothing."""
    refusal = s.profile.refusal
    if refusal is None:
        raise NotRun("the profile has no `refusal`: a value the target refuses")
    obj = s.new_object(refusal.object_type, extra=refusal.attributes)
    (outcome,) = await s.apply([s.op("create", obj)], [obj])
    if not isinstance(outcome, PermanentError):
        raise Failed(f"the refused create's outcome is {_shown(outcome)}, not a PermanentError")
    if not outcome.message.strip():
        raise Failed("the PermanentError has no message: the target's reason is lost")
    if refusal.message and refusal.message.casefold() not in outcome.message.casefold():
        raise Failed(
            f"the message does not carry the target's words {refusal.message!r}: {outcome.message!r}"
        )
    found = await s.find(obj)
    if found:
        raise Failed(f"the refused create left {found} in the target")
    return describe(outcome)


async def hostile(s: Session, kind: str) -> str:
    """Keys and values with characters that a DN, a filter, a URL or a statement must escape are
    stored as sent, matched again on a second create, and deleted."""
    cases = dict(HOSTILE)
    if not s.profile.trims_spaces:
        cases["spaces"] = ""
    objects: dict[str, KitObject] = {}
    for label, text in cases.items():
        if label == "spaces":
            key = f" {s.prefix}spaces  inside "  # leading, doubled inside, and trailing
        else:
            key = f"{s.prefix}{label}-{text}"
        objects[label] = s.new_object(kind, key=key)
    failures: list[str] = []
    for label, obj in objects.items():
        try:
            target_id = await s.applied(s.op("create", obj), obj)
            await s.expect_holds(kind, target_id, obj.attributes)
            again = await s.applied(s.op("create", obj), obj)
            if again != target_id:
                raise Failed(f"the second create reported {again!r}, the first {target_id!r}")
            await s.expect_one(obj, target_id)
            await s.applied_any(s.op("delete", obj, target_id=target_id), obj)
            await s.expect_gone(kind, target_id)
        except Failed as failure:
            failures.append(f"{label} ({obj.key!r}): {failure}")
    if failures:
        raise Failed("; ".join(failures))
    skipped = " (not leading/trailing spaces: the profile says the target trims them)"
    return f"{', '.join(cases)}: stored, matched again and deleted" + (
        skipped if s.profile.trims_spaces else ""
    )


async def members(s: Session, kind: str) -> str:
    """Group members are added, removed, and a redelivered change of members ends as once."""
    if not s.profile.members:
        raise NotRun("the profile says the connector keeps no group members")
    for needed in ("user", "group"):
        s.sample(needed)
    users = [s.new_object("user") for _ in range(2)]
    ids = [await s.applied(s.op("create", user), user) for user in users]
    group = s.new_object("group")
    everyone = {user.token: target_id for user, target_id in zip(users, ids, strict=True)}
    create = s.op("create", group, members_add=list(ids), members=everyone)
    group_id = await s.applied(create, group)
    await _expect_members(s, group_id, ids)
    remove = s.op(
        "update", group, target_id=group_id, members_remove=[ids[0]], members={users[1].token: ids[1]}
    )
    for _ in range(2):
        await s.applied(remove, group)
        await _expect_members(s, group_id, [ids[1]])
    add = s.op("update", group, target_id=group_id, members_add=[ids[0]], members=everyone)
    for _ in range(2):
        await s.applied(add, group)
        await _expect_members(s, group_id, ids)
    return "two members added, one removed (twice), added back (twice): the group held what was sent"


async def _expect_members(s: Session, group_id: str, expected: list[str]) -> None:
    got = await s.read("group", group_id)
    if got is None:
        raise Failed(f"group {group_id!r} is not in the target")
    held = got.get(MEMBERS) or []
    if sorted(held) != sorted(expected):
        raise Failed(f"group {group_id!r} has members {sorted(held)}, expected {sorted(expected)}")


def _shown(outcome: object) -> str:
    return describe(outcome) if isinstance(outcome, ConnectorError) else repr(outcome)
