"""A person renamed (the name feeds the DN) and dropped from a group, the two operations meeting in every
order a real deployment can give them: one batch, two batches, two workers, and a retry of either. The
group operation was planned before the rename's result came in, so it removes the *old* DN; whatever
the order, the group must end without the person, read back from a real slapd, with and without refint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ldap3
import pytest

from common.peers.ldap_names import dn_key
from queues.contracts import Operation
from tests.slapd import ROOT_DN, Slapd
from tests.workers.test_ldap_connector import GROUPS, PEOPLE, applied, connect, members_of, op, person

__all__ = ["connect"]  # the fixture, used by name

REFINT = pytest.mark.parametrize("refint", [False, True], ids=["relinked-by-roster", "refint-overlay"])


async def setup(server: Slapd, connector: Any) -> tuple[list[str], str]:
    """Three people and a group of all three; their DNs and the group's."""
    dns = applied(await connector.apply([op("create", person(i), source_id=f"s{i}") for i in range(3)]))
    (group,) = applied(
        await connector.apply([op("create", {"displayName": "Staff"}, kind="group", members_add=dns)])
    )
    return dns, group


def rename(old_dn: str) -> Operation:
    return op("update", person(1, userName="u1-renamed"), source_id="s1", target_id=old_dn)


def leave(group: str, dns: list[str], dn: str) -> Operation:
    """The group's update that drops `dn`, as the engine plans it."""
    kept = {f"s{i}": d for i, d in enumerate(dns) if d != dn}
    return op(
        "update", {"displayName": "Staff"}, kind="group", target_id=group, members_remove=[dn], members=kept
    )


def held(server: Slapd, group: str) -> set[str]:
    return {dn_key(m) for m in members_of(server, group)}


def without_person_1(dns: list[str]) -> set[str]:
    return {dn_key(dns[0]), dn_key(dns[2])}


@REFINT
@pytest.mark.parametrize("rename_first", [True, False], ids=["rename-first", "leave-first"])
async def test_in_one_batch(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Any], refint: bool, rename_first: bool
) -> None:
    server = slapd_factory(refint=refint)
    connector = await connect(server, pool_size=1)  # one chunk: the batch runs in its order
    dns, group = await setup(server, connector)
    ops = [rename(dns[1]), leave(group, dns, dns[1])]
    applied(await connector.apply(ops if rename_first else ops[::-1]))
    assert held(server, group) == without_person_1(dns)


@REFINT
@pytest.mark.parametrize("rename_first", [True, False], ids=["rename-first", "leave-first"])
async def test_in_two_batches(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Any], refint: bool, rename_first: bool
) -> None:
    server = slapd_factory(refint=refint)
    connector = await connect(server)
    dns, group = await setup(server, connector)
    ops = [rename(dns[1]), leave(group, dns, dns[1])]
    for one in ops if rename_first else ops[::-1]:
        applied(await connector.apply([one]))
    assert held(server, group) == without_person_1(dns)


@REFINT
async def test_on_two_workers_the_engines_second_look_removes_the_new_dn(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Any], refint: bool
) -> None:
    """Another worker renamed the person: this one cannot know the new DN, so the old one is all it
    removes; the engine then sees the new target id and removes it (`engine.core.membership`)."""
    server = slapd_factory(refint=refint)
    one, other = await connect(server), await connect(server)
    dns, group = await setup(server, one)
    (new_dn,) = applied(await one.apply([rename(dns[1])]))
    applied(await other.apply([leave(group, dns, dns[1])]))
    applied(await other.apply([leave(group, dns, new_dn)]))  # the removal the engine plans next
    assert held(server, group) == without_person_1(dns)


@REFINT
@pytest.mark.parametrize("repeated", ["rename", "leave"])
async def test_a_redelivered_operation_changes_nothing_more(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Any], refint: bool, repeated: str
) -> None:
    server = slapd_factory(refint=refint)
    connector = await connect(server)
    dns, group = await setup(server, connector)
    user_op, group_op = rename(dns[1]), leave(group, dns, dns[1])
    sequence = [user_op, user_op, group_op] if repeated == "rename" else [group_op, user_op, group_op]
    for one in sequence:
        applied(await connector.apply([one]))
    assert held(server, group) == without_person_1(dns)
    assert {dn_key(d) for d in server.entries(PEOPLE, "(objectClass=inetOrgPerson)")} == {
        dn_key(dns[0]),
        dn_key(f"uid=u1-renamed,{PEOPLE}"),
        dn_key(dns[2]),
    }


@REFINT
async def test_a_retry_after_a_rename_whose_result_was_lost_relinks_and_the_leave_still_lands(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Any], refint: bool
) -> None:
    """The first try renamed the entry and died before relinking (only refint rewrote the group). The
    retry finds the entry at its new DN, relinks what still lists the old one, and the group's removal of
    the old DN then reaches the new one."""
    server = slapd_factory(refint=refint)
    connector = await connect(server)
    dns, group = await setup(server, connector)
    conn = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), ROOT_DN, server.password)
    conn.bind()
    assert conn.modify_dn(dns[1], "uid=u1-renamed"), conn.result
    conn.unbind()
    new_dn = f"uid=u1-renamed,{PEOPLE}"
    # slapd's refint rewrites the referring entries in a task of its own, after the rename answered.
    expected, deadline = dn_key(dns[1] if not refint else new_dn), time.monotonic() + 10
    while expected not in held(server, group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert expected in held(server, group)

    assert applied(await connector.apply([rename(dns[1])])) == [new_dn]
    assert held(server, group) == {*without_person_1(dns), dn_key(new_dn)}  # relinked, not lost
    applied(await connector.apply([leave(group, dns, dns[1])]))
    assert held(server, group) == without_person_1(dns)
    assert GROUPS in group
