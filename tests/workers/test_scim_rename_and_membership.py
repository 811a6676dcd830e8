"""A user renamed and dropped from a group in the same cycle, against a real SCIM server: a member is
named by the resource `id`, which a rename (a new `userName`) leaves as it is, so the group's removal
reaches the member in every order the two operations can meet: one batch, two batches, two workers,
and a redelivery of either."""

from __future__ import annotations

from typing import Any

import pytest

from queues.contracts import Operation
from tests.scim_server import ScimServer
from tests.workers.test_scim_connector import connector, op, server_get, unique
from workers.connectors.base import Applied

ORDERS = ["rename,leave", "leave,rename", "rename,rename,leave", "leave,rename,leave"]


async def people_and_group(scim: Any) -> tuple[list[str], list[str], str, str]:
    """Three users and a group of all three: their userNames, their ids, the group's id and name."""
    names = [unique() for _ in range(3)]
    users = [op("create", source_id=n, match=("userName", n), userName=n) for n in names]
    ids = [o.target_id for o in await scim.apply(users) if isinstance(o, Applied)]
    team = unique("team")
    (made,) = await scim.apply(
        [op("create", "group", match=("displayName", team), displayName=team, members_add=ids)]
    )
    assert isinstance(made, Applied) and made.target_id and len(ids) == 3
    return names, [i for i in ids if i], made.target_id, team


def operations(names: list[str], ids: list[str], group: str, team: str) -> dict[str, Operation]:
    renamed = f"{names[1]}-renamed"
    return {
        "rename": op(
            "update", source_id=names[1], target_id=ids[1], match=("userName", renamed), userName=renamed
        ),
        "leave": op(
            "update",
            "group",
            target_id=group,
            match=("displayName", team),
            displayName=team,
            members_remove=[ids[1]],
        ),
    }


async def members(server: ScimServer, group: str) -> set[str]:
    status, body = await server_get(server, f"/Groups/{group}")
    assert status == 200, body
    return {m["value"] for m in body.get("members") or []}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("how", ["one-batch", "two-batches", "two-workers"])
async def test_the_renamed_user_leaves_the_group_in_any_order(
    scim_server: ScimServer, order: str, how: str
) -> None:
    async with connector(scim_server.url) as one, connector(scim_server.url) as other:
        names, ids, group, team = await people_and_group(one)
        ops = operations(names, ids, group, team)
        sequence = [ops[name] for name in order.split(",")]
        if how == "one-batch":
            outcomes = await one.apply(sequence)
        else:
            outcomes = []
            for one_op in sequence:
                worker = other if how == "two-workers" and one_op.object_type == "group" else one
                outcomes += await worker.apply([one_op])
        assert all(isinstance(o, Applied) for o in outcomes), outcomes
        user_ids = [
            o.target_id for o, o_op in zip(outcomes, sequence, strict=True) if o_op.object_type == "user"
        ]
        assert set(user_ids) == {ids[1]}  # the rename keeps the id the group names the member by
    status, user = await server_get(scim_server, f"/Users/{ids[1]}")
    assert (status, user["userName"]) == (200, f"{names[1]}-renamed")
    assert await members(scim_server, group) == {ids[0], ids[2]}
