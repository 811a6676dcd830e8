"""The LDAP connector against a real OpenLDAP (a private slapd per test), driven with operations directly."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError, PermanentError, TransientError
from common.peers.ldap_names import same_dn
from queues.contracts import Operation
from tests.slapd import READER_DN, ROOT_DN, SUFFIX, Slapd, target_settings
from workers.config import parse_targets
from workers.connectors.base import Applied
from workers.connectors.ldap.connector import LdapConnector
from workers.connectors.ldap.settings import parse_ldap_settings

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
DISABLED = f"ou=disabled,{SUFFIX}"
_ids = itertools.count(1)

# Values that need escaping in a DN, in a filter, or both.
AWKWARD = [
    "Nuñez, Jr.",
    "a+b",
    'say "hi"',
    "#hash",
    "Zoë Ångström",
    "star*(paren)\\",
    " padded ",
    "semi;<x>=",
]


def settings(server: Slapd, **overrides: Any) -> dict[str, Any]:
    groups = {"member_chunk_size": 100, **overrides.pop("groups", {})}
    return target_settings(server, groups=groups, **overrides)


@pytest.fixture
async def connect(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    opened: list[LdapConnector] = []

    async def make(server: Slapd, **overrides: Any) -> LdapConnector:
        connector = LdapConnector("ldap", parse_ldap_settings("targets[0]", settings(server, **overrides)))
        await connector.open()
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        await connector.aclose()


def person(i: int | str, **extra: Any) -> dict[str, Any]:
    return {
        "userName": f"u{i}",
        "givenName": f"Given {i}",
        "familyName": f"Family {i}",
        "displayName": f"Given {i} Family {i}",
        "email": f"u{i}@example.org",
        **extra,
    }


def op(action: str, attributes: dict[str, Any], *, kind: str = "user", **fields: Any) -> Operation:
    source_id = fields.pop("source_id", str(attributes.get("userName") or attributes.get("displayName")))
    match = "userName" if kind == "user" else "displayName"
    value = attributes.get(match, fields.get("target_id"))
    return Operation(
        op_id=f"op-{next(_ids)}",
        job="job",
        target="ldap",
        cycle_id="c1",
        action=action,  # type: ignore[arg-type]
        object_type=kind,
        source_id=source_id,
        attributes=attributes,
        desired_hash="h",
        matching=[[match, value]] if match else [],
        **fields,
    )


def applied(outcomes: list[Any]) -> list[str]:
    for outcome in outcomes:
        assert isinstance(outcome, Applied), outcome
    return [outcome.target_id for outcome in outcomes]


def expected(attributes: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "uid": [attributes["userName"]],
        "givenname": [attributes["givenName"]],
        "sn": [attributes["familyName"]],
        "cn": [attributes["displayName"]],
        "mail": [attributes["email"]],
    }


def users_of(server: Slapd, base: str = SUFFIX) -> dict[str, dict[str, list[str]]]:
    return server.entries(base, "(objectClass=inetOrgPerson)")


def members_of(server: Slapd, group_dn: str, attribute: str = "member") -> set[str]:
    (entry,) = server.entries(group_dn, "(objectClass=*)", [attribute]).values()
    return set(entry.get(attribute.lower(), []))


async def test_creates_are_matched_first_so_a_redelivered_batch_duplicates_nothing(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd)
    people = [person(i) for i in range(150)]
    first = applied(await connector.apply([op("create", p) for p in people]))
    again = applied(await connector.apply([op("create", p) for p in people]))

    assert first == again == [f"uid=u{i},{PEOPLE}" for i in range(150)]
    entries = users_of(slapd)
    assert len(entries) == 150
    for p in people:
        entry = entries[f"uid={p['userName']},{PEOPLE}"]
        assert {k: entry[k] for k in expected(p)} == expected(p)
        assert entry["objectclass"] == ["inetOrgPerson"]


async def test_values_that_need_escaping_land_as_values_in_dns_and_filters(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd)
    people = [person(i, userName=name, displayName=name) for i, name in enumerate(AWKWARD)]
    dns = applied(await connector.apply([op("create", p) for p in people]))
    entries = users_of(slapd)
    assert len(entries) == len(AWKWARD)
    by_uid = {e["uid"][0]: (dn, e) for dn, e in entries.items()}
    for p, dn in zip(people, dns, strict=True):
        assert p["userName"].strip() in {u.strip() for u in by_uid}, p["userName"]
        stored_dn, entry = by_uid.get(p["userName"]) or by_uid[p["userName"].strip()]
        assert same_dn(stored_dn, dn)
        assert entry["cn"] == [p["displayName"]]

    # Matching finds each one by its value (no filter injection, no duplicate), and an edit lands.
    edited = [{**p, "email": f"new{i}@example.org"} for i, p in enumerate(people)]
    again = applied(await connector.apply([op("update", p) for p in edited]))
    assert [same_dn(a, b) for a, b in zip(again, dns, strict=True)] == [True] * len(AWKWARD)
    assert sorted(e["mail"][0] for e in users_of(slapd).values()) == sorted(p["email"] for p in edited)


async def test_an_update_modifies_only_what_changed(slapd: Slapd, connect: Callable[..., Any]) -> None:
    connector = await connect(slapd)
    applied(await connector.apply([op("create", person(i)) for i in range(3)]))
    before = slapd.entries(PEOPLE, "(uid=*)", ["entryCSN", "mail"])

    changed = person(1, email="changed@example.org")
    applied(await connector.apply([op("update", person(0)), op("update", changed), op("update", person(2))]))

    after = slapd.entries(PEOPLE, "(uid=*)", ["entryCSN", "mail"])
    assert after[f"uid=u0,{PEOPLE}"] == before[f"uid=u0,{PEOPLE}"]
    assert after[f"uid=u2,{PEOPLE}"] == before[f"uid=u2,{PEOPLE}"]
    assert after[f"uid=u1,{PEOPLE}"]["mail"] == ["changed@example.org"]
    assert after[f"uid=u1,{PEOPLE}"]["entrycsn"] != before[f"uid=u1,{PEOPLE}"]["entrycsn"]


@pytest.mark.parametrize("refint", [False, True], ids=["relinked-by-roster", "refint-overlay"])
async def test_a_rename_moves_the_entry_and_the_user_keeps_its_groups(
    slapd_factory: Callable[..., Slapd], connect: Callable[..., Any], refint: bool
) -> None:
    server = slapd_factory(refint=refint)
    connector = await connect(server)
    (old_dn,) = applied(await connector.apply([op("create", person(1), source_id="s1")]))
    (group_dn,) = applied(
        await connector.apply([op("create", {"displayName": "Staff"}, kind="group", members_add=[old_dn])])
    )

    renamed = person(1, userName="u1-renamed", email="renamed@example.org")
    (new_dn,) = applied(await connector.apply([op("update", renamed, source_id="s1", target_id=old_dn)]))

    assert new_dn == f"uid=u1-renamed,{PEOPLE}"
    entries = users_of(server)
    assert list(entries) == [new_dn]
    assert entries[new_dn]["uid"] == ["u1-renamed"]
    assert entries[new_dn]["mail"] == ["renamed@example.org"]
    assert {m.lower() for m in members_of(server, group_dn)} == {new_dn.lower()}


async def test_disable_sets_the_attribute_and_an_update_enables_again(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd)
    (dn,) = applied(await connector.apply([op("create", person(1))]))
    assert applied(await connector.apply([op("disable", {}, source_id="u1", target_id=dn)])) == [dn]
    assert users_of(slapd)[dn]["employeetype"] == ["disabled"]
    applied(await connector.apply([op("update", person(1), target_id=dn)]))
    assert "employeetype" not in users_of(slapd)[dn]


async def test_disable_by_moving_to_another_ou_and_back(slapd: Slapd, connect: Callable[..., Any]) -> None:
    connector = await connect(slapd, users={"disable": {"move_to": DISABLED}})
    (dn,) = applied(await connector.apply([op("create", person(1))]))
    (moved,) = applied(await connector.apply([op("disable", {}, source_id="u1", target_id=dn)]))
    assert moved == f"uid=u1,{DISABLED}"
    assert list(users_of(slapd)) == [moved]
    # A redelivered disable of the old DN finds the entry already moved.
    assert applied(await connector.apply([op("disable", {}, source_id="u1", target_id=dn)])) == [moved]
    (back,) = applied(await connector.apply([op("update", person(1), target_id=moved)]))
    assert back == dn and list(users_of(slapd)) == [dn]


async def test_a_user_left_disabled_is_added_under_the_disabled_ou_and_an_update_brings_it_back(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(
        slapd, users={"disable": {"attribute": "employeeType", "value": "disabled", "move_to": DISABLED}}
    )
    hidden = op("create", person(1), disabled=True)
    (dn,) = applied(await connector.apply([hidden]))
    assert dn == f"uid=u1,{DISABLED}"
    assert users_of(slapd)[dn]["employeetype"] == ["disabled"]
    assert applied(await connector.apply([hidden])) == [dn]  # a retry: matched there, left there
    # An enabled user already there, created again to be left disabled: moved and marked.
    (enabled,) = applied(await connector.apply([op("create", person(2))]))
    (moved,) = applied(await connector.apply([op("create", person(2), disabled=True)]))
    assert (enabled, moved) == (f"uid=u2,{PEOPLE}", f"uid=u2,{DISABLED}")
    # An update to be left disabled changes attributes in place; one without the flag moves it back.
    changed = person(1, email="new@example.org")
    assert applied(await connector.apply([op("update", changed, target_id=dn, disabled=True)])) == [dn]
    assert users_of(slapd)[dn]["mail"] == ["new@example.org"]
    (back,) = applied(await connector.apply([op("update", changed, target_id=dn)]))
    assert back == f"uid=u1,{PEOPLE}"
    assert sorted(users_of(slapd)) == sorted([back, moved])
    assert "employeetype" not in users_of(slapd)[back]
    assert users_of(slapd)[moved]["employeetype"] == ["disabled"]


async def test_an_operation_left_disabled_where_nothing_can_be_disabled_fails_before_it_writes(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd, users={"disable": None})
    (dn,) = applied(await connector.apply([op("create", person(1))]))
    refused = await connector.apply(
        [
            op("create", person(2), disabled=True),
            op("update", person(1, email="new@example.org"), target_id=dn, disabled=True),
            op("create", {"displayName": "Staff"}, kind="group", disabled=True),
        ]
    )
    assert all(isinstance(o, PermanentError) for o in refused), refused
    assert [o.code for o in refused[:2]] == ["config", "config"]
    assert "users.disable" in refused[0].message and "group" in refused[2].message
    assert list(users_of(slapd)) == [dn] and users_of(slapd)[dn]["mail"] == ["u1@example.org"]
    assert slapd.entries(GROUPS, "(objectClass=groupOfNames)") == {}


async def test_delete_removes_the_entry_and_its_memberships_and_a_missing_one_counts_as_done(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd)
    dns = applied(await connector.apply([op("create", person(i)) for i in range(2)]))
    (group_dn,) = applied(
        await connector.apply([op("create", {"displayName": "Staff"}, kind="group", members_add=dns)])
    )
    gone = [op("delete", {}, source_id="u0", target_id=dns[0])]
    assert applied(await connector.apply(gone)) == [dns[0]]
    assert applied(await connector.apply(gone)) == [dns[0]]
    assert list(users_of(slapd)) == [dns[1]]
    assert members_of(slapd, group_dn) == {dns[1]}


@pytest.mark.parametrize("object_class", ["groupOfNames", "groupOfUniqueNames"])
async def test_group_members_are_added_and_removed_in_chunks_and_an_empty_group_keeps_a_stand_in(
    slapd: Slapd, connect: Callable[..., Any], object_class: str
) -> None:
    attribute = "member" if object_class == "groupOfNames" else "uniqueMember"
    connector = await connect(slapd, groups={"object_classes": [object_class]})
    dns = applied(await connector.apply([op("create", person(i)) for i in range(250)]))
    create = op("create", {"displayName": "Big, Group"}, kind="group", members_add=dns[:230])
    (group_dn,) = applied(await connector.apply([create]))
    assert members_of(slapd, group_dn, attribute) == set(dns[:230])

    change = op(
        "update", {"displayName": "Big, Group"}, kind="group", target_id=group_dn,
        members_add=dns[200:], members_remove=dns[:150],
    )  # fmt: skip
    applied(await connector.apply([change]))
    assert members_of(slapd, group_dn, attribute) == set(dns[150:])
    applied(await connector.apply([change]))  # redelivered: the same membership
    assert members_of(slapd, group_dn, attribute) == set(dns[150:])

    empty = op("update", {"displayName": "Big, Group"}, kind="group", target_id=group_dn, members_remove=dns)
    applied(await connector.apply([empty]))
    assert members_of(slapd, group_dn, attribute) == {ROOT_DN}
    refill = op(
        "update", {"displayName": "Big, Group"}, kind="group", target_id=group_dn, members_add=dns[:2]
    )
    applied(await connector.apply([refill]))
    assert members_of(slapd, group_dn, attribute) == set(dns[:2])


async def test_membership_changes_already_made_are_sent_again_harmlessly(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd)
    dns = applied(await connector.apply([op("create", person(i)) for i in range(5)]))
    (group_dn,) = applied(await connector.apply([op("create", {"displayName": "G"}, kind="group")]))
    assert members_of(slapd, group_dn) == {ROOT_DN}
    partly = op("update", {"displayName": "G"}, kind="group", target_id=group_dn, members_add=dns[1:3])
    applied(await connector.apply([partly]))
    more = op(
        "update", {"displayName": "G"}, kind="group", target_id=group_dn,
        members_add=dns[:4], members_remove=[dns[4]],
    )  # fmt: skip
    applied(await connector.apply([more]))
    assert members_of(slapd, group_dn) == set(dns[:4])


async def test_refusals_are_permanent_with_the_servers_message(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd)
    no_sn = person(1)
    del no_sn["familyName"]  # inetOrgPerson must have sn: object class violation
    bad_syntax = person(2, email="x", telephoneNumber="not a phone ☎")  # telephoneNumber is PrintableString
    unknown = person(3, favouriteColour="blue")  # no such attribute type
    outcomes = await connector.apply([op("create", no_sn), op("create", bad_syntax), op("create", unknown)])
    assert all(isinstance(o, PermanentError) for o in outcomes), outcomes
    assert [o.code for o in outcomes] == ["65", "21", "17"]
    assert "sn" in outcomes[0].message and "objectClassViolation" in outcomes[0].message
    assert users_of(slapd) == {}


async def test_insufficient_access_is_permanent(slapd: Slapd, connect: Callable[..., Any]) -> None:
    connector = await connect(slapd, bind_dn=READER_DN, bind_password=slapd.reader_password)
    (outcome,) = await connector.apply([op("create", person(1))])
    assert isinstance(outcome, PermanentError) and outcome.code == "50"
    assert "insufficientAccessRights" in outcome.message


async def test_a_wrong_password_is_permanent_and_never_shown(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    secret = "wrong-secret-123"
    connector = await connect(slapd, bind_password=secret)
    (outcome,) = await connector.apply([op("create", person(1))])
    assert isinstance(outcome, PermanentError) and outcome.code == "49"
    assert secret not in outcome.message and secret not in repr(connector.settings)


async def test_a_stopped_server_is_transient_and_the_pool_reconnects(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd, pool_size=2)
    applied(await connector.apply([op("create", person(i)) for i in range(4)]))
    slapd.stop()
    outcomes = await connector.apply([op("create", person(i)) for i in range(4, 8)])
    assert all(isinstance(o, TransientError) for o in outcomes), outcomes
    slapd.start()
    applied(await connector.apply([op("create", person(i)) for i in range(8)]))
    assert len(users_of(slapd)) == 8


async def test_stopping_the_server_mid_batch_then_retrying_converges_without_duplicates(
    slapd: Slapd, connect: Callable[..., Any]
) -> None:
    connector = await connect(slapd, pool_size=4)
    ops = [op("create", person(i)) for i in range(1500)]
    applying = asyncio.ensure_future(connector.apply(ops))
    await asyncio.sleep(0.3)
    slapd.stop()
    outcomes = await applying
    failed = [o for o, outcome in zip(ops, outcomes, strict=True) if not isinstance(outcome, Applied)]
    assert all(isinstance(o, TransientError) for o in outcomes if not isinstance(o, Applied))
    assert failed, "the server stopped after the batch was done; stop it sooner"
    slapd.start()
    applied(await connector.apply(failed))
    entries = users_of(slapd)
    assert sorted(entries) == sorted(f"uid=u{i},{PEOPLE}" for i in range(1500))


@pytest.mark.parametrize("mode", ["ldaps", "start_tls"])
async def test_tls_with_a_ca_file(slapd: Slapd, connect: Callable[..., Any], mode: str) -> None:
    tls = {"url": slapd.ldaps_url} if mode == "ldaps" else {"start_tls": True}
    connector = await connect(slapd, ca_file=str(slapd.ca_file), **tls)
    applied(await connector.apply([op("create", person(1))]))
    assert list(users_of(slapd)) == [f"uid=u1,{PEOPLE}"]


async def test_tls_without_the_ca_is_refused(slapd: Slapd, connect: Callable[..., Any]) -> None:
    connector = await connect(slapd, url=slapd.ldaps_url)
    (outcome,) = await connector.apply([op("create", person(1))])
    assert not isinstance(outcome, Applied)
    assert users_of(slapd) == {}


def test_settings_errors_name_the_key_and_the_fix(tmp_path: Path, slapd: Slapd) -> None:
    raw = {"targets": [{"name": "dir", "type": "ldap", **settings(slapd)}]}
    (target,) = parse_targets(raw, base_dir=tmp_path)
    assert isinstance(target.runtime().connector, LdapConnector)
    assert slapd.password not in repr(target)

    cases = [
        ({"url": "http://x"}, "targets[0].url", "ldap:// or ldaps://"),
        ({"users": {"dn": "uid={userName},,dc=x"}}, "targets[0].users.dn", "DN"),
        ({"groups": {"object_classes": ["posixGroup"]}}, "targets[0].groups.object_classes", "groupOfNames"),
        ({"users": {"disable": {"value": "x"}}}, "targets[0].users.disable", "move_to"),
        ({"ca_file": "missing.pem"}, "targets[0].ca_file", "no file"),
        ({"bind_pasword": "x"}, "targets[0].bind_pasword", "bind_password"),
    ]
    for override, where, words in cases:
        bad = {"name": "dir", "type": "ldap", **settings(slapd, **override)}
        with pytest.raises(ConfigError) as caught:
            parse_targets({"targets": [bad]}, base_dir=tmp_path)
        assert where in str(caught.value) and words in str(caught.value), str(caught.value)
        assert slapd.password not in str(caught.value)


async def test_a_ca_file_gone_since_the_settings_were_read_fails_the_batch_permanently(
    slapd: Slapd, connect: Callable[..., Any], tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(slapd.ca_file.read_bytes())
    connector = await connect(slapd, url=slapd.ldaps_url, ca_file=str(ca_file))
    ca_file.unlink()
    outcomes = await connector.apply([op("create", person(1)), op("create", person(2))])
    assert [(type(o).__name__, o.code) for o in outcomes] == [("PermanentError", "tls")] * 2
    assert "TLS settings" in outcomes[0].message
    assert users_of(slapd) == {}
