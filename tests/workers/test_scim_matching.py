"""How the SCIM connector looks an object up before it writes, seen through a recording proxy in front
of a real SCIM server: one `attr eq "value"` filter per matching attribute, in precedence order,
stopping at the first hit. Never an `or`: many services (AWS IAM Identity Center among them) read only
`eq` and `and`, and scim2-server scans every user for an `or` while it indexes a single `eq`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from common.errors import PermanentError
from tests.fault_proxy import FaultProxy
from tests.scim_server import ScimServer
from tests.workers.test_scim_connector import applied, connector, listed, op, server_get, server_post, unique

StartProxy = Callable[..., Awaitable[FaultProxy]]


def asked(proxy: FaultProxy) -> list[tuple[str, str]]:
    """Each request since the last `clear`: its method and path, or for a search, its filter."""
    seen = []
    for hit in proxy.hits:
        filters = parse_qs(hit.query).get("filter")
        seen.append((hit.method, f"filter {filters[0]}" if filters else hit.path))
    proxy.hits.clear()
    return seen


def eq(name: str, value: str) -> tuple[str, str]:
    return ("GET", f"filter {name} eq {json.dumps(value)}")


async def test_users_are_looked_up_one_eq_at_a_time_in_precedence_order(
    scim_server: ScimServer, fault_proxy: StartProxy
) -> None:
    proxy = await fault_proxy(scim_server.root)
    name, external, renamed = unique(), unique("e"), unique()
    other = await server_post(scim_server, "/Users", {"userName": unique(), "externalId": unique("e")})
    async with connector(f"{proxy.url}/v2") as scim:  # matching: userName, then externalId
        # Nobody holds either: both asked, in order, then the POST.
        create = op("create", match=("userName", name), userName=name, externalId=external)
        user_id = applied((await scim.apply([create]))[0])
        assert asked(proxy) == [eq("userName", name), eq("externalId", external), ("POST", "/v2/Users")]

        # Found on the first: the second is never asked.
        (again,) = await scim.apply(
            [op("create", match=("userName", name), userName=name, externalId=external)]
        )
        assert applied(again) == user_id
        assert asked(proxy) == [eq("userName", name)]  # and nothing differs: no PATCH

        # Not found on the first, found on the second: that user, renamed.
        rename = op("create", match=("userName", renamed), userName=renamed, externalId=external)
        assert applied((await scim.apply([rename]))[0]) == user_id
        assert asked(proxy) == [
            eq("userName", renamed),
            eq("externalId", external),
            ("PATCH", f"/v2/Users/{user_id}"),
        ]

        # The operation's own matching pairs come before the target's list.
        first = op(
            "update", matching=[("externalId", other["externalId"])], userName=other["userName"], title="X"
        )
        assert applied((await scim.apply([first]))[0]) == other["id"]
        assert asked(proxy) == [eq("externalId", other["externalId"]), ("PATCH", f"/v2/Users/{other['id']}")]

        # A delete without a target id looks up the same way.
        (deleted,) = await scim.apply([op("delete", match=("userName", renamed))])
        assert applied(deleted) == user_id
        assert asked(proxy) == [eq("userName", renamed), ("DELETE", f"/v2/Users/{user_id}")]
    assert (await server_get(scim_server, f"/Users/{user_id}"))[0] == 404
    assert await listed(scim_server, "/Users", f'externalId eq "{external}"') == []


async def test_groups_are_looked_up_one_eq_at_a_time_in_precedence_order(
    scim_server: ScimServer, fault_proxy: StartProxy
) -> None:
    proxy = await fault_proxy(scim_server.root)
    source, name = unique("g"), unique("Team ")
    async with connector(f"{proxy.url}/v2") as scim:  # matching: externalId (the source id), displayName
        (created,) = await scim.apply([op("create", "group", source_id=source, displayName=name)])
        group_id = applied(created)
        assert asked(proxy) == [eq("externalId", source), eq("displayName", name), ("POST", "/v2/Groups")]
        (again,) = await scim.apply([op("create", "group", source_id=source, displayName=name)])
        assert applied(again) == group_id
        assert asked(proxy) == [eq("externalId", source)]
    assert [g["id"] for g in await listed(scim_server, "/Groups", f'externalId eq "{source}"')] == [group_id]


async def test_duplicates_on_a_later_attribute_are_still_a_permanent_error(scim_server: ScimServer) -> None:
    external = unique("e")
    for _ in range(2):
        await server_post(scim_server, "/Users", {"userName": unique(), "externalId": external})
    name = unique()
    async with connector(scim_server.url) as scim:
        (outcome,) = await scim.apply(
            [op("create", match=("userName", name), userName=name, externalId=external)]
        )
    assert isinstance(outcome, PermanentError) and outcome.code == "duplicate"
    assert "externalId" in outcome.message
    assert await listed(scim_server, "/Users", f'userName eq "{name}"') == []


WORK_MAIL = 'emails[type eq "work"].value'


async def test_a_typed_entry_is_looked_up_with_a_plain_eq_and_its_type_checked_on_the_answer(
    scim_server: ScimServer, fault_proxy: StartProxy
) -> None:
    """`emails[type eq "work" and value eq "x"]` is refused by services that read only `eq` and `and`
    (AWS IAM Identity Center): the lookup asks `emails.value eq "x"` and keeps the answers whose work
    entry holds it."""
    proxy = await fault_proxy(scim_server.root)
    mail = f"{unique('m')}@example.org"
    home = await server_post(
        scim_server, "/Users", {"userName": unique(), "emails": [{"type": "home", "value": mail}]}
    )
    async with connector(f"{proxy.url}/v2") as scim:
        # Someone holds the address, but as their home address: not a match, a new user.
        name = unique()
        create = op("create", match=(WORK_MAIL, mail.upper()), userName=name, attrs={WORK_MAIL: mail})
        user_id = applied((await scim.apply([create]))[0])
        assert user_id != home["id"]
        assert asked(proxy) == [eq("emails.value", mail.upper()), eq("userName", name), ("POST", "/v2/Users")]

        # Now the new user holds it as a work address: found on it, updated, never created again.
        again = op(
            "update", match=(WORK_MAIL, mail), userName=name, title="Engineer", attrs={WORK_MAIL: mail}
        )
        assert applied((await scim.apply([again]))[0]) == user_id
        assert asked(proxy) == [eq("emails.value", mail), ("PATCH", f"/v2/Users/{user_id}")]

    holders = await listed(scim_server, "/Users", f'emails.value eq "{mail}"')
    assert sorted(u["id"] for u in holders) == sorted([home["id"], user_id])
    assert (await server_get(scim_server, f"/Users/{home['id']}"))[1].get("title") is None
