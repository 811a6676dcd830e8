"""The LDAP connector's `flavor: active_directory` against a real AD DC (a private Samba per test): accounts
enabled with initial passwords their users bind with, unique sAMAccountNames in the whole domain, moves
across OUs that keep group memberships, large groups in chunks and ranges, leavers disabled, and AD's
errors in words. Everything is read back from AD with a connection of our own."""

from __future__ import annotations

import csv
import itertools
import json
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from common.errors import ConfigError, PermanentError
from queues.contracts import Operation
from tests.integration.pipeline import pipeline
from tests.samba import BASE_DN, BULK_OU, SambaDC
from workers.connectors.base import Applied
from workers.connectors.ldap import ad_members
from workers.connectors.ldap.ad_connector import ActiveDirectoryConnector
from workers.connectors.ldap.check import check_ldap_target
from workers.connectors.ldap.pool import Session
from workers.connectors.ldap.settings import parse_ldap_settings

_ids = itertools.count(1)
UAC_ENABLED = 512
UAC_DISABLED = 514


def ous(dc: SambaDC) -> dict[str, str]:
    people = f"OU=People,{dc.base_dn}"
    return {
        "people": people,
        "sales": f"OU=Sales,{people}",
        "support": f"OU=Support,{people}",
        "groups": f"OU=Groups,{dc.base_dn}",
        "leavers": f"OU=Leavers,{dc.base_dn}",
    }


def admin(dc: SambaDC) -> ldap3.Connection:
    """A connection of our own, to read back what the connector wrote."""
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file))
    server = ldap3.Server(dc.address, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(
        server,
        user=dc.admin,
        password=dc.password,
        auto_bind=True,
        check_names=False,
        raise_exceptions=False,
        return_empty_attributes=False,
    )


@pytest.fixture
def directory(samba_dc: SambaDC) -> Iterator[ldap3.Connection]:
    """The DC with its OUs made, and a connection of our own to it."""
    conn = admin(samba_dc)
    for dn in ous(samba_dc).values():
        assert conn.add(dn, ["organizationalUnit"]), conn.result
    yield conn
    conn.unbind()


def settings(dc: SambaDC, **overrides: Any) -> dict[str, Any]:
    base = dc.base_dn
    users = {
        "dn": f"CN={{displayName}},OU={{department}},OU=People,{base}",
        "attributes": {"userName": "sAMAccountName", "upn": "userPrincipalName", "familyName": "sn"},
        "match": "employeeID",
        "password": {"attribute": "initialPassword"},
        **overrides.pop("users", {}),
    }
    groups = {
        "dn": f"CN={{displayName}},OU=Groups,{base}",
        "attributes": {"displayName": "cn"},
        "base": f"OU=Groups,{base}",
        **overrides.pop("groups", {}),
    }
    return {
        "flavor": "active_directory",
        "url": dc.ldaps_url,
        "ca_file": str(dc.ca_file),
        "bind_dn": f"CN=Administrator,CN=Users,{base}",
        "bind_password": dc.password,
        "base_dn": base,
        "users": users,
        "groups": groups,
        **overrides,
    }


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    opened: list[ActiveDirectoryConnector] = []

    async def make(dc: SambaDC, **overrides: Any) -> ActiveDirectoryConnector:
        parsed = parse_ldap_settings("targets[0]", settings(dc, **overrides), base_dir=Path("/"))
        connector = ActiveDirectoryConnector("ad", parsed)
        await connector.open()
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        await connector.aclose()


def password_of(i: int) -> str:
    return f"Initial-{i:05d}-Pw!"


def person(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "employeeID": f"E{i:05d}",
        "userName": f"user{i}",
        "upn": f"user{i}@roster.test",
        "givenName": f"Given{i}",
        "familyName": f"Family{i}",
        "displayName": f"Given{i} Family{i}",
        "department": "Sales" if i % 2 == 0 else "Support",
        "initialPassword": password_of(i),
        **extra,
    }


def op(action: str, attributes: dict[str, Any], *, kind: str = "user", **fields: Any) -> Operation:
    match = "employeeID" if kind == "user" else "displayName"
    return Operation(
        op_id=f"op-{next(_ids)}",
        job="job",
        target="ad",
        cycle_id="c1",
        action=action,  # type: ignore[arg-type]
        object_type=kind,
        source_id=str(attributes.get(match) or fields.get("target_id")),
        attributes=attributes,
        desired_hash="h",
        matching=[[match, attributes[match]]] if match in attributes else [],
        **fields,
    )


def applied(outcomes: list[Any]) -> list[str]:
    for outcome in outcomes:
        assert isinstance(outcome, Applied), outcome
    return [outcome.target_id for outcome in outcomes]


def read(conn: ldap3.Connection, base: str, query: str, attributes: list[str]) -> dict[str, dict[str, Any]]:
    """Entries under `base` by DN, each attribute's values as text (objectGUID as AD's id)."""
    found = conn.extend.standard.paged_search(
        base, query, attributes=attributes, paged_size=1000, generator=False
    )
    out = {}
    for item in found:
        if item.get("type") != "searchResEntry":
            continue
        raw = item["raw_attributes"]
        out[item["dn"]] = {
            k.lower(): [v.decode("utf-8", "replace") if k.lower() != "objectguid" else v for v in vs]
            for k, vs in raw.items()
        }
    return out


def binds(dc: SambaDC, user: str, password: str) -> bool:
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file))
    server = ldap3.Server(dc.address, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, user=user, password=password, raise_exceptions=False)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


PEOPLE = 2000
SAMPLE_BINDS = 20


def no_password_in(texts: list[str], passwords: list[str]) -> None:
    leaked = [p for p in passwords if any(p in t for t in texts)]
    assert leaked == [], f"{len(leaked)} passwords appear in logs or results"


@pytest.mark.timeout(300)  # ~50 s alone: Samba hashes each password (~25 ms of one core); more under load
async def test_2000_people_are_created_enabled_with_initial_passwords_they_bind_with(
    samba_dc: SambaDC,
    directory: ldap3.Connection,
    connect: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    connector = await connect(samba_dc, pool_size=4)
    people = [person(i) for i in range(PEOPLE)]
    started = time.monotonic()
    outcomes = []
    for at in range(0, PEOPLE, 200):  # as a worker gets them: batches
        outcomes += await connector.apply([op("create", p) for p in people[at : at + 200]])
    elapsed = time.monotonic() - started
    ids = applied(outcomes)
    assert len(set(ids)) == PEOPLE and all(i.startswith("<GUID=") for i in ids)

    found = read(
        directory, ous(samba_dc)["people"], "(objectClass=user)", ["employeeID", "userAccountControl"]
    )
    assert sorted(e["employeeid"][0] for e in found.values()) == sorted(p["employeeID"] for p in people)
    assert {int(e["useraccountcontrol"][0]) for e in found.values()} == {UAC_ENABLED}
    for p in people[:: PEOPLE // SAMPLE_BINDS]:
        assert binds(samba_dc, p["upn"], p["initialPassword"]), p["upn"]
    assert not binds(samba_dc, people[1]["upn"], "Not-The-Password-1")

    again = applied(await connector.apply([op("create", p) for p in people[:50]]))  # redelivered: matched
    assert again == ids[:50]
    texts = [r.getMessage() for r in caplog.records] + [repr(o) for o in outcomes] + [caplog.text]
    no_password_in(texts, [p["initialPassword"] for p in people])
    print(f"\n{PEOPLE} people with passwords in {elapsed:.1f}s ({PEOPLE / elapsed:.0f}/s)")


async def test_generated_passwords_meet_the_policy_and_must_be_changed_at_first_logon(
    samba_dc: SambaDC, directory: ldap3.Connection, connect: Callable[..., Any]
) -> None:
    users = {"password": {"generate": True, "length": 16}, "must_change_password": True}
    connector = await connect(samba_dc, users=users)
    rows = [person(i, initialPassword=None) for i in range(5)]
    applied(await connector.apply([op("create", {k: v for k, v in p.items() if v}) for p in rows]))
    found = read(
        directory, ous(samba_dc)["people"], "(objectClass=user)", ["userAccountControl", "pwdLastSet"]
    )
    assert [(e["useraccountcontrol"], e["pwdlastset"]) for e in found.values()] == [(["512"], ["0"])] * 5


async def test_colliding_names_get_unique_sam_account_names_across_the_whole_domain(
    samba_dc: SambaDC, directory: ldap3.Connection, connect: Callable[..., Any]
) -> None:
    # One jsmith exists outside the OU the connector writes to: the search covers the domain.
    existing = f"CN=Jane Smith,CN=Users,{samba_dc.base_dn}"
    assert directory.add(
        existing, ["user"], {"sAMAccountName": "jsmith", "userPrincipalName": "jsmith@roster.test"}
    )
    connector = await connect(samba_dc)
    candidates = ["jsmith", *(f"jsmith{n}" for n in range(1, 10))]
    long_names = [f"Johnathan Alexander {i} Smithington-Wolfeschlegelsteinhausen" for i in range(5)]
    ops = [
        op(
            "create",
            person(
                i,
                displayName=name,
                userName={"$unique": candidates},
                upn={"$unique": [f"{c}@roster.test" for c in candidates]},
            ),
        )
        for i, name in enumerate(long_names)
    ]
    applied(await connector.apply(ops))
    found = read(
        directory, samba_dc.base_dn, "(sAMAccountName=jsmith*)", ["sAMAccountName", "userPrincipalName"]
    )
    names = sorted(e["samaccountname"][0] for e in found.values())
    assert names == ["jsmith", "jsmith1", "jsmith2", "jsmith3", "jsmith4", "jsmith5"]
    upns = sorted(e["userprincipalname"][0] for e in found.values())
    assert upns == sorted(f"{n}@roster.test" for n in names)

    again = applied(await connector.apply(ops[:2]))  # a second cycle keeps the names it has
    assert len(again) == 2
    found = read(directory, samba_dc.base_dn, "(sAMAccountName=jsmith*)", ["sAMAccountName"])
    assert len(found) == 6


@pytest.mark.parametrize(
    ("name", "says"),
    [("j/smith", "which AD refuses"), ("averyveryverylongname1", "AD takes at most 20")],
)
async def test_an_invalid_sam_account_name_is_refused_permanently_and_says_why(
    samba_dc: SambaDC, directory: ldap3.Connection, connect: Callable[..., Any], name: str, says: str
) -> None:
    connector = await connect(samba_dc)
    [outcome] = await connector.apply([op("create", person(1, userName=name))])
    assert (
        isinstance(outcome, PermanentError)
        and says in outcome.message
        and "sAMAccountName" in outcome.message
    )
    assert read(directory, ous(samba_dc)["people"], "(objectClass=user)", ["cn"]) == {}


def plain_users(conn: ldap3.Connection, count: int) -> list[str]:
    """The `<GUID=...>` ids of the `count` users the DC started with (`samba_users`), made by Samba."""
    found = read(conn, f"OU={BULK_OU},{BASE_DN}", "(objectClass=user)", ["objectGUID"])
    assert len(found) == count
    return [ad_members.member_key(f"<GUID={uuid.UUID(bytes_le=e['objectguid'][0])}>") for e in found.values()]


@pytest.mark.samba_users(3000)
async def test_a_group_of_3000_is_written_in_chunks_of_at_most_1000_and_read_back_through_ranges(
    samba_dc: SambaDC,
    directory: ldap3.Connection,
    connect: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = plain_users(directory, 3000)
    sizes: list[int] = []
    modify = Session.modify

    def counted(self: Session, dn: str, changes: Any, **kw: Any) -> int:
        sizes.extend(len(values) for name, how in changes.items() if name == "member" for _, values in how)
        return modify(self, dn, changes, **kw)

    monkeypatch.setattr(Session, "modify", counted)
    connector = await connect(samba_dc)
    group = {"displayName": "Everyone"}
    [gid] = applied(await connector.apply([op("create", group, kind="group", members_add=ids)]))
    assert gid.startswith("<GUID=") and sizes and max(sizes) <= 1000

    directory.auto_range = False  # as AD answers: the first 1,500, and the range it covers
    everyone = f"CN=Everyone,{ous(samba_dc)['groups']}"
    directory.search(everyone, "(objectClass=*)", ldap3.BASE, attributes=["member;range=0-1499"])
    assert {k: len(v) for k, v in directory.response[0]["raw_attributes"].items()} == {
        "member;range=0-1499": 1500
    }
    [[row]] = [page async for page in connector.list_objects("group", ["displayName", "members"])]
    assert row[0] == gid and row[1] == "Everyone" and sorted(m.lower() for m in row[2]) == sorted(ids)

    sizes.clear()
    removed, added = ids[:1500], ids[:10]  # re-adding members already there is harmless
    change = op("update", group, kind="group", target_id=gid, members_add=added, members_remove=removed[10:])
    [same] = applied(await connector.apply([change]))
    assert same == gid and max(sizes) <= 1000
    [[row]] = [page async for page in connector.list_objects("group", ["displayName", "members"])]
    assert len(row[2]) == 3000 - 1490


async def test_a_department_change_moves_the_account_to_another_ou_and_its_groups_follow(
    samba_dc: SambaDC, directory: ldap3.Connection, connect: Callable[..., Any]
) -> None:
    connector = await connect(samba_dc)
    ada = person(0, department="Sales")
    [uid] = applied(await connector.apply([op("create", ada)]))
    [_gid] = applied(
        await connector.apply([op("create", {"displayName": "Team"}, kind="group", members_add=[uid])])
    )

    moved = {**ada, "department": "Support", "initialPassword": "ignored-On-Update-1"}
    [after] = applied(await connector.apply([op("update", moved, target_id=uid)]))
    assert after == uid  # the GUID: a move changes no link
    new_dn = f"CN={ada['displayName']},{ous(samba_dc)['support']}"
    assert list(read(directory, ous(samba_dc)["people"], f"(employeeID={ada['employeeID']})", ["cn"])) == [
        new_dn
    ]
    group = read(directory, ous(samba_dc)["groups"], "(cn=Team)", ["member"])
    assert [v.lower() for e in group.values() for v in e["member"]] == [new_dn.lower()]
    assert binds(samba_dc, ada["upn"], ada["initialPassword"])  # an update sets no password

    [again] = applied(await connector.apply([op("update", moved, target_id=uid)]))  # nothing left to do
    assert again == uid


async def test_a_leaver_is_disabled_by_user_account_control_keeping_its_other_bits(
    samba_dc: SambaDC, directory: ldap3.Connection, connect: Callable[..., Any]
) -> None:
    connector = await connect(samba_dc, users={"disable": {"move_to": ous(samba_dc)["leavers"]}})
    ada = person(0, accountExpires="2030-01-31")
    [uid] = applied(await connector.apply([op("create", ada)]))
    [entry] = read(
        directory, samba_dc.base_dn, f"(employeeID={ada['employeeID']})", ["accountExpires"]
    ).values()
    assert entry["accountexpires"] == [str((1_896_048_000 + 11_644_473_600) * 10_000_000)]  # 2030-01-31 UTC
    dont_expire = 0x10000
    dn = next(iter(read(directory, samba_dc.base_dn, f"(employeeID={ada['employeeID']})", ["cn"])))
    assert directory.modify(
        dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(UAC_ENABLED | dont_expire)])]}
    )

    [same] = applied(await connector.apply([op("disable", ada, target_id=uid)]))
    assert same == uid
    [(dn, entry)] = read(
        directory, samba_dc.base_dn, f"(employeeID={ada['employeeID']})", ["userAccountControl"]
    ).items()
    assert int(entry["useraccountcontrol"][0]) == UAC_DISABLED | dont_expire
    assert dn.endswith(ous(samba_dc)["leavers"])
    assert not binds(samba_dc, ada["upn"], ada["initialPassword"])

    applied(await connector.apply([op("update", ada, target_id=uid)]))  # back in scope: enabled, moved back
    [(dn, entry)] = read(
        directory, samba_dc.base_dn, f"(employeeID={ada['employeeID']})", ["userAccountControl"]
    ).items()
    assert int(entry["useraccountcontrol"][0]) == UAC_ENABLED | dont_expire
    assert dn.endswith(ous(samba_dc)["sales"])
    assert binds(samba_dc, ada["upn"], ada["initialPassword"])


async def test_a_prehire_is_added_disabled_with_its_password_and_enabled_by_a_later_update(
    samba_dc: SambaDC, directory: ldap3.Connection, connect: Callable[..., Any]
) -> None:
    connector = await connect(samba_dc, users={"disable": {"move_to": ous(samba_dc)["leavers"]}})
    bea = person(1)
    prehire = op("create", bea, disabled=True)
    [uid] = applied(await connector.apply([prehire]))
    assert applied(await connector.apply([prehire])) == [uid]  # a retry: matched, left disabled
    query = f"(employeeID={bea['employeeID']})"
    [(dn, entry)] = read(directory, samba_dc.base_dn, query, ["userAccountControl", "pwdLastSet"]).items()
    assert dn.endswith(ous(samba_dc)["leavers"]) and int(entry["useraccountcontrol"][0]) == UAC_DISABLED
    assert entry["pwdlastset"] != ["0"]  # its password is set: only the account is off
    assert not binds(samba_dc, bea["upn"], bea["initialPassword"])

    applied(await connector.apply([op("update", bea, target_id=uid)]))  # the start date: enabled, moved
    [(dn, entry)] = read(directory, samba_dc.base_dn, query, ["userAccountControl"]).items()
    assert dn.endswith(ous(samba_dc)["support"]) and int(entry["useraccountcontrol"][0]) == UAC_ENABLED
    assert binds(samba_dc, bea["upn"], bea["initialPassword"])


async def test_ad_errors_say_what_to_do_and_never_show_the_password(
    samba_dc: SambaDC,
    directory: ldap3.Connection,
    connect: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    connector = await connect(samba_dc)
    weak = person(1, initialPassword="abc")
    nowhere = person(2, department="Nowhere")
    taken = person(3, userName="Administrator", upn="taken@roster.test")
    outcomes = await connector.apply([op("create", weak), op("create", nowhere), op("create", taken)])
    assert [type(o) for o in outcomes] == [PermanentError] * 3, outcomes
    assert "does not meet the domain's complexity policy" in outcomes[0].message
    assert "the OU does not exist" in outcomes[1].message
    assert "in use by another account" in outcomes[2].message
    assert read(directory, ous(samba_dc)["people"], "(objectClass=user)", ["cn"]) == {}  # the weak one undone
    no_password_in([caplog.text, *(repr(o) for o in outcomes), *(o.message for o in outcomes)], ["abc"])

    wrong = await connect(samba_dc, bind_password="Wrong-Password-1")
    [refused] = await wrong.apply([op("create", person(4))])
    assert isinstance(refused, PermanentError) and "invalid credentials" in refused.message
    assert "Wrong-Password-1" not in refused.message


def test_passwords_over_plain_ldap_are_refused_naming_the_key(samba_dc: SambaDC) -> None:
    raw = settings(samba_dc, url=samba_dc.url)
    with pytest.raises(ConfigError) as refused:
        parse_ldap_settings("targets[0]", raw, base_dir=Path("/"))
    assert refused.value.path == "targets[0].users.password" and "start_tls" in str(refused.value)
    parse_ldap_settings("targets[0]", {**raw, "start_tls": True}, base_dir=Path("/"))  # StartTLS will do
    for key, value, path in [
        ("flavor", "ad", "targets[0].flavor"),
        (
            "groups",
            {"dn": "CN={displayName},DC=roster,DC=test", "group_scope": "planet"},
            "targets[0].groups.group_scope",
        ),
        (
            "groups",
            {"dn": "CN={x},DC=roster,DC=test", "member_chunk_size": 5000},
            "targets[0].groups.member_chunk_size",
        ),
    ]:
        with pytest.raises(ConfigError) as bad:
            parse_ldap_settings("targets[0]", {**settings(samba_dc), key: value}, base_dir=Path("/"))
        assert bad.value.path == path


async def test_the_check_binds_and_finds_the_bases_and_words_a_refused_bind(
    samba_dc: SambaDC, directory: ldap3.Connection
) -> None:
    sent = {"user": {k: f"jobs[0].mappings[{i}]" for i, k in enumerate(person(0))}}
    good = parse_ldap_settings("targets[0]", settings(samba_dc), base_dir=Path("/"))
    assert await check_ldap_target("targets[0]", good, sent) == []
    missing = parse_ldap_settings(
        "targets[0]", settings(samba_dc, users={"base": f"OU=Gone,{samba_dc.base_dn}"}), base_dir=Path("/")
    )
    [problem] = await check_ldap_target("targets[0]", missing, sent)
    assert problem.path == "targets[0].users.base"
    wrong = parse_ldap_settings(
        "targets[0]", settings(samba_dc, bind_password="Nope-123"), base_dir=Path("/")
    )
    [refused] = await check_ldap_target("targets[0]", wrong, sent)
    assert "invalid credentials" in str(refused) and "Nope-123" not in str(refused)


# -- A cycle through the engine ---------------------------------------------------------------------

CYCLE_PEOPLE = 200
DEPARTMENTS = {"10": "Sales", "20": "Support"}


def source_row(i: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "employee_id": f"E{i:05d}",
        "given_name": "John" if i % 10 == 0 else f"Given{i}",
        "family_name": "Smith" if i % 10 == 0 else f"Family{i}",
        "dept": "10" if i % 2 == 0 else "20",
        "password": password_of(i),
    }
    row.update(overrides)
    return row


def cycle_config(tmp_path: Path, dc: SambaDC) -> dict[str, Any]:
    login = 'ToLower(Join("", Left([given_name], 1), [family_name]))'
    candidates = ", ".join([login, *(f'Join("", {login}, "{n}")' for n in range(1, 30))])
    return {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "employee_id"},
                "target": "ad",
                "deletion_guard": False,
                "source_max_drop_percent": 100,
                "mappings": [
                    {"target": "employeeID", "source": "employee_id", "match": True},
                    {"target": "givenName", "source": "given_name"},
                    {"target": "familyName", "source": "family_name"},
                    {
                        "target": "displayName",
                        "expression": 'Join(" ", [given_name], [family_name], [employee_id])',
                    },
                    {
                        "target": "department",
                        "expression": 'Switch([dept], "Staff", "10", "Sales", "20", "Support")',
                    },
                    {
                        "target": "userName",
                        "expression": f"SelectUniqueValue({candidates})",
                        "apply": "on_create",
                    },
                    {"target": "initialPassword", "source": "password", "apply": "on_create"},
                ],
            },
            {
                "name": "teams",
                "object_type": "group",
                "source": {"type": "jsonl", "path": str(tmp_path / "teams.jsonl"), "id_column": "team_id"},
                "target": "ad",
                "members": {"source": "members", "job": "people"},
                "mappings": [{"target": "displayName", "source": "name", "match": True}],
            },
        ],
        "targets": [
            {
                "name": "ad",
                "type": "ldap",
                **settings(dc, users={"attributes": {"userName": "sAMAccountName", "familyName": "sn"}}),
                "retry": {"first_delay_ms": 200, "multiplier": 2, "tiers": 4},
            }
        ],
    }


def write_cycle_sources(tmp_path: Path, rows: list[dict[str, Any]], teams: dict[str, list[str]]) -> None:
    with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(source_row(0)))
        writer.writeheader()
        writer.writerows(rows)
    with (tmp_path / "teams.jsonl").open("w", encoding="utf-8") as f:
        for name, members in teams.items():
            f.write(json.dumps({"team_id": name, "name": name, "members": members}) + "\n")


def ad_people(conn: ldap3.Connection, dc: SambaDC) -> dict[str, dict[str, Any]]:
    """Users by employeeID, with their DN, sAMAccountName and userAccountControl."""
    found = read(conn, dc.base_dn, "(employeeID=*)", ["employeeID", "sAMAccountName", "userAccountControl"])
    return {
        e["employeeid"][0]: {"dn": dn, "sam": e["samaccountname"][0], "uac": int(e["useraccountcontrol"][0])}
        for dn, e in found.items()
    }


def ad_teams(conn: ldap3.Connection, dc: SambaDC) -> dict[str, list[str]]:
    """Each group's members by employeeID, as AD holds them."""
    by_dn = {p["dn"].lower(): eid for eid, p in ad_people(conn, dc).items()}
    found = read(conn, ous(dc)["groups"], "(objectClass=group)", ["cn", "member"])
    return {e["cn"][0]: sorted(by_dn[m.lower()] for m in e.get("member", [])) for e in found.values()}


async def test_a_cycle_through_the_engine_provisions_moves_and_disables_in_ad(
    tmp_path: Path, samba_dc: SambaDC, directory: ldap3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rows = [source_row(i) for i in range(CYCLE_PEOPLE)]
    teams = {"Everyone": [r["employee_id"] for r in rows], "Smiths": [r["employee_id"] for r in rows[::10]]}
    write_cycle_sources(tmp_path, rows, teams)
    async with pipeline(tmp_path, cycle_config(tmp_path, samba_dc)) as p:
        jobs = {job.name: job for job in p.runner.config.jobs}
        first = {name: await p.runner.run_cycle(jobs[name]) for name in ("people", "teams")}
        assert (first["people"].created, first["people"].failed) == (CYCLE_PEOPLE, 0)
        assert (first["teams"].created, first["teams"].failed, first["teams"].pending_members) == (2, 0, 0)
        held = ad_people(directory, samba_dc)
        assert set(held) == {r["employee_id"] for r in rows}
        assert {p["uac"] for p in held.values()} == {UAC_ENABLED}
        smiths = sorted(p["sam"] for eid, p in held.items() if eid in teams["Smiths"])
        assert smiths == sorted(["jsmith", *(f"jsmith{n}" for n in range(1, CYCLE_PEOPLE // 10))])
        assert ad_teams(directory, samba_dc) == {name: sorted(m) for name, m in teams.items()}
        assert binds(samba_dc, f"{held['E00003']['sam']}@roster.test", password_of(3))

        rows[4] = source_row(4, dept="20")  # Sales -> Support: moved
        leaver = rows.pop(7)["employee_id"]  # out of the source: disabled
        write_cycle_sources(tmp_path, rows, teams)
        second = await p.runner.run_cycle(jobs["people"])
        assert (second.updated, second.disabled, second.failed) == (1, 1, 0)
        held = ad_people(directory, samba_dc)
        assert held["E00004"]["dn"].endswith(ous(samba_dc)["support"])
        assert held[leaver]["uac"] == UAC_DISABLED
        assert "E00004" in ad_teams(directory, samba_dc)["Everyone"]  # its group membership holds

        third = {name: await p.runner.run_cycle(jobs[name]) for name in ("people", "teams")}
        assert [s.changed for s in third.values()] == [0, 0]
    no_password_in([caplog.text], [r["password"] for r in rows])
