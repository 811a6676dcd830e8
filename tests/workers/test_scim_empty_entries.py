"""Entries of typed multi-valued attributes that would hold nothing, against a real SCIM server.

A person without a work mail must not get `emails: [{"type": "work"}]`, and an entry whose value is
emptied must go, on every write path: the create (POST), the PATCH and the PUT. Each check reads the
user back from the server, bypassing the connector.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.scim_server import ScimServer
from tests.workers.test_scim_connector import applied, connector, op, server_get, server_post, unique

# Every typed multi-valued attribute of the core User schema, with a value the server accepts.
FULL: dict[str, Any] = {
    'emails[type eq "work"].value': "ada@example.org",
    'phoneNumbers[type eq "work"]': "+44 20 7946 0000",
    'addresses[type eq "work"].streetAddress': "12 St James's Square",
    'addresses[type eq "work"].locality': "London",
    'addresses[type eq "work"].postalCode': "SW1Y 4JH",
    'ims[type eq "xmpp"].value': "ada@jabber.example.org",
    'photos[type eq "photo"].value': "https://example.org/ada.jpg",
    'x509Certificates[type eq "work"].value': "TUlJQg==",
    'entitlements[type eq "work"].value': "analytical-engine",
    'roles[type eq "work"].value': "mathematician",
}
# The same paths emptied, as a source without the values maps them: None or "".
EMPTY: dict[str, Any] = {path: (None if i % 2 else "") for i, path in enumerate(FULL)}
TYPED = ("emails", "phoneNumbers", "addresses", "ims", "photos", "x509Certificates", "entitlements", "roles")


def typed_of(user: dict[str, Any]) -> dict[str, Any]:
    """The user's typed multi-valued attributes, as the server holds them."""
    return {name: user[name] for name in TYPED if name in user}


async def read(server: ScimServer, user_id: str) -> dict[str, Any]:
    status, user = await server_get(server, f"/Users/{user_id}")
    assert status == 200, user
    return user


async def test_a_create_sends_no_entry_for_an_empty_value(scim_server: ScimServer) -> None:
    name = unique()
    attrs = {
        "userName": name,
        **EMPTY,
        'emails[type eq "work"].display': "Work",  # beside no value: still nothing worth an entry
        'addresses[type eq "home"].locality': "Marylebone",  # one sub-attribute is enough for an address
        'addresses[type eq "home"].region': None,
    }
    async with connector(scim_server.url) as scim:
        (created,) = await scim.apply([op("create", match=("userName", name), attrs=attrs)])
    user = await read(scim_server, applied(created))
    assert typed_of(user) == {"addresses": [{"type": "home", "locality": "Marylebone"}]}


async def test_a_whole_attribute_value_loses_its_empty_entries(scim_server: ScimServer) -> None:
    name = unique()
    emails = [
        {"type": "work", "value": None},
        {"type": "home", "value": "ada@home.example.org", "display": ""},
    ]
    async with connector(scim_server.url) as scim:
        (created,) = await scim.apply(
            [
                op(
                    "create",
                    match=("userName", name),
                    userName=name,
                    emails=emails,
                    phoneNumbers=[{"type": "x"}],
                )
            ]
        )
    user = await read(scim_server, applied(created))
    assert typed_of(user) == {"emails": [{"type": "home", "value": "ada@home.example.org"}]}


@pytest.mark.parametrize("update_method", ["patch", "put"])
async def test_an_emptied_value_removes_its_entry(scim_server: ScimServer, update_method: str) -> None:
    name = unique()
    async with connector(scim_server.url, update_method=update_method) as scim:
        (created,) = await scim.apply(
            [op("create", match=("userName", name), attrs={"userName": name, **FULL})]
        )
        user_id = applied(created)
        assert set(typed_of(await read(scim_server, user_id))) == set(TYPED)

        # The street goes, the rest of the address stays.
        partial = {**FULL, 'addresses[type eq "work"].streetAddress': None}
        (updated,) = await scim.apply([op("update", target_id=user_id, attrs={"userName": name, **partial})])
        assert applied(updated) == user_id
        user = await read(scim_server, user_id)
        assert user["addresses"] == [{"type": "work", "locality": "London", "postalCode": "SW1Y 4JH"}]

        (emptied,) = await scim.apply([op("update", target_id=user_id, attrs={"userName": name, **EMPTY})])
        assert applied(emptied) == user_id
        assert typed_of(await read(scim_server, user_id)) == {}

        sent = scim.requests_sent
        (again,) = await scim.apply([op("update", target_id=user_id, attrs={"userName": name, **EMPTY})])
        assert applied(again) == user_id
        assert scim.requests_sent - sent == 1  # the GET: nothing left to remove, so no write


@pytest.mark.parametrize("update_method", ["patch", "put"])
async def test_an_empty_entry_already_in_the_target_is_removed(
    scim_server: ScimServer, update_method: str
) -> None:
    """Entries that hold nothing, as earlier versions wrote them, go at the next update that maps them."""
    name = unique()
    junk = {
        "emails": [{"type": "work"}],
        "addresses": [{"type": "work"}, {"type": "home", "locality": "Bath"}],
    }
    user = await server_post(scim_server, "/Users", {"userName": name, **junk})
    assert typed_of(await read(scim_server, user["id"])) == junk
    attrs = {
        "userName": name,
        'emails[type eq "work"].value': None,
        'addresses[type eq "work"].locality': "",
        'addresses[type eq "home"].locality': "Bath",
    }
    async with connector(scim_server.url, update_method=update_method) as scim:
        (updated,) = await scim.apply([op("update", target_id=user["id"], attrs=attrs)])
    assert applied(updated) == user["id"]
    assert typed_of(await read(scim_server, user["id"])) == {
        "addresses": [{"type": "home", "locality": "Bath"}]
    }
