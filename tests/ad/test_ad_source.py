"""Active Directory as a source, against a real Samba DC: AD's values as text, a group of 3,000
members read through ranges, changes read by USN without a full read, deletions seen through
tombstones, a watermark of another DC read as a full import, and a whole cycle into a SQL table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.protocol.formatters.formatters import format_sid

from engine.model import SourceObject
from engine.sources.ldap import LdapSource, parse_ldap_source
from tests.ad.directory import (
    DISABLED,
    NORMAL_ACCOUNT,
    add_group,
    add_ou,
    add_users,
    connect,
    guid_of,
    source,
    user_dn,
)
from tests.integration.pipeline import pipeline, sql_target, target_rows
from tests.samba import BULK_OU, SambaDC, bulk_user_dn

MEMBERS = 3000
CHANGED = 50


@pytest.fixture
def conn(samba_dc: SambaDC) -> Iterator[ldap3.Connection]:
    """The DC's administrator, for the test to write with."""
    admin = connect(samba_dc)
    try:
        yield admin
    finally:
        admin.unbind()


async def read(settings: dict[str, Any], since: str | None = None) -> tuple[LdapSource, list[SourceObject]]:
    """One read of the source these settings describe, and what it yielded."""
    src = LdapSource(parse_ldap_source("source", settings, base_dir=Path(".")), since=since)
    objects = [obj async for batch in src.batches(1000) for obj in batch]
    return src, objects


def people(dc: SambaDC) -> str:
    return f"OU=people,{dc.base_dn}"


async def test_ad_values_read_as_text_with_objectguid_as_the_id(
    samba_dc: SambaDC, conn: ldap3.Connection
) -> None:
    ou = add_ou(conn, people(samba_dc))
    expires = (1_704_067_200 + 11_644_473_600) * 10**7  # 2024-01-01T00:00:00Z: Unix time + 1601..1970
    [enabled_dn] = add_users(conn, ou, [1], accountExpires=expires)
    [disabled_dn] = add_users(conn, ou, [2], userAccountControl=NORMAL_ACCOUNT | DISABLED)
    conn.search(enabled_dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["objectSid"])
    sid = format_sid(conn.response[0]["raw_attributes"]["objectSid"][0])

    src, objects = await read(source(samba_dc, ou))

    assert src.full and not src.problems
    by_id = {obj.source_id: obj.attributes for obj in objects}
    assert set(by_id) == {guid_of(conn, enabled_dn), guid_of(conn, disabled_dn)}
    enabled = by_id[guid_of(conn, enabled_dn)]
    assert enabled["objectGUID"] == guid_of(conn, enabled_dn)
    assert enabled["objectSid"] == sid and sid.startswith("S-1-5-21-")
    assert enabled["accountExpires"] == "2024-01-01T00:00:00Z"
    assert "pwdLastSet" not in enabled  # 0: never set, left out like an empty value
    assert enabled["whenCreated"].endswith("Z") and enabled["whenCreated"][4] == "-"
    assert enabled["enabled"] is True
    assert by_id[guid_of(conn, disabled_dn)]["enabled"] is False


@pytest.mark.samba_users(MEMBERS)
async def test_a_group_of_3000_members_is_read_whole_through_ranges(
    samba_dc: SambaDC, conn: ldap3.Connection
) -> None:
    ou, dns = f"OU={BULK_OU},{samba_dc.base_dn}", [bulk_user_dn(i) for i in range(MEMBERS)]
    started = time.perf_counter()
    groups = add_ou(conn, f"OU=groups,{samba_dc.base_dn}")
    add_group(conn, f"CN=everyone,{groups}", dns)
    populated_s = time.perf_counter() - started

    users_src, users = await read(source(samba_dc, ou))
    assert (users_src.full, len(users), users_src.problem_count) == (True, MEMBERS, 0)

    group_settings = source(
        samba_dc, groups, filter="(objectClass=group)", attributes=["cn", "member"], member_base=ou
    )
    src, [group] = await read(group_settings)
    assert src.problem_count == 0
    assert len(group.attributes["member"]) == MEMBERS
    assert set(group.attributes["member"]) == {obj.source_id for obj in users}
    # The ranges were real: Samba, like AD, answers a ranged request a range at a time.
    conn.search(
        f"CN=everyone,{groups}",
        "(objectClass=*)",
        search_scope=ldap3.BASE,
        attributes=["member;range=0-1499"],
    )
    assert list(conn.response[0]["raw_attributes"]) == ["member;range=0-1499"]
    print(f"a group of {MEMBERS} members made in {populated_s:.1f} s")


async def test_50_changes_are_read_by_usn_without_a_full_read(
    samba_dc: SambaDC, conn: ldap3.Connection
) -> None:
    ou = add_ou(conn, people(samba_dc))
    dns = add_users(conn, ou, range(300))
    settings = source(samba_dc, ou, attributes=["sAMAccountName", "department"], incremental=True)
    first, everyone = await read(settings)
    assert first.full and len(everyone) == 300 and first.watermark.startswith("usn:")

    changed = dns[::6][:CHANGED]
    for dn in changed:
        assert conn.modify(dn, {"department": [(ldap3.MODIFY_REPLACE, ["d1"])]}), conn.result
    second, objects = await read(settings, since=first.watermark)

    assert second.full is False
    assert {obj.source_id for obj in objects} == {guid_of(conn, dn) for dn in changed}
    assert {obj.attributes["department"] for obj in objects} == {"d1"}
    assert second.entries_read == CHANGED  # the server sent only those
    assert second.deleted == []

    third, nothing = await read(settings, since=second.watermark)
    assert (third.full, nothing, third.entries_read) == (False, [], 0)


async def test_a_change_made_while_a_read_runs_is_read_again_next_time(
    samba_dc: SambaDC, conn: ldap3.Connection
) -> None:
    ou = add_ou(conn, people(samba_dc))
    dns = add_users(conn, ou, range(20))
    settings = source(samba_dc, ou, incremental=True, page_size=5)
    src = LdapSource(parse_ldap_source("source", settings, base_dir=Path(".")))
    batches = src.batches(5)
    await anext(batches)  # the read started: its watermark is the USN before its search
    assert conn.modify(dns[-1], {"department": [(ldap3.MODIFY_REPLACE, ["during"])]}), conn.result
    async for _ in batches:
        pass

    _, again = await read(settings, since=src.watermark)
    assert [obj.source_id for obj in again] == [guid_of(conn, dns[-1])]


async def test_a_deleted_user_is_reported_by_the_incremental_read(
    samba_dc: SambaDC, conn: ldap3.Connection
) -> None:
    ou = add_ou(conn, people(samba_dc))
    dns = add_users(conn, ou, range(10))
    elsewhere = add_users(conn, f"CN=Users,{samba_dc.base_dn}", [99])
    settings = source(samba_dc, ou, incremental=True)
    first, _ = await read(settings)
    gone, other = guid_of(conn, dns[3]), guid_of(conn, elsewhere[0])

    assert conn.delete(dns[3]), conn.result
    assert conn.delete(elsewhere[0]), conn.result  # outside the base: not this source's
    second, objects = await read(settings, since=first.watermark)

    assert second.full is False and objects == []
    assert second.deleted == [gone] and other not in second.deleted


async def test_a_watermark_of_another_dc_means_a_full_read(samba_dc: SambaDC, conn: ldap3.Connection) -> None:
    ou = add_ou(conn, people(samba_dc))
    add_users(conn, ou, range(25))
    settings = source(samba_dc, ou, incremental=True)
    first, _ = await read(settings)
    usn = int(first.watermark.rpartition(":")[2])
    other_dc = f"usn:{uuid.uuid4()}:{usn}"

    second, objects = await read(settings, since=other_dc)
    assert (second.full, len(objects)) == (True, 25)
    assert second.watermark == first.watermark  # this DC's own numbers from now on

    third, objects = await read(settings, since="20240101000000Z")  # a modifyTimestamp: not a USN
    assert (third.full, len(objects)) == (True, 25)


async def test_cycles_from_ad_into_a_table_read_changes_and_deletions_incrementally(
    samba_dc: SambaDC, conn: ldap3.Connection, tmp_path: Path
) -> None:
    ou = add_ou(conn, people(samba_dc))
    dns = add_users(conn, ou, range(200))
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    raw = {
        "engine": {"batch_size": 200, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": source(
                    samba_dc,
                    ou,
                    attributes=["sAMAccountName", "givenName", "sn", "mail", "department"],
                    incremental=True,
                ),
                "target": "db",
                "deprovision": "disable",
                "deletion_guard": False,
                "mappings": [
                    {"target": "employee_id", "source": "sAMAccountName", "match": True},
                    {"target": "first_name", "source": "givenName"},
                    {"target": "last_name", "source": "sn"},
                    {"target": "email", "source": "mail"},
                    {"target": "department", "source": "department"},
                    {"target": "company", "constant": "Roster"},
                ],
            }
        ],
        **sql_target(url),
    }
    async with pipeline(tmp_path, raw) as p:
        job = p.runner.config.jobs[0]
        first = await p.runner.run_cycle(job)
        assert (first.read, first.created, first.status) == (200, 200, "succeeded")

        for dn in dns[:5]:
            assert conn.modify(dn, {"department": [(ldap3.MODIFY_REPLACE, ["d2"])]}), conn.result
        second = await p.runner.run_cycle(job)
        assert (second.read, second.updated, second.created, second.disabled) == (5, 5, 0, 0), second

        assert conn.delete(dns[7]), conn.result
        third = await p.runner.run_cycle(job)
        assert (third.read, third.disabled, third.status) == (0, 1, "succeeded"), third

    rows = await target_rows(url)
    assert len(rows) == 200
    assert {k for k, r in rows.items() if r["department"] == "d2"} == {f"user{i:06d}" for i in range(5)}
    assert {k for k, r in rows.items() if not int(r["active"])} == {user_dn(ou, 7).split(",")[0][3:]}
